"""The training loop of one population group: M members, one batched learner, one ordinary run folder each.

The loop is :class:`dqnkit.training.trainer.Trainer`'s, for all members at once: act (one forward pass),
step the M x E envs, add to the shared replay, a training round of every member, each member's target
sync on its own interval, evaluation, checkpoints, logs. What is per member is what a single run with the
member's config would own: its exploration generator and schedule, its episode counters, its CSV files,
its checkpoints (written in the single-run format, so ``dqnkit eval``, ``plot``, ``report`` and
``resume`` work on a member folder unchanged), its evaluation episodes (seeds ``seed + 1e6 + i``).

A group's checkpoint is complete when every member's ``checkpoints/step_X`` is written and the
population folder's ``population.json`` names step X (it is written last, atomically), so a run killed
between two members' checkpoints resumes from the previous complete one.
"""
from __future__ import annotations

import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from dqnkit import __version__
from dqnkit.envs.vector import EnvSource, TrainingEnvs
from dqnkit.errors import ConfigError, TrainingDiverged
from dqnkit.learner.agent import Agent, set_torch_threads
from dqnkit.learner.explore import EpsilonSchedule
from dqnkit.networks import pick_torso
from dqnkit.population.agent import PopulationAgent
from dqnkit.population.evaluate import evaluate_members
from dqnkit.population.members import Member
from dqnkit.replay.members import MemberReplay
from dqnkit.runfolder import (CONFIG_FILE, CSV_COLUMNS, RUN_INFO_FILE, atomic_write, generator_state,
                              set_generator_state, truncate_csv, write_json_atomic)
from dqnkit.training.checkpoint import (CheckpointIndex, RunState, load_checkpoint, never_to_none, none_to_never)
from dqnkit.training.logger import RunLogger, UpdateLog, make_progress
from dqnkit.training.interrupt import sigterm_as_interrupt
from dqnkit.training.trainer import EVAL_SEED_OFFSET


