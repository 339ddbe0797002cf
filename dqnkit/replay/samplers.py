"""Sampling distributions over the valid slots of a ring storage.

Two implementations of one ``Sampler`` protocol (composition as in Dopamine's replay memory):

- ``UniformSampler``: uniform over valid slots (Mnih et al. 2015, *Human-level control through deep
  reinforcement learning*); importance weights are ones.
- ``PrioritizedSampler``: proportional prioritised replay (Schaul et al. 2016, *Prioritized Experience
  Replay*, ICLR): ``P(i) = p_i^alpha / sum_k p_k^alpha`` (Eq. 1) with ``p_i = |delta_i| + eps``
  (Sec. 3.3), importance weights ``w_i = (N * P(i))^-beta`` normalised by ``1 / max w`` (Sec. 3.4),
  new transitions at the maximal priority seen so far (Algorithm 1, line 6), drawn from a float64
  ``SumTree`` with stratified sampling (Appendix B.2.1). Defaults ``alpha = 0.6``, ``beta = 0.4``
  (annealed to 1 by the caller) are the paper's proportional-variant values (Table 3), also Rainbow's
  (Hessel et al. 2018, Table 1, where ``alpha = 0.5``).

Deviations (PER):
- The weights are normalised by the maximum weight *in the batch* (as Dopamine does), not by
  the maximum over the whole buffer (OpenAI Baselines' min-priority tree); with a max over the batch
  no second (min) tree is needed. ``N`` in ``w_i`` is the number of currently valid slots.
- ``p_max`` tracks the largest raw ``|delta| + eps`` ever given (not decayed); new transitions get
  ``p_max ** alpha``.
- Optional ``priority_clip``: ``p_i = min(|delta_i|, clip) + eps``. The paper's Atari agent clips TD errors
  to [-1, 1] before they become priorities (ChainerRL reproduced this detail from the authors' code and
  the first author: chainer/chainerrl#301), so its priorities never exceed 1 + eps. Without that clip
  and without reward clipping (LunarLander's -100 crash), a few priorities grow without bound (|delta|
  ~3000 measured by benchmarks/per_priorities.py) and the batches concentrate on them. Default: no clip,
  as the issue specifies; ``priority_clip=1`` is the paper's setting. With C51 the clipped quantity is the
  per-sample cross-entropy.
- Optional ``sample_round`` (config ``per_round_sampling``): a training round's batches are drawn together,
  all from the priorities at the start of the round, where the paper draws each batch after the previous
  batch's priority update (Algorithm 1, lines 9-12 inside the replay period loop). The new priorities are
  still written after each batch's step, so the next round sees them; within a round, a transition whose
  priority an earlier batch changed keeps its start-of-round probability and IS weight.
- A slot gets its priority when it becomes *valid* (its n-step window is written), not when written:
  the newest ``n_step`` rows, unwritten slots and the row being overwritten all hold priority 0, so
  they can never be drawn. ``update_priorities`` ignores slots that hold 0 (overwritten since sampled).

Each sampler owns a ``np.random.Generator(PCG64(seed))`` and checkpoints its bit-generator state.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from dqnkit.errors import CheckpointError
from dqnkit.replay.sum_tree import SumTree


def generator_state(rng: np.random.Generator) -> dict:
    """JSON-able PCG64 state: the 128-bit integers as decimal strings (safe for any JSON reader)."""
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise TypeError(f"expected a PCG64 generator, got {st['bit_generator']}")
    return {
        "bit_generator": "PCG64",
        "state": {"state": str(st["state"]["state"]), "inc": str(st["state"]["inc"])},
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
    }


def set_generator_state(rng: np.random.Generator, state: dict) -> None:
    """Inverse of ``generator_state``."""
    if state.get("bit_generator") != "PCG64":
        raise CheckpointError(f"replay sampler RNG state is not PCG64: {state.get('bit_generator')!r}")
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(state["state"]["state"]), "inc": int(state["state"]["inc"])},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


class Sampler(Protocol):
    """What ``ReplayBuffer`` needs from a sampling distribution over flat slot ids."""

    def on_write(self, written: np.ndarray, now_valid: np.ndarray | None) -> None:
        """Slots ``written`` were just (over)written; slots ``now_valid`` just became sampleable."""

    def sample(self, batch_size: int, first_valid: int, num_valid: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
        """``(index int64 (B,), is_weight float32 (B,))``; valid slots are
        ``(first_valid + j) % num_slots`` for ``j < num_valid``."""

    def sample_round(self, n_batches: int, batch_size: int, first_valid: int, num_valid: int,
                     beta: float) -> tuple[np.ndarray, np.ndarray]:
        """``n_batches`` batches drawn at once, batch ``g`` at ``[g * batch_size: (g + 1) * batch_size]``."""

    def update_priorities(self, index: np.ndarray, td_abs: np.ndarray) -> None: ...

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]: ...

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None: ...


class UniformSampler:
    """Uniform over the valid slots, drawing from its own generator."""

    def __init__(self, num_slots: int, *, seed: int | None = None) -> None:
        self.num_slots = int(num_slots)
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def on_write(self, written: np.ndarray, now_valid: np.ndarray | None) -> None:
        pass

    def sample(self, batch_size: int, first_valid: int, num_valid: int, beta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        if num_valid <= 0:
            raise ValueError("no valid transitions to sample from")
        j = self.rng.integers(0, num_valid, size=batch_size, dtype=np.int64)
        j += first_valid
        j %= self.num_slots
        return j, np.ones(batch_size, dtype=np.float32)

    def sample_round(self, n_batches: int, batch_size: int, first_valid: int, num_valid: int,
                     beta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        return self.sample(n_batches * batch_size, first_valid, num_valid, beta)

    def update_priorities(self, index: np.ndarray, td_abs: np.ndarray) -> None:
        pass

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        return {}, {"kind": "uniform", "rng": generator_state(self.rng)}

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        if meta.get("kind") != "uniform":
            raise CheckpointError(f"replay checkpoint has a {meta.get('kind')!r} sampler, this buffer is uniform")
        set_generator_state(self.rng, meta["rng"])


class PrioritizedSampler:
    """Proportional prioritised sampling over a ``SumTree`` of ``p_i ** alpha``."""

    def __init__(self, num_slots: int, *, alpha: float = 0.6, priority_eps: float = 1e-6,
                 priority_clip: float | None = None, seed: int | None = None) -> None:
        if alpha < 0 or priority_eps <= 0 or (priority_clip is not None and priority_clip <= 0):
            raise ValueError(f"need alpha >= 0, priority_eps > 0 and priority_clip None or > 0, got alpha={alpha}, "
                             f"priority_eps={priority_eps}, priority_clip={priority_clip}")
        self.num_slots = int(num_slots)
        self.alpha = float(alpha)
        self.priority_eps = float(priority_eps)
        self.priority_clip = None if priority_clip is None else float(priority_clip)
        self.max_priority = 1.0  # p_max of the raw |delta| + eps, before ** alpha
        self.tree = SumTree(self.num_slots)
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def on_write(self, written: np.ndarray, now_valid: np.ndarray | None) -> None:
        if now_valid is None or now_valid.size == 0:
            self.tree.update(written, 0.0)
            return
        values = np.concatenate(
            (np.zeros(written.shape[0]), np.full(now_valid.shape[0], self.max_priority**self.alpha))
        )
        self.tree.update(np.concatenate((written, now_valid)), values)

    def sample(self, batch_size: int, first_valid: int, num_valid: int, beta: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
        return self.sample_round(1, batch_size, first_valid, num_valid, beta)

    def sample_round(self, n_batches: int, batch_size: int, first_valid: int, num_valid: int,
                     beta: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
        """``n_batches`` batches of ``batch_size`` from the priorities as they are now, in one tree descent:
        ``(index, is_weight)`` of ``n_batches * batch_size`` entries, batch ``g`` at ``[g * batch_size:]``.

        Each batch is drawn exactly as ``sample`` draws one (stratified over [0, total), weights normalised by
        the batch's maximum); ``sample`` is the case ``n_batches = 1`` (the same draws from the generator)."""
        total = self.tree.total()
        if num_valid <= 0 or total <= 0.0:
            raise ValueError("no valid transitions to sample from")
        # Stratified: per batch, one uniform draw in each of batch_size equal segments of [0, total).
        u = self.rng.random((n_batches, batch_size))
        u += np.arange(batch_size, dtype=np.float64)
        u *= total / batch_size
        np.minimum(u, total * (1.0 - 1e-12), out=u)
        index = self.tree.find(u.reshape(-1))  # never a zero-priority leaf while total > 0 (see SumTree.find)
        prob = self.tree.get(index) / total
        weight = ((num_valid * prob) ** (-beta)).reshape(n_batches, batch_size)
        weight /= weight.max(axis=1, keepdims=True)
        return index, weight.reshape(-1).astype(np.float32)

    def update_priorities(self, index: np.ndarray, td_abs: np.ndarray) -> None:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        td_abs = np.asarray(td_abs, dtype=np.float64).reshape(-1)
        if index.shape != td_abs.shape:
            raise ValueError(f"index has {index.shape[0]} entries but td_abs has {td_abs.shape[0]}")
        if not np.all(np.isfinite(td_abs)) or (td_abs < 0).any():
            raise ValueError("td_abs must be finite and non-negative (did the loss diverge?)")
        keep = self.tree.get(index) > 0.0  # skip slots invalidated since they were sampled
        if not keep.all():
            index, td_abs = index[keep], td_abs[keep]
        if index.size == 0:
            return
        if self.priority_clip is not None:
            td_abs = np.minimum(td_abs, self.priority_clip)
        raw = td_abs + self.priority_eps
        self.tree.update(index, raw**self.alpha)
        self.max_priority = max(self.max_priority, float(raw.max()))

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"priorities": np.array(self.tree.leaves())}
        meta = {
            "kind": "prioritized",
            "alpha": self.alpha,
            "max_priority": self.max_priority,
            "rng": generator_state(self.rng),
        }
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        if meta.get("kind") != "prioritized":
            raise CheckpointError(f"replay checkpoint has a {meta.get('kind')!r} sampler, this buffer is prioritized")
        if float(meta["alpha"]) != self.alpha:
            raise CheckpointError(
                f"replay checkpoint stores priorities with alpha={meta['alpha']}, this buffer has alpha={self.alpha}"
            )
        priorities = np.asarray(arrays["priorities"], dtype=np.float64)
        if priorities.shape != (self.num_slots,):
            raise CheckpointError(f"replay priorities have shape {priorities.shape}, expected {(self.num_slots,)}")
        self.tree.set_leaves(priorities)
        self.max_priority = float(meta["max_priority"])
        set_generator_state(self.rng, meta["rng"])
