"""A vectorised, array-backed sum tree for proportional prioritised replay.

Implements the "sum-tree" of Schaul et al. (2016), *Prioritized Experience Replay*,
ICLR, Appendix B.2.1: every internal node holds the sum of its children, so the
total priority is the root and drawing a leaf with probability ``p_i / sum_k p_k``
(their Eq. 1 with ``p_i`` already raised to ``alpha``) is one root-to-leaf descent.

Layout: a 1-based heap in one float64 array of ``2 * capacity`` entries, where
``capacity`` is the next power of two >= the number of leaves; node ``i`` has
children ``2i`` and ``2i + 1``, leaf ``j`` lives at ``capacity + j``. Entry 0 is unused.

Deviations from the paper's pseudo-code (and from naive per-sample trees):
- Batched: ``update`` takes arrays of indices and values (duplicates allowed, last
  write wins) and recomputes the affected parents level by level, de-duplicated per
  level as in Dopamine's ``sum_tree.py`` (only while more than 16 nodes are being
  updated: for a handful of nodes, recomputing a shared parent twice writes the same
  value and is cheaper than de-duplicating); ``find`` descends all queries together,
  one NumPy step per level, never one Python iteration per sample.
- Parents are recomputed as ``left + right`` rather than patched by adding the
  delta, so float64 rounding error never accumulates across updates.
- A handful of indices (at most ``SCALAR_MAX``: the one new transition per env step of a
  single env) walk up the tree one index at a time in plain Python: NumPy's per-call overhead
  on tiny arrays costs more than the walk. Same additions, so the same bits as the batched path.
- ``find`` never returns a zero-priority leaf (invalid or padding slot): a query that float
  rounding (or an out-of-range value) lands on one is redone by a descent that only enters
  children with positive mass.
"""
from __future__ import annotations

import math

import numpy as np

DEDUP_MIN = 16  # de-duplicate a level's parents only when more nodes than this are being updated
SCALAR_MAX = 4  # updates of at most this many indices take the per-index path


