"""The learner's replay in Ape-X mode: one plain :class:`dqnkit.replay.ReplayBuffer` per actor (a shard), so that
each shard holds one contiguous stream of vector steps and frame-once storage and sample-time n-step windows work
in it unchanged, and a wrapper that draws batches across shards.

Shard picking: a batch's samples are split over the shards by one multinomial draw in proportion to each shard's
priority total (PER) or sampleable count (uniform); each shard then samples its share as it does alone. With PER
the importance weights are recomputed over the whole replay, w_i = (N * p_i / sum_j p_j) ** -beta normalised by
the batch maximum (Schaul et al. 2016, Sec. 3.4), so the sharded replay samples as one big prioritized buffer
would. Indices returned in a Batch are global: ``shard * slots_per_shard + slot``.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from dqnkit.replay import ReplayBuffer
from dqnkit.runfolder import generator_state, set_generator_state
from dqnkit.types import Batch


def pack_frames(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Frame stacks (K, E, k, H, W) of K vector steps as their newest frames (K, E, H, W), the first row's stacks,
    and the stacks that are not the previous row's shifted by one frame (episode starts), by flat row t * E + e."""
    K, E = obs.shape[:2]
    same = (obs[1:, :, :-1] == obs[:-1, :, 1:]).reshape(K - 1, E, -1).all(axis=-1) if K > 1 else np.ones((0, E), bool)
    # shifted: stack t drops stack t-1's oldest frame and appends a new one
    t_idx, e_idx = np.nonzero(~same)
    return {"frames": np.ascontiguousarray(obs[:, :, -1]), "first_stacks": np.array(obs[0]),
            "reset_rows": ((t_idx + 1) * E + e_idx).astype(np.int64), "reset_stacks": np.array(obs[t_idx + 1, e_idx])}


