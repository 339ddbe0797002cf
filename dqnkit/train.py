"""The training loop: act, step, add, sample, update, sync, log (Mnih et al. 2015, Algorithm 1).

The math lives in the modules it calls; this file keeps the order of things and the
counters. All counters are in env steps (transitions summed over vector envs) unless
their name says otherwise.
"""
from __future__ import annotations

import math
import platform
import signal
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from dqnkit import __version__
from dqnkit.agent import Agent
from dqnkit.checkpoint import CheckpointIndex, check_compatible, load_checkpoint, write_json_atomic
from dqnkit.config import Config
from dqnkit.envs.make import final_observations, input_scale, make_env, obs_spec, spaces_signature, step_info
from dqnkit.envs.atari import is_atari
from dqnkit.envs.recorder import EpisodeRecorder, vector_restore, vector_snapshot
from dqnkit.errors import TrainingDiverged
from dqnkit.evaluate import run_episodes
from dqnkit.explore import EpsilonSchedule
from dqnkit.logger import RunLogger, truncate_csv
from dqnkit.networks import pick_torso
from dqnkit.replay import ReplayBuffer
from dqnkit.types import Batch

EnvSource = str | Callable[[], gym.Env]


def _slice(batch: Batch, s: slice) -> Batch:
    return Batch(*(field[s] for field in batch))


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


