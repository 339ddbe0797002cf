"""The learner's side of the actors: creating them on Ray, keeping at most ``depth`` chunks in flight per actor,
publishing weights, and the faults (Horgan et al. 2018 leave these to the cluster; here Ray's actor restarts).

Actors run with ``max_restarts=-1`` and ``max_task_retries=0``: Ray restarts a dead actor but never re-runs a
task, so no chunk reaches the learner twice. A chunk lost to a death is dropped and counted; the learner then
closes the actor's shard at the last chunk it did insert (``ShardedReplay.cut``) and sends the restarted actor
its new seed base (``seed + 1000 * i + restarts``) and the latest weights. A chunk is accepted only when it
carries the actor's current restart count and the next sequence number, so a death between two tasks (a fresh
actor answering) is caught too. An actor that fails ``MAX_FAILURES`` times without a chunk in between is retired
with a warning and the run goes on with the others.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Callable

import numpy as np

from dqnkit.config import Config
from dqnkit.distributed.actor import ApexActor, actor_seed
from dqnkit.distributed.cluster import actor_epsilons
from dqnkit.errors import DqnkitError

MAX_FAILURES = 3
RETRY_S = 0.5


class ActorFleet:
    """``cfg.actors`` Ray actors; ``say`` prints a warning line."""

    def __init__(self, ray: Any, cfg: Config, say: Callable[[str], None] = print, depth: int = 2) -> None:
        self.ray, self.cfg, self.say, self.depth = ray, cfg, say, int(depth)
        n = self.n = cfg.actors
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        per_actor = 1.0 if cpus >= n + 1 else max(0.01, round(cpus / (n + 1), 3))  # leave room for the learner
        remote = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=per_actor)(ApexActor)
        self.handles = [remote.remote(cfg.to_dict(), i, n) for i in range(n)]
        self.epsilons = [0.0] * n if cfg.noisy else actor_epsilons(n, cfg.apex_eps_base, cfg.apex_eps_alpha)
        self.restarts, self.failures = [0] * n, [0] * n
        self.alive = [True] * n
        self.next_seq = [1] * n  # the sequence number of the next chunk each actor sends
        self.needs_reset = [False] * n  # died: the reset (new seed base, weights) goes before any chunk
        self.retry_at = [0.0] * n  # when to ask a restarting actor for its reset again (time.monotonic)
        self.queues: list[collections.deque] = [collections.deque() for _ in range(n)]
        self.weights_ref, self.version = None, -1
        self.sent_version = [-1] * n
        self.env_steps, self.episodes, self.chunks, self.dropped = ([0] * n for _ in range(4))
        self.seconds = [0.0] * n
        self.lag = [0] * n
        self.seen: set[tuple[int, int, int]] = set()  # (actor, restarts, seq) of every chunk accepted
        self.duplicates = 0
        self._out: list[tuple[int, dict | None]] = []  # what collect, gather_round and drain return

    # --- weights -----------------------------------------------------------------------
    def publish(self, weights: dict[str, np.ndarray], version: int) -> None:
        """One ``ray.put`` for all actors; each gets the reference with its next task."""
        self.weights_ref, self.version = self.ray.put(weights), int(version)

    def _weights_for(self, i: int) -> Any:
        if self.sent_version[i] == self.version:
            return None
        self.sent_version[i] = self.version
        return self.weights_ref

    # --- chunks ------------------------------------------------------------------------
    def submit(self, i: int) -> None:
        """Ask actor ``i`` for a chunk, or, after its death, for the reset that must come first."""
        if self.needs_reset[i]:
            if any(kind == "reset" for _, _, kind in self.queues[i]) or time.monotonic() < self.retry_at[i]:
                return
            ref = self.handles[i].reset.remote(self.restarts[i], self.weights_ref, self.version)
            self.sent_version[i] = self.version
            self.queues[i].append((ref, self.restarts[i], "reset"))
            return
        ref = self.handles[i].sample.remote(self.cfg.apex_chunk_steps, self._weights_for(i), self.version)
        self.queues[i].append((ref, self.restarts[i], "sample"))

    def fill(self) -> None:
        for i in range(self.n):
            if self.alive[i] and self.needs_reset[i]:
                self.submit(i)
            while self.alive[i] and not self.needs_reset[i] and len(self.queues[i]) < self.depth:
                self.submit(i)

    def in_flight(self) -> int:
        return sum(len(q) for q in self.queues)

    def collect(self, timeout_s: float = 1.0) -> list[tuple[int, dict]]:
        """The chunks ready now (waiting up to ``timeout_s`` for one), each actor's in the order it sent them."""
        refs = [ref for q in self.queues for ref, _, _ in q]
        if not refs:  # every live actor is waiting to be asked for its reset again
            self._all_dead_check()
            time.sleep(RETRY_S / 5)
            return []
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout_s)
        if not ready:
            return []
        ready_set = set(ready)
        self._out = []
        for i, q in enumerate(self.queues):
            if any(ref in ready_set for ref, _, _ in q):
                while q:  # everything up to the ready one, in order (the earlier ones are done or failed)
                    ref = q[0][0]
                    self._take(i)
                    if ref in ready_set:
                        break
        return self._out

    def gather_round(self) -> list[tuple[int, dict]]:
        """``--sync``: one chunk from every live actor, in actor order."""
        self._out = []
        for i in range(self.n):
            if self.alive[i] and self.needs_reset[i]:  # a restarted actor: its reset, then its chunk
                self.retry_at[i] = 0.0
                self.submit(i)
                while self.queues[i]:
                    self._take(i)
            if self.alive[i] and not self.needs_reset[i]:
                self.submit(i)
        for i in range(self.n):
            while self.queues[i]:
                self._take(i)
        self._all_dead_check()
        return self._out

    def drain(self) -> list[tuple[int, dict]]:
        """Every chunk still in flight (before a checkpoint, so the actors' snapshots match the replay)."""
        self._out = []
        for i in range(self.n):
            while self.queues[i]:
                self._take(i)
        return self._out

    def _take(self, i: int) -> None:
        """Get actor ``i``'s oldest chunk in flight into ``_out``: ``(i, chunk)``, or ``(i, None)`` where its
        stream was cut (the actor died; its shard is to be closed before the next incarnation's chunks)."""
        ref, incarnation, kind = self.queues[i].popleft()
        if kind == "reset":
            self._reset_done(i, ref)
            return
        try:
            chunk = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:  # died, or unavailable while Ray restarts it
            self._lost(i, incarnation)
            return
        if chunk["restarts"] != self.restarts[i] or chunk["seq"] != self.next_seq[i]:
            self._lost(i, incarnation, dead_between_tasks=incarnation == self.restarts[i])
            return
        key = (i, chunk["restarts"], chunk["seq"])
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.next_seq[i] += 1
        self.failures[i] = 0
        self.env_steps[i] += chunk["env_steps"]
        self.episodes[i] += len(chunk["returns"])
        self.chunks[i] += 1
        self.seconds[i] += chunk["seconds"]
        self.lag[i] = max(0, self.version - chunk["version"]) if chunk["version"] >= 0 else self.version
        self._out.append((i, chunk))

    def _reset_done(self, i: int, ref: Any) -> None:
        try:
            self.ray.get(ref)
        except self.ray.exceptions.ActorUnavailableError:  # still restarting: ask again shortly
            self.retry_at[i] = time.monotonic() + RETRY_S
            return
        except self.ray.exceptions.RayActorError:
            self.retry_at[i] = time.monotonic() + RETRY_S
            self._failed(i)
            return
        self.needs_reset[i] = False
        self.next_seq[i] = 1

    def _failed(self, i: int) -> bool:
        """Count a failure in a row of actor ``i``; retire it after MAX_FAILURES (True when retired)."""
        self.failures[i] += 1
        if self.failures[i] < MAX_FAILURES:
            return False
        if self.alive[i]:
            self.alive[i] = False
            live = sum(self.alive)
            self.say(f"warning: actor {i} could not be restarted ({self.failures[i]} failures in a row); "
                     f"continuing with {live} actor{'s' if live != 1 else ''}")
        self.queues[i].clear()
        self._all_dead_check()
        return True

    def _lost(self, i: int, incarnation: int, dead_between_tasks: bool = False) -> None:
        """A chunk of actor ``i`` lost (``incarnation``: the restart count it was asked under)."""
        self.dropped[i] += 1
        if incarnation != self.restarts[i] and not dead_between_tasks:
            return  # an older incarnation's chunk: its death is handled already
        if self._failed(i):
            return
        self.restarts[i] += 1
        self._out.append((i, None))
        self.needs_reset[i] = True
        self.retry_at[i] = 0.0

    def _all_dead_check(self) -> None:
        if not any(self.alive):
            raise DqnkitError("every actor failed and none could be restarted; see the Ray logs "
                              "(/tmp/ray/session_latest/logs)")

    # --- checkpoints and logs ----------------------------------------------------------
    def snapshots(self) -> list[dict | None]:
        """Each live actor's snapshot (after its tasks in flight, so drain first for an exact one)."""
        refs = [h.snapshot.remote() if a else None for h, a in zip(self.handles, self.alive)]
        out = []
        for i, ref in enumerate(refs):
            try:
                out.append(self.ray.get(ref) if ref is not None else None)
            except self.ray.exceptions.RayActorError:
                out.append(None)
        return out

    def state(self) -> dict:
        return {"restarts": self.restarts, "alive": self.alive, "next_seq": self.next_seq, "version": self.version,
                "epsilons": self.epsilons, "env_steps": self.env_steps, "episodes": self.episodes,
                "chunks": self.chunks, "dropped": self.dropped, "seconds": self.seconds,
                "seed_bases": [actor_seed(self.cfg.seed, i, r) for i, r in enumerate(self.restarts)]}

    def restore(self, state: dict, snapshots: list[dict | None], weights: dict[str, np.ndarray]) -> list[int]:
        """Put the actors back where a checkpoint left them; returns the actors whose shard must be cut (their
        snapshot was taken past the last chunk inserted, or they restart fresh)."""
        for key in ("restarts", "env_steps", "episodes", "chunks", "dropped", "seconds"):
            setattr(self, key, list(state[key]))
        self.publish(weights, state["version"])
        refs, cuts = [], []
        for i in range(self.n):
            snap = snapshots[i] if i < len(snapshots) else None
            self.sent_version[i] = self.version
            if snap is None or not state["alive"][i]:
                cuts.append(i)
                self.restarts[i] += 1
                refs.append(self.handles[i].reset.remote(self.restarts[i], self.weights_ref, self.version))
                self.next_seq[i] = 1
                continue
            if int(snap["chunks"]) + 1 != int(state["next_seq"][i]):
                cuts.append(i)
            refs.append(self.handles[i].restore.remote(snap, self.weights_ref, self.version))
            self.next_seq[i] = int(snap["chunks"]) + 1
        self.ray.get(refs)
        return cuts

    def rows(self, env_step: int, wall_s: float) -> list[dict]:
        return [{"env_step": env_step, "wall_s": round(wall_s, 2), "actor": i, "epsilon": float(f"{self.epsilons[i]:.6g}"),
                 "env_steps": self.env_steps[i],
                 "env_steps_per_s": round(self.env_steps[i] / self.seconds[i], 1) if self.seconds[i] > 0 else 0.0,
                 "episodes": self.episodes[i], "chunks": self.chunks[i], "dropped_chunks": self.dropped[i],
                 "restarts": self.restarts[i], "weight_lag": self.lag[i], "alive": int(self.alive[i])}
                for i in range(self.n)]

    def close(self) -> None:
        for h in self.handles:
            try:
                self.ray.kill(h)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.handles = []
        time.sleep(0)
