"""The replay of a population: one ring storage for all members, one sampler per member.

The M members of a population step their E envs each in lockstep, so their transitions fill one
:class:`dqnkit.replay.storage.RingStorage` whose ``M * E`` env columns are the members' envs: member ``m``
owns columns ``m*E .. m*E + E-1``. Each member samples only its own slots, with its own sampler (uniform
or prioritized, the classes of :mod:`dqnkit.replay.samplers`, seeded from the member's seed) over its own
leaf numbering ``row * E + env`` -- exactly the numbering a single run's :class:`ReplayBuffer` uses, so a
member draws the same slots a single run with its seed would. n-step windows use each member's ``n_step``
and ``gamma``. One gather reads every member's batch at once; the batch fields have shape (M, B, ...).

:meth:`member_state_dict` writes member ``m``'s part as an ordinary single-run replay checkpoint (what
``ReplayBuffer.state_dict`` writes), and :meth:`load_member_state_dict` reads it back.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dqnkit.replay.buffer import ReplayBuffer, gather_batch
from dqnkit.replay.samplers import PrioritizedSampler, UniformSampler
from dqnkit.replay.storage import RingStorage
from dqnkit.types import Batch


class MemberReplay:
    """Replay for ``num_members`` members with ``envs_per_member`` envs each; ``capacity`` is per member."""

    def __init__(self, capacity: int, num_members: int, envs_per_member: int, obs_shape: tuple, obs_dtype, *,
                 n_steps: Sequence[int], gammas: Sequence[float], seeds: Sequence[int], prioritized: bool = False,
                 alphas: Sequence[float] = (), priority_eps: Sequence[float] = (),
                 priority_clips: Sequence[float | None] = (), device: str | torch.device = "cpu"):
        self.M, self.E = int(num_members), int(envs_per_member)
        self.N = self.M * self.E
        rows = -(-int(capacity) // self.E)  # a member's ring rows, as ReplayBuffer(capacity, E) has
        self.storage = RingStorage(rows * self.N, self.N, obs_shape, obs_dtype)
        self.capacity, self.device = int(capacity), torch.device(device)
        self.n_steps = np.asarray(n_steps, dtype=np.int64)
        self.gammas = np.asarray(gammas, dtype=np.float64)
        n_max = int(self.n_steps.max())
        if self.storage.num_rows <= n_max:
            raise ValueError(f"capacity {capacity} gives {self.storage.num_rows} rows; n_step={n_max} needs more")
        # gamma ** k per member, as ReplayBuffer tabulates them (zero past a member's own n)
        k = np.arange(n_max + 1)
        self._discount = (self.gammas[:, None] ** k).astype(np.float32)
        self._powers = np.where(k[:-1] < self.n_steps[:, None], self.gammas[:, None] ** k[:-1], 0.0)
        self.prioritized = bool(prioritized)
        leaves = self.storage.num_rows * self.E
        if self.prioritized:
            self.samplers = [PrioritizedSampler(leaves, alpha=a, priority_eps=e, priority_clip=c, seed=s)
                             for a, e, c, s in zip(alphas, priority_eps, priority_clips, seeds)]
        else:
            self.samplers = [UniformSampler(leaves, seed=s) for s in seeds]
        self._envs = np.arange(self.E)

    # --- writing -------------------------------------------------------------------------
    def add(self, obs, action, reward, terminated, truncated, final_obs) -> None:
        """One vector step of all members (rows of the arguments are the ``M * E`` envs, member by member)."""
        st = self.storage
        row = st.write(obs, action, reward, terminated, truncated, final_obs)
        written = row * self.E + self._envs
        for m, sampler in enumerate(self.samplers):
            n = int(self.n_steps[m])
            now_valid = ((row - n) % st.num_rows) * self.E + self._envs if st.rows_added > n else None
            sampler.on_write(written, now_valid)

    # --- reading -------------------------------------------------------------------------
    def _valid_leaves(self, m: int) -> tuple[int, int]:
        first_slot, count = self.storage.valid_range(int(self.n_steps[m]))
        return (first_slot // self.N) * self.E, (count // self.N) * self.E

    def can_sample(self, batch_size: int) -> bool:
        return all(self._valid_leaves(m)[1] >= max(int(batch_size), 1) for m in range(self.M))

    def sample(self, batch_size: int, betas: Sequence[float] | None = None) -> Batch:
        """A batch of ``batch_size`` transitions per member, each member from its own sampler."""
        leaf_rows, weights = [], []
        for m, sampler in enumerate(self.samplers):
            first, count = self._valid_leaves(m)
            beta = 0.4 if betas is None else float(betas[m])
            leaf, w = sampler.sample(int(batch_size), first, count, beta)
            leaf_rows.append(leaf)
            weights.append(w)
        leaf = np.stack(leaf_rows)  # (M, B)
        member = np.arange(self.M)[:, None]
        index = (leaf // self.E) * self.N + member * self.E + leaf % self.E
        flat = index.reshape(-1)
        rep = np.repeat(np.arange(self.M), batch_size)
        batch = gather_batch(self.storage, flat, np.concatenate(weights), self._powers[rep], self._discount[rep],
                             self.device, limit=self.n_steps[rep])
        shape = (self.M, int(batch_size))
        return Batch(*(t.view(*shape, *t.shape[1:]) for t in batch.tensors()), index=index)

    def update_priorities(self, index: np.ndarray, td_abs: np.ndarray | torch.Tensor) -> None:
        """New priorities from each member's (B,) row of ``td_abs`` for its slots ``index[m]``."""
        if not self.prioritized:
            return
        if isinstance(td_abs, torch.Tensor):
            td_abs = td_abs.detach().to("cpu", torch.float64).numpy()
        for m, sampler in enumerate(self.samplers):
            slots = index[m]
            sampler.update_priorities((slots // self.N) * self.E + slots % self.N - m * self.E, td_abs[m])

    # --- one member as an ordinary replay checkpoint ----------------------------------------------
    def _member_buffer(self, m: int) -> ReplayBuffer:
        st = self.storage
        return ReplayBuffer(self.capacity, self.E, st.obs_shape, st.obs_dtype, n_step=int(self.n_steps[m]),
                            gamma=float(self.gammas[m]), prioritized=self.prioritized)

    def member_state_dict(self, m: int) -> tuple[dict[str, np.ndarray], dict]:
        """Member ``m``'s transitions and sampler, as ``ReplayBuffer.state_dict`` of its single run writes them."""
        st = self.storage
        arrays, meta = st.state_dict()
        cols = slice(m * self.E, (m + 1) * self.E)
        mine = {name: np.ascontiguousarray(arrays[name][:, cols])
                for name in ("obs", "action", "reward", "terminated", "truncated")}
        slots = arrays["final_slot"]
        keep = (slots % self.N) // self.E == m
        mine["final_obs"] = arrays["final_obs"][keep]
        mine["final_slot"] = (slots[keep] // self.N) * self.E + slots[keep] % self.N - m * self.E
        buf = self._member_buffer(m)
        buf.storage.load_state_dict(mine, meta)
        sampler_arrays, sampler_meta = self.samplers[m].state_dict()
        buf.sampler.load_state_dict(sampler_arrays, sampler_meta)
        return buf.state_dict()

    def load_member_state_dicts(self, states: Sequence[tuple[dict[str, np.ndarray], dict]]) -> None:
        """Every member from its single-run replay checkpoint (the inverse of :meth:`member_state_dict`)."""
        if len(states) != self.M:
            raise ValueError(f"{len(states)} member replays for {self.M} members")
        parts = []
        for m, (arrays, meta) in enumerate(states):
            buf = self._member_buffer(m)
            buf.load_state_dict(arrays, meta)
            parts.append(buf)
            prefix = "sampler."
            self.samplers[m].load_state_dict({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                                             meta["sampler"])
        storage_arrays = [p.storage.state_dict()[0] for p in parts]
        full = {name: np.concatenate([a[name] for a in storage_arrays], axis=1)
                for name in ("obs", "action", "reward", "terminated", "truncated")}
        finals, final_slots = [], []
        for m, a in enumerate(storage_arrays):
            s = a["final_slot"]
            finals.append(a["final_obs"])
            final_slots.append((s // self.E) * self.N + m * self.E + s % self.E)
        full["final_obs"] = np.concatenate(finals)
        full["final_slot"] = np.concatenate(final_slots).astype(np.int64)
        self.storage.load_state_dict(full, states[0][1]["storage"])