class PopulationTrainer:
    """One group of members (see :func:`dqnkit.population.members.split_groups`) trained together."""

    def __init__(self, members: Sequence[Member], root: Path | None, *, env: EnvSource | None = None,
                 verbosity: str = "auto"):
        self.members = list(members)
        self.cfgs = [m.config for m in self.members]
        cfg = self.cfg = self.cfgs[0]
        self.M, self.E = len(self.members), cfg.num_envs
        if cfg.frame_stack > 1 or cfg.video_every > 0:
            raise ConfigError("population mode trains vector-observation envs without videos; "
                              "set frame_stack=1 and video_every=0 (or train one seed at a time)")
        if any(c.q_network is not None for c in self.cfgs):
            raise ConfigError("population mode batches dqnkit's own MLP Q-networks and cannot stack a custom "
                              "q_network; train one seed at a time (drop --seeds) or set q_network=null")
        if cfg.exploration != "epsilon" or cfg.eval_epsilon > 0:
            raise ConfigError(f"population mode explores epsilon-greedily and evaluates greedily; exploration="
                              f"{cfg.exploration}, eval_epsilon={cfg.eval_epsilon:g} need one run per seed "
                              "(dqnkit train without --seeds), or set exploration=epsilon eval_epsilon=0")
        if cfg.per_round_sampling and cfg.prioritized_replay:
            raise ConfigError("population mode draws PER batches one at a time; set per_round_sampling=false "
                              "(or train one seed at a time)")
        self.root = Path(root) if root is not None else None
        self.run_dirs = [self.root / m.name if self.root else None for m in self.members]
        self.verbosity = verbosity
        set_torch_threads(cfg.torch_threads)
        source = env if env is not None else cfg.env_id
        self.envs = TrainingEnvs(source, cfg, env_seeds=[c.seed + e for c in self.cfgs for e in range(self.E)],
                                 vectorised=True)
        self.eval_source = source
        if pick_torso(cfg.torso, self.envs.obs_shape) != "mlp":
            raise ConfigError("population mode batches MLP Q-networks; image observations need one run per seed")
        self.agent = PopulationAgent(self.cfgs, self.envs.obs_shape, self.envs.n_actions,
                                     input_scale=self.envs.input_scale)
        self.replay = MemberReplay(
            cfg.buffer_size, self.M, self.E, self.envs.obs_shape, self.envs.obs_dtype,
            n_steps=[c.n_step for c in self.cfgs], gammas=[c.gamma for c in self.cfgs],
            seeds=[c.seed + 2 for c in self.cfgs], prioritized=cfg.prioritized_replay,
            alphas=[c.alpha for c in self.cfgs], priority_eps=[c.priority_epsilon for c in self.cfgs],
            priority_clips=[c.priority_clip for c in self.cfgs], device=self.agent.device)
        self.schedules = [EpsilonSchedule.from_config(c) for c in self.cfgs]
        self.rngs = [np.random.default_rng(c.seed + 3) for c in self.cfgs]
        self.env_step = self.vec_steps = 0
        self.episodes = np.zeros(self.M, dtype=np.int64)
        self.next_eval = cfg.eval_freq if cfg.eval_freq > 0 else math.inf
        self.next_checkpoint = cfg.checkpoint_freq if cfg.checkpoint_freq > 0 else math.inf
        self.last_eval: list[dict | None] = [None] * self.M
        self.ep_return = np.zeros(self.M * self.E)
        self.ep_length = np.zeros(self.M * self.E, dtype=np.int64)
        self.update_log = UpdateLog(cfg.log_interval)  # members update in lockstep: one log_at for all
        self.obs = self.envs.reset()
        if self.envs.masked:
            raise ConfigError("population mode does not support envs with action masks (info['action_mask'] or "
                              "action_masks()); train one seed at a time (dqnkit train without --seeds)")
        self.checkpoints = [CheckpointIndex(d, c.keep_checkpoints) if d else None
                            for d, c in zip(self.run_dirs, self.cfgs)]
        self.loggers: list[RunLogger] = []
        self.status = "created"
        self.train_every = max(1, cfg.train_freq // self.E)
        self.sync_every = np.array([max(1, c.target_update_interval // self.E) for c in self.cfgs])
        self._clock = (time.perf_counter(), 0)
        self.lr_scheduled = any(c.learning_rate_schedule != "constant" for c in self.cfgs)
        self._on_checkpoint: Callable[[int], None] | None = None

    # --- the loop ----------------------------------------------------------------------
    def epsilons(self) -> list[float]:
        if self.cfg.noisy:
            return [0.0] * self.M
        return [s.value(self.env_step, int(e)) for s, e in zip(self.schedules, self.episodes)]

    def learn(self, until_env_step: int | None = None, on_complete_checkpoint: Callable[[int], None] | None = None
              ) -> dict:
        """Train every member until ``until_env_step`` env steps each (default: total_timesteps)."""
        cfg = self.cfg
        target = int(until_env_step if until_env_step is not None else cfg.total_timesteps)
        self._on_checkpoint = on_complete_checkpoint
        self._open_loggers(target)
        self.status = "running"
        self._write_run_info()
        self._clock = (time.perf_counter(), self.env_step)
        interrupted = False
        try:
            with sigterm_as_interrupt(self.root is not None):
                while self.env_step < target:
                    self._step()
                    if self.vec_steps % self.train_every == 0 and self.env_step > cfg.learning_starts:
                        self._train_round()
                    due = self.vec_steps % self.sync_every == 0
                    if due.any():
                        self.agent.sync_target(due)
                    if self.env_step >= self.next_eval:
                        self.next_eval += cfg.eval_freq
                        self.evaluate_and_log()
                    if self.env_step >= self.next_checkpoint:
                        self.next_checkpoint += cfg.checkpoint_freq
                        self.save_checkpoints()
                    if self.vec_steps % 64 == 0:
                        self._tick()
                if cfg.eval_freq == 0 or self.last_eval[0] is None or self.last_eval[0]["env_step"] != self.env_step:
                    self.evaluate_and_log()
            self.status = "finished"
        except KeyboardInterrupt:
            interrupted = True
            self.status = "interrupted"
        except TrainingDiverged:
            self.status = "diverged"
            self._write_run_info()
            self._close_loggers()
            raise
        if self.root is not None:
            self.save_checkpoints()
            if interrupted:
                self.progress.message(f"interrupted at env step {self.env_step}; checkpoints written\n"
                                      f"resume with: dqnkit resume {self.root}")
        self._tick()
        self._write_run_info()
        self._close_loggers()
        if interrupted and self.root is None:
            raise KeyboardInterrupt
        return {"env_step": self.env_step, "status": self.status, "members": self.results()}

    def results(self) -> list[dict]:
        return [{"name": m.name, "seed": m.config.seed, "setting": m.setting, "run_dir": str(d) if d else None,
                 "episodes": int(e), "last_eval": ev}
                for m, d, e, ev in zip(self.members, self.run_dirs, self.episodes, self.last_eval)]

    def _step(self) -> None:
        cfg, M, E = self.cfg, self.M, self.E
        if self.env_step < cfg.learning_starts and not cfg.noisy:
            actions = np.stack([rng.integers(0, self.envs.n_actions, size=E) for rng in self.rngs])
        else:
            obs = self.obs.reshape(M, E, *self.obs.shape[1:])
            actions = self.agent.act(obs, self.epsilons(), self.rngs)
        flat = actions.reshape(-1)
        step = self.envs.step(flat)
        self.replay.add(self.obs, flat, step.reward, step.terminated, step.truncated, step.final_obs)
        self.obs = step.next_obs
        self.vec_steps += 1
        self.env_step += E
        self.ep_return += step.reported_reward
        self.ep_length += 1
        ended = np.flatnonzero(step.episode_end)
        if ended.size:
            eps = self.epsilons()
            for k in ended.tolist():
                m = k // E
                self.episodes[m] += 1
                self.loggers[m].episode(self.env_step, int(self.episodes[m]), self.ep_return[k], self.ep_length[k],
                                        eps[m])
                self.ep_return[k] = 0.0
                self.ep_length[k] = 0

    def _betas(self) -> list[float]:
        frac = min(1.0, self.env_step / max(1, self.cfg.total_timesteps))
        return [c.beta_initial + frac * (1.0 - c.beta_initial) for c in self.cfgs]

    def _train_round(self) -> None:
        cfg = self.cfg
        if not self.replay.can_sample(cfg.batch_size):
            return
        n_updates = self.train_every * self.E if cfg.gradient_steps == -1 else cfg.gradient_steps
        if self.lr_scheduled:
            self.agent.set_learning_rates([c.learning_rate_at(self.env_step) for c in self.cfgs])
        for metrics in self.agent.train_round(self.replay, n_updates, cfg.batch_size, self._betas()):
            if self.update_log.add(metrics, self.agent.updates):
                self._log_updates(metrics)
        if not self.update_log.last_loss_finite():
            self._diverged()

    def _log_updates(self, metrics: dict[str, torch.Tensor]) -> None:
        """One updates.csv row per member: UpdateLog's row, read member by member."""
        pending = torch.stack(self.update_log.pending)  # (updates, M)
        lrs = self.agent.optimizer.lr_values
        sps = self._sps()
        for m in range(self.M):
            log = UpdateLog(self.cfg.log_interval)
            log.log_at, log.pending = self.update_log.log_at, list(pending[:, m])
            row = log.row({k: v[m] for k, v in metrics.items()}, self.agent.updates, self.env_step, lrs[m], sps)
            if not UpdateLog.finite(row):
                self._diverged(m)
            self.loggers[m].update(row)
        self.update_log.log_at += self.cfg.log_interval
        self.update_log.pending = []

    def _diverged(self, m: int | None = None) -> None:
        who = f"member {self.members[m].name}" if m is not None else "a member"
        raise TrainingDiverged(f"loss of {who} became NaN/inf at update {self.agent.updates} (env step "
                               f"{self.env_step}): lower its learning_rate, set max_grad_norm, or use loss=huber")

    def _sps(self) -> float:
        t0, s0 = self._clock
        dt = time.perf_counter() - t0
        return (self.env_step - s0) / dt if dt > 0 else 0.0

    def _tick(self) -> None:
        recent = [np.mean(lg.recent_returns) if lg.recent_returns else float("nan") for lg in self.loggers]
        finite = [r for r in recent if math.isfinite(r)]
        spread = (f"return(100) median {np.median(finite):.1f} [{min(finite):.1f}, {max(finite):.1f}]"
                  if finite else "return(100) n/a")
        self.progress.show(self.env_step, f"{self.M} members  {spread}  {self._sps() * self.M:.0f} env steps/s")

    # --- evaluation --------------------------------------------------------------------
    def evaluate(self, episodes: int | None = None) -> list[dict]:
        episodes = episodes or self.cfg.eval_episodes
        seeds = np.array([[c.seed + EVAL_SEED_OFFSET + i for i in range(episodes)] for c in self.cfgs])
        return evaluate_members(self.agent.q_values, self.eval_source, self.envs, seeds)

    def evaluate_and_log(self) -> list[dict]:
        results = self.evaluate()
        for m, res in enumerate(results):
            res["env_step"] = self.env_step
            self.last_eval[m] = res
            if self.loggers:
                self.loggers[m].evaluation(self.env_step, res["mean_return"], res["std_return"])
            index = self.checkpoints[m]
            if index is not None and index.improves(res["mean_return"]):
                agent = self.agent.member_agent(m)
                index.save_best(self.env_step, res["mean_return"], agent.tensors(), self.member_state(m, agent))
        return results

    # --- checkpoints (one ordinary checkpoint per member) ------------------------------------------
    def member_state(self, m: int, agent: Agent) -> dict[str, Any]:
        E = self.E
        rows = slice(m * E, (m + 1) * E)
        return RunState(
            config=self.cfgs[m].to_dict(), env=self.envs.signature, torso="mlp",
            counters={"env_step": self.env_step, "vec_steps": self.vec_steps, "episodes": int(self.episodes[m]),
                      "next_eval": never_to_none(self.next_eval), "next_checkpoint": never_to_none(self.next_checkpoint),
                      "next_video": None, "log_at": self.update_log.log_at},
            agent=agent.meta(), rng={"explore": generator_state(self.rngs[m]), "torch": torch.get_rng_state().tolist()},
            episode_accumulators={"return": self.ep_return[rows].tolist(), "length": self.ep_length[rows].tolist()},
            envs=self.envs.snapshot()[rows], last_eval=self.last_eval[m],
            pending_losses=[float(p[m]) for p in self.update_log.pending],
        ).to_json()

    def save_checkpoints(self) -> None:
        if self.root is None:
            return
        for m in range(self.M):
            agent = self.agent.member_agent(m)
            replay = self.replay.member_state_dict(m) if self.cfg.save_replay else None
            self.checkpoints[m].save(self.env_step, agent.tensors(), self.member_state(m, agent), replay)
        if self._on_checkpoint is not None:
            self._on_checkpoint(self.env_step)

    def restore(self, env_step: int) -> None:
        """Continue from every member's ``checkpoints/step_<env_step>`` (a complete group checkpoint)."""
        replays, snapshots = [], []
        for m, (member, run_dir) in enumerate(zip(self.members, self.run_dirs)):
            ckpt = run_dir / "checkpoints" / f"step_{env_step:010d}"
            tensors, data, replay = load_checkpoint(ckpt, with_replay=self.cfg.save_replay, device=self.agent.device)
            state = RunState.from_json(data, ckpt)
            with torch.random.fork_rng(devices=[]):  # Agent() seeds torch's global RNG
                agent = Agent(member.config, self.envs.obs_shape, self.envs.n_actions, torso="mlp",
                              input_scale=self.envs.input_scale)
            agent.load(tensors, state.agent)
            self.agent.load_member(m, agent)
            c = state.counters
            self.env_step, self.vec_steps, self.episodes[m] = c["env_step"], c["vec_steps"], c["episodes"]
            self.next_eval, self.next_checkpoint = none_to_never(c["next_eval"]), none_to_never(c["next_checkpoint"])
            set_generator_state(self.rngs[m], state.rng["explore"])
            torch.set_rng_state(torch.tensor(state.rng["torch"], dtype=torch.uint8))
            rows = slice(m * self.E, (m + 1) * self.E)
            self.ep_return[rows] = state.episode_accumulators["return"]
            self.ep_length[rows] = state.episode_accumulators["length"]
            self.last_eval[m] = state.last_eval
            self.update_log.log_at = c["log_at"]
            if m == 0:
                self.update_log.pending = [torch.zeros(self.M) for _ in state.pending_losses]
            for i, loss in enumerate(state.pending_losses):
                self.update_log.pending[i][m] = loss
            snapshots += state.envs
            if replay is not None and state.replay is not None:
                replays.append((replay, state.replay))
            for name in CSV_COLUMNS:
                truncate_csv(run_dir / name, self.env_step)
        self.obs = self.envs.restore(snapshots)
        if replays:
            self.replay.load_member_state_dicts(replays)

    # --- run folders -------------------------------------------------------------------
    def discard_partial_logs(self) -> None:
        """Empty the members' CSV files (a group that starts over after an interruption before its first
        complete checkpoint)."""
        for run_dir in self.run_dirs:
            if run_dir is not None:
                for name in CSV_COLUMNS:
                    truncate_csv(run_dir / name, -1)

    def _open_loggers(self, target: int) -> None:
        self.progress = make_progress(self.verbosity, target, self.env_step)
        self.loggers = []
        for cfg, run_dir in zip(self.cfgs, self.run_dirs):
            if run_dir is not None:
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write(run_dir / CONFIG_FILE, cfg.to_yaml())
            self.loggers.append(RunLogger(run_dir, total_env_steps=target, verbosity="quiet",
                                          tensorboard=cfg.tensorboard, start_env_step=self.env_step))

    def _close_loggers(self) -> None:
        for logger in self.loggers:
            logger.close()
        self.loggers = []
        self.progress.close()

    def _write_run_info(self) -> None:
        for m, run_dir in enumerate(self.run_dirs):
            if run_dir is None:
                continue
            write_json_atomic(run_dir / RUN_INFO_FILE, {
                "status": self.status, "env_step": self.env_step, "episodes": int(self.episodes[m]),
                "updates": self.agent.updates, "env_steps_per_s": round(self._sps(), 1),
                "population": {"folder": str(self.root), "members": self.M, "member": self.members[m].name,
                               "aggregate_env_steps_per_s": round(self._sps() * self.M, 1)},
                "dqnkit": __version__, "torch": torch.__version__, "gymnasium": gym.__version__,
                "python": platform.python_version(), "device": str(self.agent.device),
                "last_eval": {k: v for k, v in (self.last_eval[m] or {}).items() if k != "lengths"},
            })

    def close(self) -> None:
        if self.loggers:
            self._close_loggers()
        self.envs.close()
