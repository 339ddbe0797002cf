"""The training loop: act, step, add, sample, update, sync, log (Mnih et al. 2015, Algorithm 1).

This module keeps the order of things and the counters; the parts it calls do the work:
:class:`dqnkit.envs.vector.TrainingEnvs` (the vector of envs, Atari included),
:class:`dqnkit.learner.agent.Agent` (acting, a training round, target sync),
:class:`dqnkit.replay.ReplayBuffer`, :mod:`dqnkit.training.logger` (CSV, TensorBoard, progress),
:mod:`dqnkit.training.checkpoint` (files and :class:`RunState`), :mod:`dqnkit.envs.rollout` and
:mod:`dqnkit.training.video`. Every counter is in env steps (transitions summed over vector envs)
unless its name says otherwise.
"""
from __future__ import annotations

import math
import platform
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from dqnkit import __version__
from dqnkit.config import Config
from dqnkit.envs.vector import EnvSource, TrainingEnvs
from dqnkit.errors import TrainingDiverged
from dqnkit.learner.agent import Agent, set_torch_threads
from dqnkit.learner.explore import EpsilonSchedule, epsilon_policy, masked_argmax, uniform_allowed
from dqnkit.networks import pick_torso
from dqnkit.replay import ReplayBuffer
from dqnkit.runfolder import (CONFIG_FILE, CSV_COLUMNS, RUN_INFO_FILE, VIDEOS_DIR, atomic_write, generator_state,
                              set_generator_state, truncate_csv, write_json_atomic)
from dqnkit.training.callbacks import Callbacks, TrainingView
from dqnkit.training.guards import Guards
from dqnkit.training.interrupt import sigterm_as_interrupt
from dqnkit.training.checkpoint import (CheckpointIndex, RunState, check_compatible, load_checkpoint, never_to_none,
                                        none_to_never, save_checkpoint)
from dqnkit.envs.rollout import run_episodes
from dqnkit.training.logger import RunLogger, UpdateLog

EVAL_SEED_OFFSET = 1_000_000  # periodic evaluations reset their envs with seeds seed + 1e6 + i
VIDEO_SEED_OFFSET = 2_000_000