def unpack_frames(packed: dict) -> np.ndarray:
    """The frame stacks :func:`pack_frames` packed, bit for bit."""
    frames = packed["frames"]
    K, E = frames.shape[:2]
    first = packed["first_stacks"]
    out = np.empty((K, *first.shape), dtype=first.dtype)
    out[0] = first
    rows = packed["reset_rows"]
    for t in range(1, K):
        out[t, :, :-1] = out[t - 1, :, 1:]
        out[t, :, -1] = frames[t]
        here = np.flatnonzero(rows // E == t)
        if here.size:
            out[t, rows[here] % E] = packed["reset_stacks"][here]
    return out


def chunk_obs(chunk: dict) -> np.ndarray:
    """A chunk's observations (K, E, *obs_shape), rebuilt from newest frames where the actor packed them."""
    return chunk["obs"] if "obs" in chunk else unpack_frames(chunk)


def chunk_rows(chunk: dict) -> Iterator[dict]:
    """The keyword arguments of ``ReplayBuffer.add`` for each vector step of an actor's chunk, in order."""
    K, E = chunk["action"].shape
    final_rows = chunk["final_rows"]
    obs = chunk_obs(chunk)
    for t in range(K):
        final = obs[t + 1] if t + 1 < K else chunk["next_obs"]
        here = np.flatnonzero(final_rows // E == t)
        if here.size:
            final = np.array(final)
            final[final_rows[here] % E] = chunk["final_obs"][here]
        mask = chunk.get("next_mask")
        yield {"obs": obs[t], "action": chunk["action"][t], "reward": chunk["reward"][t],
               "terminated": chunk["terminated"][t], "truncated": chunk["truncated"][t], "final_obs": final,
               "episode_end": chunk["episode_end"][t], "next_mask": None if mask is None else mask[t]}


class ShardedReplay:
    """``shards[i]`` holds actor ``i``'s transitions; ``seed`` seeds the shard-picking generator."""

    def __init__(self, shards: list[ReplayBuffer], seed: int | None = None) -> None:
        if not shards:
            raise ValueError("a sharded replay needs at least one shard")
        self.shards = list(shards)
        self.prioritized = self.shards[0].prioritized
        self.slots = self.shards[0].storage.num_slots
        if any(s.storage.num_slots != self.slots or s.prioritized != self.prioritized for s in self.shards):
            raise ValueError("all shards need the same size and sampling kind")
        self.device = self.shards[0].device
        self.rng = np.random.default_rng(seed)
        # PER: the actors' initial |TD| of each slot, applied when the slot becomes sampleable (n_step rows later)
        self.pending = [np.zeros(self.slots) for _ in self.shards] if self.prioritized else None
        self.next_obs: list[np.ndarray | None] = [None] * len(self.shards)  # the obs after each shard's newest row

    # --- writing -----------------------------------------------------------------------
    def add_chunk(self, i: int, chunk: dict) -> int:
        """Insert actor ``i``'s chunk into shard ``i`` (with its initial priorities under PER); transitions added."""
        shard = self.shards[i]
        td = chunk.get("td_abs") if self.prioritized else None
        for t, row in enumerate(chunk_rows(chunk)):
            shard.add(**row)
            if td is not None:
                self._apply_initial(i, td[t])
        self.next_obs[i] = np.array(chunk["next_obs"])
        return int(chunk["action"].size)

    def _apply_initial(self, i: int, td_row: np.ndarray) -> None:
        st, shard, pending = self.shards[i].storage, self.shards[i], self.pending[i]
        newest = (st.pos - 1) % st.num_rows
        pending[st.row_slots(newest)] = td_row
        if st.rows_added > shard.n_step:  # the row that became sampleable with this add takes its given priority
            valid = st.row_slots((newest - shard.n_step) % st.num_rows)
            shard.update_priorities(valid, pending[valid])

    def cut(self, i: int) -> None:
        """Actor ``i`` restarted with fresh envs: close shard ``i``'s open episodes at its newest row, as truncations
        that bootstrap from the observation the actor reached (sent with its last chunk)."""
        if self.next_obs[i] is not None and len(self.shards[i]) > 0:
            self.shards[i].truncate_newest(self.next_obs[i])

    # --- reading -----------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def num_valid(self) -> int:
        return sum(s.num_valid() for s in self.shards)

    def can_sample(self, batch_size: int) -> bool:
        return self.num_valid() >= max(int(batch_size), 1)

    def shard_weights(self) -> np.ndarray:
        """What shards are picked in proportion to: priority totals (PER) or sampleable counts (uniform)."""
        if self.prioritized:
            return np.array([s.sampler.tree.total() if s.num_valid() > 0 else 0.0 for s in self.shards])
        return np.array([float(s.num_valid()) for s in self.shards])

    def pick_shards(self, n: int) -> np.ndarray:
        """How many of ``n`` samples each shard gives (one multinomial draw)."""
        w = self.shard_weights()
        if w.sum() <= 0:
            raise ValueError("cannot sample: no shard holds a sampleable transition (check can_sample())")
        return self.rng.multinomial(int(n), w / w.sum())

    def sample(self, batch_size: int, beta: float = 0.4) -> Batch:
        return self._draw(1, int(batch_size), beta)

    def sample_round(self, n_batches: int, batch_size: int, beta: float = 0.4) -> Batch:
        return self._draw(int(n_batches), int(batch_size), beta)

    def _draw(self, n_batches: int, batch_size: int, beta: float) -> Batch:
        counts = self.pick_shards(n_batches * batch_size)
        parts = [(i, self.shards[i].sample(int(c), beta)) for i, c in enumerate(counts) if c > 0]
        index = np.concatenate([i * self.slots + b.index for i, b in parts])
        fields = [torch.cat([b[f] for _, b in parts]) for f in range(7)]
        masks = None if parts[0][1].next_mask is None else torch.cat([b.next_mask for _, b in parts])
        order = self.rng.permutation(index.shape[0])  # shards interleaved, so each batch of a round mixes them
        index = index[order]
        order_t = torch.from_numpy(order).to(fields[0].device)
        fields = [f.index_select(0, order_t) for f in fields]
        masks = None if masks is None else masks.index_select(0, order_t)
        if self.prioritized:
            fields[6] = self._is_weights(index, n_batches, batch_size, beta).to(fields[6].device)
        return Batch(*fields, index=index, next_mask=masks)

    def _is_weights(self, index: np.ndarray, n_batches: int, batch_size: int, beta: float) -> torch.Tensor:
        shard, slot = np.divmod(index, self.slots)
        p = np.empty(index.shape[0])
        for i in np.unique(shard):
            sel = shard == i
            p[sel] = self.shards[i].sampler.tree.get(slot[sel])
        total = self.shard_weights().sum()
        w = (self.num_valid() * p / total) ** (-float(beta))
        w = w.reshape(n_batches, batch_size)
        w /= w.max(axis=1, keepdims=True)
        return torch.from_numpy(w.reshape(-1).astype(np.float32))

    def update_priorities(self, index: np.ndarray, td_abs: np.ndarray | torch.Tensor) -> None:
        """New priorities for global ``index``: each shard gets its own slots (no-op when uniform)."""
        if not self.prioritized:
            return
        if isinstance(td_abs, torch.Tensor):
            td_abs = td_abs.detach().to("cpu", torch.float64).numpy()
        shard, slot = np.divmod(np.asarray(index), self.slots)
        for i in np.unique(shard):
            sel = shard == i
            self.shards[i].update_priorities(slot[sel], np.asarray(td_abs)[sel])

    def newest_rewards(self, rows: int) -> np.ndarray:
        return np.concatenate([s.newest_rewards(rows) for s in self.shards], axis=1)

    # --- checkpoint --------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays: dict[str, np.ndarray] = {}
        metas = []
        for i, shard in enumerate(self.shards):
            a, m = shard.state_dict()
            arrays.update({f"shard{i}.{k}": v for k, v in a.items()})
            metas.append(m)
            if self.pending is not None:
                arrays[f"pending{i}"] = self.pending[i]
            if self.next_obs[i] is not None:
                arrays[f"next_obs{i}"] = self.next_obs[i]
        return arrays, {"shards": metas, "rng": generator_state(self.rng)}

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        from dqnkit.errors import CheckpointError
        if len(meta.get("shards", [])) != len(self.shards):
            raise CheckpointError(f"the checkpoint's replay has {len(meta.get('shards', []))} shards, this run has "
                                  f"{len(self.shards)} actors: resume with the same number of actors")
        for i, shard in enumerate(self.shards):
            prefix = f"shard{i}."
            shard.load_state_dict({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                                  meta["shards"][i])
            if self.pending is not None and f"pending{i}" in arrays:
                np.copyto(self.pending[i], arrays[f"pending{i}"])
            self.next_obs[i] = np.array(arrays[f"next_obs{i}"]) if f"next_obs{i}" in arrays else None
        set_generator_state(self.rng, meta["rng"])