class Trainer:
    """Owns envs, agent, replay and counters for one run; ``learn`` advances it."""

    def __init__(self, cfg: Config, run_dir: Path | None = None, *, env: EnvSource | None = None,
                 verbosity: str = "auto"):
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.env_source: EnvSource = env if env is not None else cfg.env_id
        self.verbosity = verbosity
        self.atari = isinstance(self.env_source, str) and is_atari(self.env_source)
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        self.envs = self._make_vec_env()
        self.n_actions = int(self.envs.single_action_space.n)
        self.obs_shape, self.obs_dtype = obs_spec(self.envs.single_observation_space)
        self.signature = spaces_signature(self.envs)
        self.torso = pick_torso(cfg.torso, self.obs_shape)
        scale = input_scale(self.envs.single_observation_space, cfg.policy_kwargs.get("normalize_images", True))
        self.agent = Agent(cfg, self.obs_shape, self.n_actions, torso=self.torso, input_scale=scale)
        self.device = self.agent.device
        frames = {"frame_stack": cfg.frame_stack} if self.atari and cfg.frame_stack > 1 else {}
        self.buffer = ReplayBuffer(cfg.buffer_size, cfg.num_envs, self.obs_shape, self.obs_dtype,
                                   n_step=cfg.n_step, gamma=cfg.gamma, prioritized=cfg.prioritized_replay,
                                   alpha=cfg.alpha, priority_eps=cfg.priority_epsilon,
                                   priority_clip=cfg.priority_clip, seed=cfg.seed + 2,
                                   device=self.device, **frames)
        self.schedule = EpsilonSchedule.from_config(cfg)
        self.rng = np.random.default_rng(cfg.seed + 3)  # exploration draws
        # counters (all checkpointed)
        self.env_step = 0
        self.vec_steps = 0
        self.episodes = 0
        self.next_eval = cfg.eval_freq if cfg.eval_freq > 0 else math.inf
        self.next_checkpoint = cfg.checkpoint_freq if cfg.checkpoint_freq > 0 else math.inf
        self.next_video = cfg.video_every if cfg.video_every > 0 and run_dir is not None else math.inf
        self.last_eval: dict | None = None
        self.ep_return = np.zeros(cfg.num_envs)
        self.ep_length = np.zeros(cfg.num_envs, dtype=np.int64)
        self.obs, _ = self.envs.reset(seed=cfg.seed)
        self.checkpoints = CheckpointIndex(self.run_dir, cfg.keep_checkpoints) if self.run_dir else None
        self.logger: RunLogger | None = None
        self.status = "created"
        # cadences in vector steps
        n = cfg.num_envs
        self.train_every = max(1, cfg.train_freq // n)
        self.sync_every = max(1, cfg.target_update_interval // n)
        self._pending_losses: list[torch.Tensor] = []
        self._log_at = cfg.log_interval
        self._clock = (time.perf_counter(), 0)

    # --- construction ----------------------------------------------------------------
    def _single_env(self, seed: int | None = None, render_mode: str | None = None, evaluation: bool = False) -> gym.Env:
        if self.atari:
            from dqnkit.envs.atari import make_atari_env
            from dqnkit.envs.make import apply_wrappers
            env = make_atari_env(self.env_source, self.cfg, render_mode=render_mode, evaluation=evaluation)
            return apply_wrappers(env, self.cfg.env_wrapper)
        return make_env(self.env_source, seed=seed, render_mode=render_mode, env_kwargs=self.cfg.env_kwargs or None,
                        wrappers=self.cfg.env_wrapper)

    def _make_vec_env(self) -> gym.vector.SyncVectorEnv:
        seed = self.cfg.seed
        fns = [lambda i=i: EpisodeRecorder(self._single_env(seed + i)) for i in range(self.cfg.num_envs)]
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)

    def make_eval_env(self, render_mode: str | None = None) -> gym.Env:
        """A separate env for greedy evaluation: unclipped rewards, lives not terminal."""
        return self._single_env(render_mode=render_mode, evaluation=True)

    # --- the loop ----------------------------------------------------------------------
    def epsilon(self) -> float:
        if self.cfg.noisy:
            return 0.0
        return self.schedule.value(self.env_step, self.episodes)

    def beta(self) -> float:
        frac = min(1.0, self.env_step / max(1, self.cfg.total_timesteps))
        return self.cfg.beta_initial + frac * (1.0 - self.cfg.beta_initial)

    def learn(self, until_env_step: int | None = None) -> dict:
        """Train until ``until_env_step`` env steps in total (default: total_timesteps)."""
        cfg = self.cfg
        target = int(until_env_step if until_env_step is not None else cfg.total_timesteps)
        self._open_logger(target)
        self.status = "running"
        self._write_run_info()
        self._clock = (time.perf_counter(), self.env_step)
        interrupted = False
        old_handler = None
        try:
            if self.run_dir is not None and hasattr(signal, "SIGTERM"):
                old_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        except ValueError:  # not in the main thread
            old_handler = None
        try:
            while self.env_step < target:
                self._step()
                # strictly more than learning_starts, as Stable-Baselines3 (the first round comes one
                # train_freq later than with >=; tests/test_sb3_oracle.py checks the whole schedule)
                if self.vec_steps % self.train_every == 0 and self.env_step > cfg.learning_starts:
                    self._train_round()
                if self.vec_steps % self.sync_every == 0:
                    self.agent.sync_target()
                if self.env_step >= self.next_eval:
                    self.next_eval += cfg.eval_freq
                    self.evaluate_and_log()
                if self.env_step >= self.next_video:
                    self.next_video += cfg.video_every
                    self.record_video()
                if self.env_step >= self.next_checkpoint:
                    self.next_checkpoint += cfg.checkpoint_freq
                    self.save_checkpoint()
                if self.vec_steps % 64 == 0:
                    self.logger.tick(self.env_step, self.epsilon(), self._sps())
            if cfg.eval_freq == 0 or self.last_eval is None or self.last_eval["env_step"] != self.env_step:
                self.evaluate_and_log()
            self.status = "finished"
        except KeyboardInterrupt:
            interrupted = True
            self.status = "interrupted"
        except TrainingDiverged:
            self.status = "diverged"
            self._write_run_info()
            self.logger.close()
            raise
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
        if self.run_dir is not None:
            path = self.save_checkpoint()
            if interrupted:
                self.logger.progress.message(
                    f"interrupted at env step {self.env_step}; checkpoint written to {path}\n"
                    f"resume with: dqnkit resume {self.run_dir}")
        self.logger.tick(self.env_step, self.epsilon(), self._sps())
        self._write_run_info()
        self.logger.close()
        self.logger = None
        if interrupted and self.run_dir is None:
            raise KeyboardInterrupt
        return {"env_step": self.env_step, "episodes": self.episodes, "status": self.status,
                "last_eval": self.last_eval}

    def _step(self) -> None:
        cfg = self.cfg
        if self.env_step < cfg.learning_starts and not cfg.noisy:
            actions = self.rng.integers(0, self.n_actions, size=cfg.num_envs)
        else:
            actions = self.agent.act(self.obs, self.epsilon(), self.rng)
        next_obs, reward, terminated, truncated, infos = self.envs.step(actions)
        ended = terminated | truncated
        final = final_observations(next_obs, infos, ended) if ended.any() else next_obs
        if self.atari:
            # learn from clipped rewards and life-loss terminals; report whole-game unclipped returns
            n = cfg.num_envs
            raw_reward = step_info(infos, "raw_reward", np.nan, n)
            raw_reward = np.where(np.isnan(raw_reward), reward, raw_reward)
            learn_terminated = terminated | step_info(infos, "life_loss", False, n).astype(bool)
            self.buffer.add(self.obs, actions, reward, learn_terminated, truncated, final, episode_end=ended)
        else:
            raw_reward = reward
            self.buffer.add(self.obs, actions, reward, terminated, truncated, final)
        self.obs = next_obs
        self.vec_steps += 1
        self.env_step += cfg.num_envs
        self.ep_return += raw_reward
        self.ep_length += 1
        for i in np.flatnonzero(ended):
            self.episodes += 1
            self.logger.episode(self.env_step, self.episodes, self.ep_return[i], self.ep_length[i], self.epsilon())
            self.ep_return[i] = 0.0
            self.ep_length[i] = 0

    def _gradient_steps(self) -> int:
        g = self.cfg.gradient_steps
        return self.train_every * self.cfg.num_envs if g == -1 else g

    def _train_round(self) -> None:
        cfg = self.cfg
        if not self.buffer.can_sample(cfg.batch_size):
            return
        steps = self._gradient_steps()
        if cfg.learning_rate_schedule != "constant":
            self.agent.set_learning_rate(cfg.learning_rate_at(self.env_step))
        if not cfg.prioritized_replay and not cfg.noisy:
            # The target net and the buffer are fixed during a round: draw every batch at once
            # and evaluate the target net on all next observations in one forward pass.
            big = self.buffer.sample(cfg.batch_size * steps)
            targets = self.agent.fixed_targets(big)
            next_out = self.agent.bootstrap_outputs(big.next_obs) if targets is None else None
            for g in range(steps):
                s = slice(g * cfg.batch_size, (g + 1) * cfg.batch_size)
                if targets is None:
                    metrics = self.agent.update(_slice(big, s), next_target_out=next_out[s])
                else:
                    metrics = self.agent.update(_slice(big, s), target=targets[s])
                self._after_update(metrics)
        else:
            beta = self.beta()
            for _ in range(steps):
                batch = self.buffer.sample(cfg.batch_size, beta)
                metrics = self.agent.update(batch)
                if cfg.prioritized_replay:
                    self.buffer.update_priorities(batch.index, metrics["td_abs"].cpu().numpy())
                self._after_update(metrics)
        self._check_finite()

    def _after_update(self, metrics: dict[str, torch.Tensor]) -> None:
        self._pending_losses.append(metrics["loss"])
        if self.agent.updates >= self._log_at:
            self._log_at += self.cfg.log_interval
            losses = torch.stack(self._pending_losses)
            self._pending_losses = []
            row = {"update": self.agent.updates, "env_step": self.env_step,
                   "loss": float(losses.mean()), "mean_q": float(metrics["q_sa"].mean()),
                   "td_abs_mean": float(metrics["td_abs"].mean()), "grad_norm": float(metrics["grad_norm"]),
                   "learning_rate": self.agent.optimizer.param_groups[0]["lr"], "sps": round(self._sps(), 1)}
            if not math.isfinite(row["loss"]):
                self._diverged()
            self.logger.update(row)

    def _check_finite(self) -> None:
        if self._pending_losses and not bool(torch.isfinite(self._pending_losses[-1])):
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
    def greedy_policy(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.q_values(obs).argmax(axis=1)

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> dict:
        episodes = episodes or self.cfg.eval_episodes
        seed = self.cfg.seed + 1_000_000 if seed is None else seed
        return run_episodes(self.greedy_policy, self.make_eval_env, episodes, seed=seed)

    def evaluate_and_log(self) -> dict:
        result = self.evaluate()
        result["env_step"] = self.env_step
        self.last_eval = result
        if self.logger is not None:
            self.logger.evaluation(self.env_step, result["mean_return"], result["std_return"])
        if self.checkpoints is not None and self.checkpoints.improves(result["mean_return"]):
            self.checkpoints.save_best(self.env_step, result["mean_return"], self.agent.tensors(), self.state())
        return result

    def record_video(self) -> list[Path]:
        """One greedy episode as run/videos/step_XXXXXXXXXX-episode-0.mp4 (and a GIF)."""
        from dqnkit.record import record_episodes

        def q_values(obs: np.ndarray) -> np.ndarray:
            return self.agent.q_values(np.asarray(obs)[None])[0]

        return record_episodes(q_values, self.make_eval_env, self.run_dir / "videos",
                               prefix=f"step_{self.env_step:010d}", seed=self.cfg.seed + 2_000_000)

    # --- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "dqnkit_version": __version__,
            "config": self.cfg.to_dict(),
            "env": self.signature,
            "torso": self.torso,
            "counters": {"env_step": self.env_step, "vec_steps": self.vec_steps, "episodes": self.episodes,
                         "next_eval": _num(self.next_eval), "next_checkpoint": _num(self.next_checkpoint),
                         "next_video": _num(self.next_video),
                         "log_at": self._log_at},
            "agent": self.agent.meta(),
            "rng": {"explore": _rng_state(self.rng), "torch": torch.get_rng_state().tolist()},
            "episode_accumulators": {"return": self.ep_return.tolist(), "length": self.ep_length.tolist()},
            "envs": vector_snapshot(self.envs),
            "last_eval": self.last_eval,
            "pending_losses": [float(x) for x in self._pending_losses],
        }

    def save_checkpoint(self) -> Path | None:
        if self.checkpoints is None:
            return None
        replay = self.buffer.state_dict() if self.cfg.save_replay else None
        return self.checkpoints.save(self.env_step, self.agent.tensors(), self.state(), replay)

    def restore(self, checkpoint_dir: Path) -> None:
        """Load a checkpoint written by a run with the same config and env (for resume)."""
        tensors, state, replay = load_checkpoint(checkpoint_dir, device=self.device)
        check_compatible(state, self.signature, checkpoint_dir)
        self.agent.load(tensors, state["agent"])
        c = state["counters"]
        self.env_step, self.vec_steps, self.episodes = c["env_step"], c["vec_steps"], c["episodes"]
        self.next_eval, self.next_checkpoint = _inf(c["next_eval"]), _inf(c["next_checkpoint"])
        self.next_video = _inf(c.get("next_video"))
        self._log_at = c["log_at"]
        self.rng.bit_generator.state = state["rng"]["explore"]
        torch.set_rng_state(torch.tensor(state["rng"]["torch"], dtype=torch.uint8))
        self.ep_return = np.asarray(state["episode_accumulators"]["return"], dtype=np.float64)
        self.ep_length = np.asarray(state["episode_accumulators"]["length"], dtype=np.int64)
        self.obs = vector_restore(self.envs, state["envs"])
        self.last_eval = state.get("last_eval")
        self._pending_losses = [torch.tensor(x) for x in state.get("pending_losses", [])]
        if replay is not None and "replay" in state:
            self.buffer.load_state_dict(replay, state["replay"])
        if self.run_dir is not None:
            for name in ("episodes.csv", "updates.csv", "eval.csv"):
                truncate_csv(self.run_dir / name, self.env_step)

    # --- run folder --------------------------------------------------------------------
    def _open_logger(self, target: int) -> None:
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(self.cfg.to_yaml())
        self.logger = RunLogger(self.run_dir, total_env_steps=target, verbosity=self.verbosity,
                                tensorboard=self.cfg.tensorboard, start_env_step=self.env_step)

    def _write_run_info(self) -> None:
        if self.run_dir is None:
            return
        write_json_atomic(self.run_dir / "run.json", {
            "status": self.status, "env_step": self.env_step, "episodes": self.episodes,
            "updates": self.agent.updates, "env_steps_per_s": round(self._sps(), 1),
            "dqnkit": __version__, "torch": torch.__version__, "gymnasium": gym.__version__,
            "python": platform.python_version(), "device": str(self.device),
            "last_eval": {k: v for k, v in (self.last_eval or {}).items() if k != "lengths"},
        })

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        self.envs.close()


def _num(x: float) -> float | None:
    return None if math.isinf(x) else x


def _inf(x: float | None) -> float:
    return math.inf if x is None else x


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
