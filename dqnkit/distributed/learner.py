"""Ape-X's learner (Horgan et al. 2018, Algorithm 2) in the driver: :class:`ApexTrainer` is the single-process
:class:`dqnkit.training.trainer.Trainer` with its acting replaced by the actors' chunks.

It reuses the Agent and its training round unchanged (batch size, Double, dueling, n-step, PER from the config),
the run folder, logging, evaluation, videos and checkpoints. What differs:

- ``train_freq`` counts inserted transitions: every ``train_freq`` env steps that reach the replay give one
  training round of ``gradient_steps`` updates, so the replay ratio is the single-process one;
  ``target_update_interval`` counts inserted env steps too.
- Every ``weight_sync_interval`` updates the online weights are published once (``ray.put``) for all actors.
- Backpressure: at most 2 chunks in flight per actor (``ray.wait``); ``apex_sync`` gathers one chunk per actor per
  round, in actor order, which makes a run deterministic and exactly resumable.
- SIGTERM and Ctrl-C set a flag the loop reads between chunks: the chunks in flight are inserted, then the
  checkpoint holds the learner, the counters, the replay shards (with ``save_replay``), the weights the actors
  hold (``published.*`` in model.safetensors) and every actor's snapshot (epsilon index, episode count, seed base,
  envs and RNG), so ``dqnkit resume`` continues on Ray.

The replay lives in this process, so no training batch crosses a process boundary. On a real cluster a separate
replay actor would pay off once the learner's inserts (one ``add`` per vector step, in Python) rather than its
updates limit it, or when the replay outgrows the driver's memory; see benchmarks/apex.py for the two rates.
"""
from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from dqnkit.config import Config
from dqnkit.distributed.actor import numpy_weights
from dqnkit.distributed.cluster import connect
from dqnkit.distributed.fleet import ActorFleet
from dqnkit.distributed.shards import ShardedReplay
from dqnkit.errors import ConfigError
from dqnkit.replay import ReplayBuffer
from dqnkit.runfolder import ACTOR_COLUMNS, ACTORS_FILE, truncate_csv
from dqnkit.training.callbacks import Callbacks, TrainingView
from dqnkit.training.checkpoint import load_checkpoint, read_state
from dqnkit.training.logger import CsvLog
from dqnkit.training.trainer import Trainer

ACTORS_LOG_EVERY_S = 5.0


