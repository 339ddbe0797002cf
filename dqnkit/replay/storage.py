"""Ring storage for vectorised environments: every observation is stored once.

Layout (one write pointer for all envs, which step in lockstep)::

    obs        (T, N, *obs_shape)  stored dtype: float32 for float observations, otherwise as given (uint8 pixels stay uint8)
    action     (T, N)              int64
    reward     (T, N)              float32
    terminated (T, N)              bool
    truncated  (T, N)              bool

with ``N = num_envs`` and ``T = ceil(capacity / N)`` rows. Slot ``(t, e)`` has the flat id
``t * N + e``; since ``(T, N)`` is C-contiguous, the flat views ``*_flat`` index slots directly and
"``k`` rows later in the same env" is ``(slot + k * N) % (T * N)``.

Row ``t + 1`` holds the observation that follows row ``t``, unless the episode ended at ``t``:
Gymnasium's SAME_STEP autoreset then puts the *reset* observation of the next episode in row ``t + 1``
(as in Stable-Baselines3's memory-optimised buffer). The true final observation of a
*truncated* transition is needed to bootstrap, so it goes to a small side table (``final_obs`` entries
plus a map ``slot -> entry``), freed when its slot is overwritten. Terminated transitions need none:
their bootstrap is masked. This is the fix CleanRL's ``optimize_memory_usage`` lacks (issue #460).

Deviations / limits:
- ``T * N`` may exceed ``capacity`` by up to ``N - 1`` slots (rows are written whole).
- The caller must use SAME_STEP autoreset (or drop NEXT_STEP's reset transitions itself): with
  NEXT_STEP the step after an episode end is a dummy transition that this layout cannot skip.
- The side table starts small and doubles when more truncated slots are live than it holds (rare,
  off the sampling path); it never exceeds ``T * N`` entries.
"""
from __future__ import annotations

import math

import numpy as np

from dqnkit.envs.spaces import stored_obs_dtype
from dqnkit.errors import CheckpointError
from dqnkit.replay.side_table import SideTable

_INITIAL_FINAL_OBS_ENTRIES = 64