class Trainer:
    """Owns envs, agent, replay and counters for one run; ``learn`` advances it."""

    def __init__(self, cfg: Config, run_dir: Path | None = None, *, env: EnvSource | None = None,
                 verbosity: str = "auto"):
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.verbosity = verbosity
        set_torch_threads(cfg.torch_threads)
        self.envs = TrainingEnvs(env if env is not None else cfg.env_id, cfg)
        self.torso = "custom" if cfg.q_network is not None else pick_torso(cfg.torso, self.envs.obs_shape)
        self.agent = Agent(cfg, self.envs.obs_shape, self.envs.n_actions, torso=self.torso,
                           input_scale=self.envs.input_scale)
        self.device = self.agent.device
        self._buffer: ReplayBuffer | None = None  # built on first use: evaluating a loaded model needs none
        self.schedule = EpsilonSchedule.from_config(cfg)
        self.temperatures = EpsilonSchedule.temperature_from_config(cfg)  # boltzmann, max_boltzmann
        self.rng = np.random.default_rng(cfg.seed + 3)  # exploration draws
        # counters (all checkpointed)
        self.env_step = 0
        self.vec_steps = 0
        self.episodes = 0
        self.next_eval = cfg.eval_freq if cfg.eval_freq > 0 else math.inf
        self.next_checkpoint = cfg.checkpoint_freq if cfg.checkpoint_freq > 0 else math.inf
        self.next_video = cfg.video_every if cfg.video_every > 0 and run_dir is not None else math.inf
        self.last_eval: dict | None = None
        self.last_episode: tuple[float | None, int | None] = (None, None)  # return, length
        self.last_update_row: dict | None = None
        self.last_checkpoint: Path | None = None
        self.callbacks, self.view = Callbacks(), TrainingView(self)
        self.guards = Guards(cfg, cfg.num_envs)
        self._stop = False
        self.ep_return = np.zeros(cfg.num_envs)
        self.ep_length = np.zeros(cfg.num_envs, dtype=np.int64)
        self.update_log = UpdateLog(cfg.log_interval)
        self.obs = self.envs.reset()
        self.checkpoints = CheckpointIndex(self.run_dir, cfg.keep_checkpoints) if self.run_dir else None
        self.logger: RunLogger | None = None
        self.status = "created"
        # cadences in vector steps
        self.train_every = max(1, cfg.train_freq // cfg.num_envs)
        self.sync_every = max(1, cfg.target_update_interval // cfg.num_envs)
        self._clock = (time.perf_counter(), 0)

    @property
    def buffer(self) -> ReplayBuffer:
        if self._buffer is None:
            cfg = self.cfg
            frames = {"frame_stack": cfg.frame_stack} if self.envs.atari and cfg.frame_stack > 1 else {}
            self._buffer = ReplayBuffer(cfg.buffer_size, cfg.num_envs, self.envs.obs_shape, self.envs.obs_dtype,
                                        n_step=cfg.n_step, gamma=cfg.gamma, prioritized=cfg.prioritized_replay,
                                        alpha=cfg.alpha, priority_eps=cfg.priority_epsilon,
                                        priority_clip=cfg.priority_clip, seed=cfg.seed + 2, device=self.device,
                                        mask_actions=self.envs.n_actions if self.envs.masked else 0, **frames)
        return self._buffer

    # --- the loop ----------------------------------------------------------------------
    def epsilon(self) -> float:
        if self.cfg.noisy or self.cfg.exploration == "boltzmann":
            return 0.0
        return self.schedule.value(self.env_step, self.episodes)

    def temperature(self) -> float:
        return self.temperatures.value(self.env_step, self.episodes)

    def beta(self) -> float:
        frac = min(1.0, self.env_step / max(1, self.cfg.total_timesteps))
        return self.cfg.beta_initial + frac * (1.0 - self.cfg.beta_initial)

    def learn(self, until_env_step: int | None = None, callback: Any = None) -> dict:
        """Train until ``until_env_step`` env steps in total (default: total_timesteps), or until a callback
        (one or a list, see :mod:`dqnkit.training.callbacks`) returns False."""
        cfg = self.cfg
        target = int(until_env_step if until_env_step is not None else cfg.total_timesteps)
        self.callbacks, self._stop = Callbacks(callback), False
        self.view = view = TrainingView(self)
        on_step = self.callbacks.on_step
        self._open_logger(target)
        self.guards.say = self.logger.progress.message
        self.guards.start()
        self.status = "running"
        self._write_run_info()
        self._clock = (time.perf_counter(), self.env_step)
        interrupted = stopped_early = False
        try:
            with sigterm_as_interrupt(self.run_dir is not None):
                while self.env_step < target and not self._stop:
                    self._step()
                    # strictly more than learning_starts, as Stable-Baselines3 (tests/training/test_sb3_oracle.py)
                    if self.vec_steps % self.train_every == 0 and self.env_step > cfg.learning_starts:
                        self._train_round()
                    if self.vec_steps % self.sync_every == 0:
                        self.agent.sync_target()
                    self._side_work_due()
                    if self.vec_steps % 64 == 0:
                        self.logger.tick(self.env_step, self.epsilon(), self._sps())
                        if self.guards.checks_rewards:
                            self.guards.rewards(self.buffer.newest_rewards(64))
                    if on_step is not None and on_step(view) is False:
                        self._stop = True
                stopped_early = self._stop
                if cfg.eval_freq == 0 or self.last_eval is None or self.last_eval["env_step"] != self.env_step:
                    self.evaluate_and_log()
            self.status = "stopped" if stopped_early else "finished"
        except KeyboardInterrupt:
            interrupted = True
            self.status = "interrupted"
        except TrainingDiverged:
            self.status = "diverged"
            self._write_run_info()
            self.logger.close()
            raise
        stopped = f"stopped by a callback ({self.callbacks.stopped_by})" if stopped_early else None
        if self.run_dir is not None:
            path = self.save_checkpoint()
            if interrupted or stopped:
                self.logger.progress.message(
                    f"{stopped or 'interrupted'} at env step {self.env_step}; checkpoint written to {path}\n"
                    f"resume with: dqnkit resume {self.run_dir}")
        elif stopped:
            self.logger.progress.message(f"{stopped} at env step {self.env_step}")
        self.logger.tick(self.env_step, self.epsilon(), self._sps())
        self._write_run_info()
        self.logger.close()
        self.logger = None
        if interrupted and self.run_dir is None:
            raise KeyboardInterrupt
        return {"env_step": self.env_step, "episodes": self.episodes, "status": self.status,
                "last_eval": self.last_eval, "stopped_by": self.callbacks.stopped_by}

    def _side_work_due(self, checkpoint: bool = True) -> None:
        """The evaluation, video and checkpoint whose env-step marks have been reached (the loop's side channels)."""
        cfg = self.cfg
        if self.env_step >= self.next_eval:
            self.next_eval += cfg.eval_freq
            self.evaluate_and_log()
        if self.env_step >= self.next_video:
            self.next_video += cfg.video_every
            self.record_video()
        if checkpoint and self.env_step >= self.next_checkpoint:
            self.next_checkpoint += cfg.checkpoint_freq
            self.save_checkpoint()

    def _step(self) -> None:
        cfg = self.cfg
        actions = self._act(self.envs.current_mask)
        step = self.envs.step(actions)
        if self.guards.on_step is not None:
            self.guards.on_step(step.reward, step.episode_end)
        self.buffer.add(self.obs, actions, step.reward, step.terminated, step.truncated, step.final_obs,
                        episode_end=step.episode_end, next_mask=step.final_mask)
        self.obs = step.next_obs
        self.vec_steps += 1
        self.env_step += cfg.num_envs
        self.ep_return += step.reported_reward
        self.ep_length += 1
        for i in np.flatnonzero(step.episode_end):
            self.episodes += 1
            self.logger.episode(self.env_step, self.episodes, self.ep_return[i], self.ep_length[i], self.epsilon())
            self.last_episode = (float(self.ep_return[i]), int(self.ep_length[i]))
            self.guards.episode_end(self.last_episode[1])
            self._hook(self.callbacks.on_episode_end)
            self.ep_return[i] = 0.0
            self.ep_length[i] = 0

    def _act(self, mask: np.ndarray | None) -> np.ndarray:
        """This vector step's actions; ``mask``: the allowed actions (None unless the env gives masks)."""
        cfg = self.cfg
        if self.env_step < cfg.learning_starts and not cfg.noisy:
            if mask is None:
                return self.rng.integers(0, self.envs.n_actions, size=cfg.num_envs)
            return uniform_allowed(mask, self.rng)
        if cfg.exploration != "epsilon":
            return self.agent.act(self.obs, self.epsilon(), self.rng, mask, self.temperature())
        if mask is None:
            return self.agent.act(self.obs, self.epsilon(), self.rng)
        return self.agent.act(self.obs, self.epsilon(), self.rng, mask)

    def _train_round(self) -> None:
        cfg = self.cfg
        if not self.buffer.can_sample(cfg.batch_size):
            return
        n_updates = self.train_every * cfg.num_envs if cfg.gradient_steps == -1 else cfg.gradient_steps
        if cfg.learning_rate_schedule != "constant":
            self.agent.set_learning_rate(cfg.learning_rate_at(self.env_step))
        for metrics in self.agent.train_round(self.buffer, n_updates, cfg.batch_size, self.beta()):
            if self.update_log.add(metrics, self.agent.updates):
                row = self.update_log.row(metrics, self.agent.updates, self.env_step, self.agent.learning_rate,
                                          self._sps())
                if not UpdateLog.finite(row):
                    self._diverged()
                self.logger.update(row)
                self.last_update_row = row
        if not self.update_log.last_loss_finite():
            self._diverged()

    def _diverged(self) -> None:
        last = self.checkpoints.path("latest") if self.checkpoints else None
        keep = f"; the last good checkpoint is {last}" if last else ""
        raise TrainingDiverged(f"loss became NaN/inf at update {self.agent.updates} (env step {self.env_step}): "
                               f"lower learning_rate, set max_grad_norm, or use loss=huber{keep}")

    def _sps(self) -> float:
        t0, s0 = self._clock
        dt = time.perf_counter() - t0
        return (self.env_step - s0) / dt if dt > 0 else 0.0

    # --- evaluation --------------------------------------------------------------------
    def greedy_policy(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return masked_argmax(self.agent.q_values(obs), mask)

    def evaluate(self, episodes: int | None = None, seed: int | None = None, epsilon: float | None = None) -> dict:
        """Episodes reset with seeds ``seed + i``, greedy or epsilon-greedy at ``epsilon`` (default eval_epsilon)
        with a generator seeded from ``seed``, so an evaluation repeats exactly."""
        episodes = episodes or self.cfg.eval_episodes
        seed = self.cfg.seed + EVAL_SEED_OFFSET if seed is None else seed
        epsilon = self.cfg.eval_epsilon if epsilon is None else float(epsilon)
        policy = self.greedy_policy if epsilon <= 0 else epsilon_policy(
            self.greedy_policy, epsilon, self.envs.n_actions, np.random.default_rng([abs(int(seed)), 5]))
        return run_episodes(policy, self.envs.make_eval_env, episodes, seed=seed)

    def evaluate_and_log(self) -> dict:
        result = self.evaluate()
        result["env_step"] = self.env_step
        self.last_eval = result
        if self.logger is not None:
            self.logger.evaluation(self.env_step, result["mean_return"], result["std_return"])
        if self.checkpoints is not None and self.checkpoints.improves(result["mean_return"]):
            self.checkpoints.save_best(self.env_step, result["mean_return"], self.agent.tensors(), self.state())
        self._hook(self.callbacks.on_eval)
        return result

    def record_video(self) -> list[Path]:
        """One greedy episode as run/videos/step_XXXXXXXXXX-episode-0.mp4 (and a GIF)."""
        from dqnkit.training.video import record_episodes

        def q_values(obs: np.ndarray) -> np.ndarray:
            return self.agent.q_values(np.asarray(obs)[None])[0]

        return record_episodes(q_values, self.envs.make_eval_env, self.run_dir / VIDEOS_DIR,
                               prefix=f"step_{self.env_step:010d}", seed=self.cfg.seed + VIDEO_SEED_OFFSET)

    # --- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The JSON of this run's :class:`RunState`."""
        log_at, pending = self.update_log.state()
        return RunState(
            config=self.cfg.to_dict(), env=self.envs.signature, torso=self.torso,
            counters={"env_step": self.env_step, "vec_steps": self.vec_steps, "episodes": self.episodes,
                      "next_eval": never_to_none(self.next_eval), "next_checkpoint": never_to_none(self.next_checkpoint),
                      "next_video": never_to_none(self.next_video), "log_at": log_at},
            agent=self.agent.meta(),
            rng={"explore": generator_state(self.rng), "torch": torch.get_rng_state().tolist()},
            episode_accumulators={"return": self.ep_return.tolist(), "length": self.ep_length.tolist()},
            envs=self.envs.snapshot(), last_eval=self.last_eval, pending_losses=pending, guards=self.guards.state(),
        ).to_json()

    def save_checkpoint(self) -> Path | None:
        if self.checkpoints is None:
            return None
        replay = self.buffer.state_dict() if self.cfg.save_replay else None
        self.last_checkpoint = self.checkpoints.save(self.env_step, self.agent.tensors(), self.state(), replay)
        self._hook(self.callbacks.on_checkpoint)
        return self.last_checkpoint

    def _hook(self, hook: Callable | None) -> None:
        """Call a callback hook (off the per-step path); False from it stops training after this step."""
        if hook is not None and not self._stop and hook(self.view) is False:
            self._stop = True

    def save_model(self, directory: Path) -> Path:
        """This run's networks, optimizer and state as one checkpoint folder (no replay)."""
        return save_checkpoint(Path(directory), self.agent.tensors(), self.state())

    def restore(self, checkpoint_dir: Path, *, replay: bool = True, env_id: str | None = None) -> None:
        """Continue from a checkpoint written by a run with the same config and env: networks, optimizer,
        counters, RNG states and envs; the replay buffer too when the checkpoint holds it and ``replay``."""
        tensors, data, replay_arrays = load_checkpoint(checkpoint_dir, with_replay=replay, device=self.device)
        state = RunState.from_json(data, checkpoint_dir)
        check_compatible(data, self.envs.signature, checkpoint_dir, env_id)
        self.agent.load(tensors, state.agent)
        c = state.counters
        self.env_step, self.vec_steps, self.episodes = c["env_step"], c["vec_steps"], c["episodes"]
        self.next_eval, self.next_checkpoint = none_to_never(c["next_eval"]), none_to_never(c["next_checkpoint"])
        self.next_video = none_to_never(c["next_video"])
        self.update_log.load(c["log_at"], state.pending_losses)
        set_generator_state(self.rng, state.rng["explore"])
        torch.set_rng_state(torch.tensor(state.rng["torch"], dtype=torch.uint8))
        self.ep_return = np.asarray(state.episode_accumulators["return"], dtype=np.float64)
        self.ep_length = np.asarray(state.episode_accumulators["length"], dtype=np.int64)
        self.obs = self.envs.restore(state.envs)
        self.last_eval = state.last_eval
        self.guards.load(**state.guards)
        if replay_arrays is not None and state.replay is not None:
            self.buffer.load_state_dict(replay_arrays, state.replay)
        if self.run_dir is not None:
            for name in CSV_COLUMNS:
                truncate_csv(self.run_dir / name, self.env_step)

    # --- run folder --------------------------------------------------------------------
    def _open_logger(self, target: int) -> None:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.run_dir / CONFIG_FILE, self.cfg.to_yaml())
        self.logger = RunLogger(self.run_dir, total_env_steps=target, verbosity=self.verbosity,
                                tensorboard=self.cfg.tensorboard, start_env_step=self.env_step)

    def _write_run_info(self) -> None:
        if self.run_dir is None:
            return
        write_json_atomic(self.run_dir / RUN_INFO_FILE, {
            "status": self.status, "env_step": self.env_step, "episodes": self.episodes,
            "updates": self.agent.updates, "env_steps_per_s": round(self._sps(), 1),
            "dqnkit": __version__, "torch": torch.__version__, "gymnasium": gym.__version__,
            "python": platform.python_version(), "device": str(self.device),
            "last_eval": {k: v for k, v in (self.last_eval or {}).items() if k != "lengths"},
            "warnings": self.guards.warnings,
        })

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        self.envs.close()