class ApexTrainer(Trainer):
    """A :class:`Trainer` whose transitions come from ``cfg.actors`` Ray actors (``cfg.distributed == "ray"``)."""

    def __init__(self, cfg: Config, run_dir: Path | None = None, *, verbosity: str = "auto",
                 num_cpus: int | None = None) -> None:
        if cfg.actors < 1:
            raise ConfigError(f"actors must be >= 1, got {cfg.actors}")
        super().__init__(cfg, run_dir, verbosity=verbosity)
        self.num_cpus = num_cpus
        self._fleet: ActorFleet | None = None
        self._pending_restore: tuple | None = None
        self.since_train = self.since_sync = 0  # inserted env steps since the last training round / target sync
        self.signalled = False
        self.actors_log: CsvLog | None = None

    @property
    def buffer(self) -> ShardedReplay:
        if self._buffer is None:
            cfg = self.cfg
            frames = {"frame_stack": cfg.frame_stack} if self.envs.atari and cfg.frame_stack > 1 else {}
            per_shard = max(cfg.buffer_size // cfg.actors, cfg.num_envs)
            shards = [ReplayBuffer(per_shard, cfg.num_envs, self.envs.obs_shape, self.envs.obs_dtype,
                                   n_step=cfg.n_step, gamma=cfg.gamma, prioritized=cfg.prioritized_replay,
                                   alpha=cfg.alpha, priority_eps=cfg.priority_epsilon,
                                   priority_clip=cfg.priority_clip, seed=cfg.seed + 2 + 7919 * i,
                                   device=self.device, mask_actions=self.envs.n_actions if self.envs.masked else 0,
                                   **frames)
                      for i in range(cfg.actors)]
            self._buffer = ShardedReplay(shards, seed=cfg.seed + 5)
        return self._buffer

    @property
    def fleet(self) -> ActorFleet:
        """The actors, started on first use (Ray too, when this process has none)."""
        if self._fleet is None:
            ray = connect(self.cfg.ray_address, num_cpus=self.num_cpus)
            say = self.logger.progress.message if self.logger is not None else print
            self._fleet = ActorFleet(ray, self.cfg, say=say)
            if self._pending_restore is not None:
                state, snapshots, weights = self._pending_restore
                for i in self._fleet.restore(state, snapshots, weights):
                    self.buffer.cut(i)
                self._pending_restore = None
            else:
                self._publish()
        return self._fleet

    def _publish(self) -> None:
        self.fleet.publish(numpy_weights(self.agent.online), self.agent.updates)

    def epsilon(self) -> float:
        return 0.0  # each actor has its own (actors.csv); the learner acts only in evaluation

    # --- the loop ----------------------------------------------------------------------
    def learn(self, until_env_step: int | None = None, callback: Any = None) -> dict:
        cfg = self.cfg
        target = int(until_env_step if until_env_step is not None else cfg.total_timesteps)
        self.callbacks, self._stop = Callbacks(callback), False
        self.view = TrainingView(self)
        self._open_logger(target)
        self.guards.say = self.logger.progress.message
        self.guards.start()
        self.status = "running"
        self._write_run_info()
        fleet = self.fleet
        self._open_actors_log()
        self._clock = (time.perf_counter(), self.env_step)
        self._rates = (time.perf_counter(), self.agent.updates)
        last_log = time.perf_counter()
        stopped_early = False
        with self._stop_signals():
            while self.env_step < target and not self._stop and not self.signalled:
                if cfg.apex_sync:
                    got = fleet.gather_round()
                else:
                    fleet.fill()
                    got = fleet.collect(timeout_s=1.0)
                for i, chunk in got:
                    self._insert(i, chunk)
                if time.perf_counter() - last_log >= ACTORS_LOG_EVERY_S:
                    last_log = time.perf_counter()
                    self._log_actors()
            stopped_early = self._stop and not self.signalled
            for i, chunk in fleet.drain():  # the chunks in flight reach the replay before any checkpoint
                self._insert(i, chunk, act=False)
            if not self.signalled and (cfg.eval_freq == 0 or self.last_eval is None
                                       or self.last_eval["env_step"] != self.env_step):
                self.evaluate_and_log()
        self.status = "interrupted" if self.signalled else ("stopped" if stopped_early else "finished")
        if self.run_dir is not None:
            path = self.save_checkpoint()
            if self.signalled or stopped_early:
                why = f"stopped by a callback ({self.callbacks.stopped_by})" if stopped_early else "interrupted"
                self.logger.progress.message(f"{why} at env step {self.env_step}; checkpoint written to {path}\n"
                                             f"resume with: dqnkit resume {self.run_dir}")
        self._tick()
        self._log_actors()
        self._write_run_info()
        self.logger.close()
        self.logger = None
        if self.actors_log is not None:
            self.actors_log.close()
            self.actors_log = None
        return {"env_step": self.env_step, "episodes": self.episodes, "status": self.status,
                "last_eval": self.last_eval, "stopped_by": self.callbacks.stopped_by,
                "restarts": list(fleet.restarts), "dropped_chunks": sum(fleet.dropped),
                "duplicates": fleet.duplicates}

    def _insert(self, i: int, chunk: dict | None, act: bool = True) -> None:
        """One chunk into shard ``i``; then the training rounds, target syncs and side channels it makes due."""
        cfg, fleet = self.cfg, self.fleet
        if chunk is None:  # actor i died: its stream ends at the last chunk inserted
            self.buffer.cut(i)
            return
        start = self.env_step
        n = self.buffer.add_chunk(i, chunk)
        K, E = chunk["action"].shape
        self.env_step += n
        self.vec_steps += K
        for ret, length, t in zip(chunk["returns"], chunk["lengths"], chunk["end_steps"]):
            self.episodes += 1
            self.logger.episode(start + (int(t) + 1) * E, self.episodes, ret, length, chunk["epsilon"])
            self.last_episode = (float(ret), int(length))
            self.guards.episode_end(int(length))
            self._hook(self.callbacks.on_episode_end)
        self.since_train += n
        while self.since_train >= cfg.train_freq:
            self.since_train -= cfg.train_freq
            if self.env_step > cfg.learning_starts:
                self._train_round()
                if self.agent.updates - fleet.version >= cfg.weight_sync_interval:
                    self._publish()
        self.since_sync += n
        while self.since_sync >= cfg.target_update_interval:
            self.since_sync -= cfg.target_update_interval
            self.agent.sync_target()
        self._side_work_due(checkpoint=act)
        self._tick()
        on_step = self.callbacks.on_step
        if on_step is not None and on_step(self.view) is False:
            self._stop = True

    def _tick(self) -> None:
        if self.logger is None:
            return
        t0, u0 = self._rates
        dt = time.perf_counter() - t0
        ups = (self.agent.updates - u0) / dt if dt > 0 else 0.0
        recent = self.logger.recent_returns
        ret = sum(recent) / len(recent) if recent else float("nan")
        self.logger.progress.show(self.env_step, f"return(100) {ret:.1f}  {self._sps():.0f} env steps/s  "
                                                 f"{ups:.0f} updates/s  replay {len(self.buffer)}")

    @contextlib.contextmanager
    def _stop_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT set ``signalled``; the loop stops between chunks and checkpoints (main thread only)."""
        self.signalled = False

        def handler(signum, frame):
            self.signalled = True

        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: no signals
                pass
        try:
            yield
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)

    # --- actors.csv --------------------------------------------------------------------
    def _open_actors_log(self) -> None:
        if self.run_dir is not None and self.actors_log is None:
            self.actors_log = CsvLog(self.run_dir / ACTORS_FILE, ACTOR_COLUMNS)
        self._wall0 = time.perf_counter()

    def _log_actors(self) -> None:
        if self.actors_log is not None and self._fleet is not None:
            for row in self._fleet.rows(self.env_step, time.perf_counter() - self._wall0):
                self.actors_log.write(row)

    # --- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        data = super().state()
        fleet = self.fleet
        data["apex"] = {"fleet": fleet.state(), "actors": fleet.snapshots(), "since_train": self.since_train,
                        "since_sync": self.since_sync}
        return data

    def tensors(self) -> dict[str, torch.Tensor]:
        """The agent's tensors plus the weights the actors hold now (``published.*``)."""
        out = dict(self.agent.tensors())
        weights = self.fleet.ray.get(self.fleet.weights_ref)
        out.update({f"published.{k}": torch.from_numpy(np.array(v)) for k, v in weights.items()})
        return out

    def save_checkpoint(self) -> Path | None:
        if self.checkpoints is None:
            return None
        replay = self.buffer.state_dict() if self.cfg.save_replay else None
        self.last_checkpoint = self.checkpoints.save(self.env_step, self.tensors(), self.state(), replay)
        self._hook(self.callbacks.on_checkpoint)
        return self.last_checkpoint

    def save_model(self, directory: Path) -> Path:
        from dqnkit.training.checkpoint import save_checkpoint
        return save_checkpoint(Path(directory), self.tensors(), self.state())

    def restore(self, checkpoint_dir: Path, *, replay: bool = True, env_id: str | None = None) -> None:
        super().restore(checkpoint_dir, replay=replay, env_id=env_id)
        data = read_state(checkpoint_dir)
        apex = data.get("apex")
        if apex is None:  # a single-process checkpoint: the actors start fresh
            return
        self.since_train, self.since_sync = int(apex["since_train"]), int(apex["since_sync"])
        tensors, _, _ = load_checkpoint(checkpoint_dir, with_replay=False)
        prefix = "published."
        weights = {k[len(prefix):]: v.numpy() for k, v in tensors.items() if k.startswith(prefix)}
        self._pending_restore = (apex["fleet"], apex["actors"], weights)
        if self.run_dir is not None:
            truncate_csv(self.run_dir / ACTORS_FILE, self.env_step)

    def close(self) -> None:
        if self._fleet is not None:
            self._fleet.close()
            self._fleet = None
        super().close()