class RingRows:
    """What :class:`RingStorage` and :class:`dqnkit.replay.frames.FrameStackStorage` share: row geometry,
    the checks of a written row, final-observation lookups and checkpoint array copies.

    The class using it sets ``num_envs``, ``num_rows``, ``obs_shape``, ``rows_added``, ``_env_ids`` and
    ``_final`` (a :class:`dqnkit.replay.side_table.SideTable` of true final observations).
    """

    # ------------------------------------------------------------------ geometry
    @property
    def full(self) -> bool:
        return self.rows_added >= self.num_rows

    @property
    def rows_stored(self) -> int:
        return min(self.rows_added, self.num_rows)

    def row_slots(self, row: int) -> np.ndarray:
        """Flat slot ids of ``row`` (one per env)."""
        return row * self.num_envs + self._env_ids

    # ------------------------------------------------------------------ writing
    def _row_inputs(self, obs, terminated, truncated) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``obs`` checked to be ``(num_envs, *obs_shape)``; the flags as bool arrays of ``num_envs``."""
        N = self.num_envs
        obs = np.asarray(obs)
        if obs.shape != (N, *self.obs_shape):
            raise ValueError(f"obs has shape {obs.shape}, expected {(N, *self.obs_shape)}")
        terminated = np.asarray(terminated).astype(bool, copy=False).reshape(N)
        truncated = np.asarray(truncated).astype(bool, copy=False).reshape(N)
        return obs, terminated, truncated

    def truncate_newest_row(self, final_obs) -> np.ndarray:
        """Mark the newest row's transitions that did not end an episode as truncated, with ``final_obs`` (N, *obs)
        as their true next observations: the stream of these envs was cut after that row (the next row written
        starts new episodes). Returns the env indices it changed."""
        if self.rows_added == 0:
            return np.zeros(0, dtype=np.int64)
        row = (self.pos - 1) % self.num_rows
        open_ = ~(self.terminated[row] | self.truncated[row])
        self._keep_final_obs(self.row_slots(row), ~open_, open_, final_obs)
        self.truncated[row] |= open_
        if hasattr(self, "episode_end"):  # frame stacks: the next row's stack starts a new episode
            self.episode_end[row] |= open_
        return np.flatnonzero(open_)

    def _keep_final_obs(self, slots: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, final_obs) -> None:
        """Keep the true final observation of the truncated (and not terminated) transitions of ``slots``."""
        keep = truncated & ~terminated
        if keep.any():
            N = self.num_envs
            final_obs = np.asarray(final_obs)
            if final_obs.shape != (N, *self.obs_shape):
                raise ValueError(f"final_obs has shape {final_obs.shape}, expected {(N, *self.obs_shape)}")
            self._final.put(slots[keep], final_obs[keep].astype(self.obs_dtype, casting="same_kind", copy=False))

    # ------------------------------------------------------------------ reading
    def final_obs_of(self, slots: np.ndarray) -> np.ndarray:
        """True final observations of truncated ``slots`` (a fresh array)."""
        entries = self._final.entry_of[slots]
        if (entries < 0).any():
            raise KeyError(f"no final observation stored for slots {np.asarray(slots)[entries < 0].tolist()}")
        return self._final.values[entries]

    def final_obs_capacity(self) -> int:
        """Entries the final-observation side table has room for now (it grows by doubling)."""
        return int(self._final.slot_of.shape[0])

    def num_final_obs(self) -> int:
        """Number of live final-observation entries (truncated transitions still stored)."""
        return len(self._final)

    # ------------------------------------------------------------------ checkpoint
    def _copy_array_in(self, name: str, src) -> None:
        """Copy the checkpoint array ``src`` into the storage array ``name`` (same shape and dtype)."""
        dst = getattr(self, name)
        src = np.asarray(src)
        if src.shape != dst.shape or src.dtype != dst.dtype:
            raise CheckpointError(
                f"replay array '{name}' has shape {src.shape} dtype {src.dtype}, "
                f"this buffer expects {dst.shape} {dst.dtype}: build the buffer with the checkpoint's settings"
            )
        np.copyto(dst, src)

    def _load_position(self, meta: dict) -> None:
        """Restore ``pos`` and ``rows_added`` from checkpoint metadata, checking that they agree."""
        self.pos = int(meta["pos"])
        self.rows_added = int(meta["rows_added"])
        if not 0 <= self.pos < self.num_rows or self.pos != self.rows_added % self.num_rows:
            raise CheckpointError(f"replay checkpoint has pos={self.pos}, rows_added={self.rows_added}: inconsistent")


class RingStorage(RingRows):
    """Preallocated ring of ``T = ceil(capacity / num_envs)`` rows of ``num_envs`` transitions."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple, obs_dtype) -> None:
        if capacity < 1 or num_envs < 1:
            raise ValueError(f"capacity and num_envs must be >= 1, got {capacity} and {num_envs}")
        self.num_envs = int(num_envs)
        self.num_rows = math.ceil(int(capacity) / self.num_envs)  # T
        self.num_slots = self.num_rows * self.num_envs  # T * N
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.obs_dtype = stored_obs_dtype(obs_dtype)

        T, N = self.num_rows, self.num_envs
        self.obs = np.zeros((T, N, *self.obs_shape), dtype=self.obs_dtype)
        self.action = np.zeros((T, N), dtype=np.int64)
        self.reward = np.zeros((T, N), dtype=np.float32)
        self.terminated = np.zeros((T, N), dtype=bool)
        self.truncated = np.zeros((T, N), dtype=bool)
        # Flat views (no copies): slot id -> entry.
        self.obs_flat = self.obs.reshape(self.num_slots, *self.obs_shape)
        self.action_flat = self.action.reshape(-1)
        self.reward_flat = self.reward.reshape(-1)
        self.terminated_flat = self.terminated.reshape(-1)
        self.truncated_flat = self.truncated.reshape(-1)

        self.pos = 0  # next row to write
        self.rows_added = 0  # rows written since creation (not capped)
        self._env_ids = np.arange(N, dtype=np.int64)

        # Side table of true final observations of truncated transitions.
        self._final = SideTable(self.num_slots, self.obs_shape, self.obs_dtype, _INITIAL_FINAL_OBS_ENTRIES,
                                map_dtype=np.int64)

    # ------------------------------------------------------------------ geometry
    def valid_range(self, n_step: int) -> tuple[int, int]:
        """``(first_slot, count)``: valid slots are ``(first_slot + j) % num_slots`` for ``j < count``.

        A slot is valid when its whole n-step window and the observation after it are written:
        every stored row except the newest ``n_step``. When full, the oldest row (``pos``) comes first.
        """
        valid_rows = max(self.rows_stored - n_step, 0)
        first_row = self.pos if self.full else 0
        return first_row * self.num_envs, valid_rows * self.num_envs

    # ------------------------------------------------------------------ writing
    def write(self, obs, action, reward, terminated, truncated, final_obs) -> int:
        """Write one row (one transition per env) at ``pos``; returns the row written."""
        N = self.num_envs
        obs, terminated, truncated = self._row_inputs(obs, terminated, truncated)
        row = self.pos
        np.copyto(self.obs[row], obs, casting="same_kind")
        np.copyto(self.action[row], np.asarray(action).reshape(N), casting="same_kind")
        np.copyto(self.reward[row], np.asarray(reward).reshape(N), casting="same_kind")
        self.terminated[row] = terminated
        self.truncated[row] = truncated

        slots = self.row_slots(row)
        self._final.free(slots)  # the entries of the transitions being overwritten
        self._keep_final_obs(slots, terminated, truncated, final_obs)

        self.pos = (row + 1) % self.num_rows
        self.rows_added += 1
        return row

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays (the live storage arrays themselves, not copies: save them before the next ``write``)
        and JSON-able metadata. The side table is saved compacted to its live entries."""
        final_obs, final_slot = self._final.state()
        arrays = {
            "obs": self.obs,
            "action": self.action,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "final_obs": final_obs,
            "final_slot": final_slot,
        }
        meta = {"pos": int(self.pos), "rows_added": int(self.rows_added)}
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        for name in ("obs", "action", "reward", "terminated", "truncated"):
            self._copy_array_in(name, arrays[name])
        self._final.load(arrays["final_obs"], arrays["final_slot"], "final-observation")
        self._load_position(meta)
