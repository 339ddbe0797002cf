"""Side table of full observations for a few slots of a replay ring.

Used by :class:`dqnkit.replay.storage.RingStorage` (true final observations of truncated
transitions) and :class:`dqnkit.replay.frames.FrameStackStorage` (those, and stacks that differ
from the rebuild from stored frames).
"""
from __future__ import annotations

import numpy as np

from dqnkit.errors import CheckpointError

__all__ = ["SideTable"]


class SideTable:
    """Full observations for a few slots: ``slot -> entry`` map and growable entry arrays.

    ``values`` (entries, *obs_shape) holds the observations, ``slot_of`` (int64, entry -> slot,
    -1 = free) and ``entry_of`` (``map_dtype``, slot -> entry, -1 = none) link them to flat slot ids.
    Entries are freed when their slot is overwritten; the table starts with ``initial_entries``
    entries, doubles when full (off the sampling path, rare) and never exceeds one entry per slot.
    """

    def __init__(self, num_slots: int, obs_shape: tuple, dtype, initial_entries: int,
                 map_dtype=np.int32) -> None:
        self.num_slots = int(num_slots)
        self.obs_shape = tuple(obs_shape)
        self.dtype = np.dtype(dtype)
        self.initial_entries = int(initial_entries)
        self.map_dtype = np.dtype(map_dtype)
        k = min(self.initial_entries, self.num_slots)
        self.values = np.zeros((k, *self.obs_shape), dtype=self.dtype)
        self.slot_of = np.full(k, -1, dtype=np.int64)  # entry -> slot, -1 = free
        self.entry_of = np.full(self.num_slots, -1, dtype=self.map_dtype)  # slot -> entry, -1 = none

    def __len__(self) -> int:
        """Number of live entries."""
        return int((self.slot_of >= 0).sum())

    def free(self, slots: np.ndarray) -> None:
        """Free the entries of ``slots`` (those that have one)."""
        old = self.entry_of[slots]
        live = old >= 0
        if live.any():
            self.slot_of[old[live]] = -1
            self.entry_of[slots[live]] = -1

    def put(self, slots: np.ndarray, values: np.ndarray) -> None:
        """Store ``values[i]`` for ``slots[i]`` (slots without a live entry), growing if needed."""
        free = np.flatnonzero(self.slot_of < 0)
        if free.shape[0] < slots.shape[0]:
            self._grow(self.slot_of.shape[0] + slots.shape[0])
            free = np.flatnonzero(self.slot_of < 0)
        entries = free[: slots.shape[0]]
        self.values[entries] = values
        self.slot_of[entries] = slots
        self.entry_of[slots] = entries

    def _grow(self, min_entries: int) -> None:
        old_k = self.slot_of.shape[0]
        new_k = min(max(2 * old_k, min_entries), self.num_slots)
        values = np.zeros((new_k, *self.obs_shape), dtype=self.dtype)
        values[:old_k] = self.values
        slot_of = np.full(new_k, -1, dtype=np.int64)
        slot_of[:old_k] = self.slot_of
        self.values, self.slot_of = values, slot_of

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, slots)`` of the live entries, compacted."""
        live = np.flatnonzero(self.slot_of >= 0)
        return self.values[live], self.slot_of[live]

    def load(self, values: np.ndarray, slots: np.ndarray, what: str) -> None:
        """Replace the table with ``(values, slots)`` as returned by :meth:`state`.

        Raises ``CheckpointError("replay checkpoint has an inconsistent {what} table")`` when the shapes
        or slot ids do not fit this table (checked before anything is changed).
        """
        values = np.asarray(values)
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        m = slots.shape[0]
        if values.shape != (m, *self.obs_shape) or (m and (slots.min() < 0 or slots.max() >= self.num_slots)):
            raise CheckpointError(f"replay checkpoint has an inconsistent {what} table")
        k = max(min(self.initial_entries, self.num_slots), m)
        self.values = np.zeros((k, *self.obs_shape), dtype=self.dtype)
        self.values[:m] = values
        self.slot_of = np.full(k, -1, dtype=np.int64)
        self.slot_of[:m] = slots
        self.entry_of.fill(-1)
        self.entry_of[slots] = np.arange(m, dtype=self.map_dtype)