class SumTree:
    """Float64 sum tree over ``num_leaves`` non-negative values, all initially 0."""

    def __init__(self, num_leaves: int) -> None:
        if num_leaves < 1:
            raise ValueError(f"SumTree needs at least one leaf, got num_leaves={num_leaves}")
        self.num_leaves = int(num_leaves)
        self.capacity = 1 << (self.num_leaves - 1).bit_length()  # next power of two >= num_leaves
        self.depth = self.capacity.bit_length() - 1  # number of levels below the root
        self._tree = np.zeros(2 * self.capacity, dtype=np.float64)
        self._pairs = self._tree.reshape(-1, 2)  # view: row p holds the children of node p

    # ------------------------------------------------------------------ queries
    def total(self) -> float:
        """Sum of all leaves (the root)."""
        return float(self._tree[1])

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Leaf values at ``indices`` (float64 array, same shape)."""
        return self._tree[np.asarray(indices, dtype=np.int64) + self.capacity]

    def nodes(self) -> np.ndarray:
        """A read-only view of the whole heap (entry 0 unused, node i at i, leaf j at capacity + j)."""
        view = self._tree.view()
        view.flags.writeable = False
        return view

    def leaves(self) -> np.ndarray:
        """A read-only view of all ``num_leaves`` leaf values."""
        view = self._tree[self.capacity : self.capacity + self.num_leaves]
        view.flags.writeable = False
        return view

    def find(self, prefix_sums: np.ndarray) -> np.ndarray:
        """For each query ``u`` in ``[0, total())``, the leaf ``i`` with
        ``sum_{j<i} p_j <= u < sum_{j<=i} p_j`` (int64 array, same length).

        Never returns a zero-valued leaf while ``total() > 0``: queries outside ``[0, total())``, or
        pushed onto an empty leaf by float rounding, go to the nearest leaf with positive mass
        along their path. Undefined (returns a leaf) if ``total() == 0``.
        """
        u = np.array(prefix_sums, dtype=np.float64, copy=True).reshape(-1)
        np.maximum(u, 0.0, out=u)
        leaf = self._descend(u.copy(), guarded=False)
        empty = self._tree[leaf + self.capacity] <= 0.0
        if empty.any():  # rare: redo those queries, never entering a child without mass
            leaf[empty] = self._descend(u[empty], guarded=True)
        return leaf

    def _descend(self, u: np.ndarray, guarded: bool) -> np.ndarray:
        """One vectorised root-to-leaf walk for all queries ``u >= 0`` (modified in place)."""
        tree = self._tree
        node = np.ones(u.shape[0], dtype=np.int64)
        for _ in range(self.depth):
            node <<= 1  # left child
            left_sum = tree[node]
            go_right = u >= left_sum
            if guarded:  # go right only if the right child holds mass
                go_right &= tree[node + 1] > 0.0
            u -= left_sum * go_right
            node += go_right
        return node - self.capacity

    # ------------------------------------------------------------------ updates
    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``indices`` to ``values`` (broadcast), then fix their ancestors.

        Duplicate indices are allowed: the last write wins, as with sequential updates.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return
        vals = np.broadcast_to(np.asarray(values, dtype=np.float64), idx.shape)
        if idx.size <= SCALAR_MAX:
            self._update_few(idx.tolist(), vals.tolist())
            return
        if idx.min() < 0 or idx.max() >= self.num_leaves:
            raise IndexError(f"SumTree leaf index out of range [0, {self.num_leaves})")
        if not np.all(vals >= 0.0) or not np.all(np.isfinite(vals)):
            raise ValueError("SumTree values must be finite and non-negative")
        # Last write wins: unique over the reversed array keeps each index's last occurrence.
        uniq, first_in_rev = np.unique(idx[::-1], return_index=True)
        node = uniq + self.capacity
        self._tree[node] = vals[::-1][first_in_rev]
        tree, pairs = self._tree, self._pairs
        for _ in range(self.depth):
            node >>= 1
            # `node` stays sorted, so de-duplicating is a neighbour comparison (no re-sort). Below
            # DEDUP_MIN nodes, recomputing a shared parent twice (same value, same write) is cheaper.
            if node.shape[0] > DEDUP_MIN:
                keep = np.empty(node.shape[0], dtype=bool)
                keep[0] = True
                np.not_equal(node[1:], node[:-1], out=keep[1:])
                node = node[keep]
            children = pairs[node]  # (k, 2): tree[2 * node], tree[2 * node + 1]
            tree[node] = children[:, 0] + children[:, 1]

    def _update_few(self, indices: list[int], values: list[float]) -> None:
        """``update`` for a few indices, in order (so the last write wins), one root path each."""
        for i, v in zip(indices, values):
            if not 0 <= i < self.num_leaves:
                raise IndexError(f"SumTree leaf index out of range [0, {self.num_leaves})")
            if not (v >= 0.0 and math.isfinite(v)):
                raise ValueError("SumTree values must be finite and non-negative")
        tree = self._tree
        for i, v in zip(indices, values):
            node = i + self.capacity
            tree[node] = v
            while node > 1:
                node >>= 1
                tree[node] = tree[2 * node] + tree[2 * node + 1]

    def set_leaves(self, values: np.ndarray) -> None:
        """Replace all ``num_leaves`` leaves at once and rebuild every level (O(capacity))."""
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if vals.shape[0] != self.num_leaves:
            raise ValueError(f"expected {self.num_leaves} leaf values, got {vals.shape[0]}")
        if not np.all(vals >= 0.0) or not np.all(np.isfinite(vals)):
            raise ValueError("SumTree values must be finite and non-negative")
        tree = self._tree
        tree[:] = 0.0
        tree[self.capacity : self.capacity + self.num_leaves] = vals
        level = self.capacity
        while level > 1:
            parents = np.arange(level >> 1, level, dtype=np.int64)
            tree[parents] = tree[2 * parents] + tree[2 * parents + 1]
            level >>= 1
