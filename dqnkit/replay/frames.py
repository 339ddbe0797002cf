"""Frame-stack storage: each frame of stacked pixel observations is stored once.

An Atari observation is a stack of the ``k`` newest frames, ``(k, H, W)`` uint8, and consecutive
observations share ``k - 1`` of them. :class:`FrameStackStorage` has the interface of
:class:`dqnkit.replay.storage.RingStorage` (same rows, slots, flags, side table of final observations,
n-step validity) but keeps only the *newest* frame of each row::

    frames      (T, N, H, W)  uint8   obs[-1] of the row
    action      (T, N)        int64
    reward      (T, N)        float32
    terminated  (T, N)        bool    bootstrapping stops (e.g. game over, or a lost life)
    truncated   (T, N)        bool    the episode was cut (time limit)
    episode_end (T, N)        bool    the env's *next* row starts a new episode (game over or cut)

and rebuilds the stacked observation of slot ``(t, e)`` at sample time from the frames of rows
``t - k + 1 .. t`` of env ``e``, with zeros for frames from before the episode start (the row after
an ``episode_end``), exactly as ``gymnasium.wrappers.FrameStackObservation(padding_type="zero")`` showed
them to the agent. The next observation of a transition is the stack of the next row, as in the ring
storage; the true final observation (full stack) of a truncated transition goes to a side table.

Every stored observation is returned exactly as given, whatever the flags say: ``write`` rebuilds the
new row's stack and compares it with the observation given; where they differ (the first rows after
the buffer was created in the middle of an episode, or a caller that forgets ``episode_end``), the full
stack is kept in a second side table (``stack_obs``) and returned instead. With correct
``episode_end`` flags that table stays empty.

Validity (on top of the ring storage's "not the newest ``n_step`` rows"): once the ring is full, the
oldest ``k - 1`` rows are not sampleable, because their stacks need frames the ring has overwritten.
:meth:`newly_unsampleable` names the slots that a write made unsampleable, so a prioritised sampler
can zero them.

Memory per transition at 84 x 84: 7,056 (frame) + 8 (action) + 4 (reward) + 3 (flags) + 8 (two int32
side-table maps) bytes = 7,079 B, plus 16 to 32 B for a prioritised sampler's sum tree (measured with
``benchmarks/replay_memory.py`` at 100k transitions: 7,081 B uniform, 7,102 B prioritised);
Stable-Baselines3's memory-optimised buffer stores whole stacks (28,244 B per transition). Dopamine's
circular replay buffer also stores each frame once (it writes ``k - 1`` zero frames at every episode
start; here the zeros come from the ``episode_end`` flags). The side tables are what keep truncation
exact (Stable-Baselines3 #934 refuses truncation with its optimised buffer; CleanRL #460 loses the
final observation).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from dqnkit.errors import CheckpointError
from dqnkit.replay.side_table import SideTable
from dqnkit.replay.storage import RingRows

__all__ = ["FrameStackStorage", "owned_nbytes"]

_INITIAL_SIDE_ENTRIES = 4


def owned_nbytes(*objects) -> int:
    """Bytes of the NumPy arrays held as attributes of ``objects`` that own their memory (views are
    not counted twice). Used to report a buffer's footprint from its arrays, not the process."""
    total = 0
    for obj in objects:
        for value in vars(obj).values():
            if isinstance(value, np.ndarray) and value.base is None:
                total += value.nbytes
            elif isinstance(value, SideTable):
                total += owned_nbytes(value)
    return total


class _StackedObs:
    """``storage.obs_flat[slots]``: stacked observations rebuilt for an array of flat slot ids."""

    def __init__(self, storage: "FrameStackStorage") -> None:
        self._storage = storage
        self.shape = (storage.num_slots, *storage.obs_shape)
        self.dtype = storage.obs_dtype

    def __getitem__(self, slots) -> np.ndarray:
        return self._storage.stacked_obs(slots)


class FrameStackStorage(RingRows):
    """Ring of ``T = ceil(capacity / num_envs)`` rows of ``num_envs`` transitions, one frame per slot.

    Args:
        capacity: transitions kept (rounded up to whole rows).
        num_envs: environments writing one row per ``write``.
        obs_shape: ``(k, H, W)`` with ``k = frame_stack >= 2``; the newest frame is ``obs[-1]``.
        obs_dtype: must be uint8.
    """

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple, obs_dtype) -> None:
        if capacity < 1 or num_envs < 1:
            raise ValueError(f"capacity and num_envs must be >= 1, got {capacity} and {num_envs}")
        obs_shape = tuple(int(d) for d in obs_shape)
        if len(obs_shape) != 3 or obs_shape[0] < 2:
            raise ValueError(
                f"FrameStackStorage needs observations of shape (frame_stack, H, W) with frame_stack >= 2, "
                f"got {obs_shape}; use frame_stack=1 (RingStorage) for unstacked observations"
            )
        if np.dtype(obs_dtype) != np.uint8:
            raise ValueError(f"FrameStackStorage stores uint8 frames, got obs_dtype {np.dtype(obs_dtype)}")
        self.num_envs = int(num_envs)
        self.num_rows = math.ceil(int(capacity) / self.num_envs)  # T
        self.num_slots = self.num_rows * self.num_envs  # T * N
        self.obs_shape = obs_shape
        self.obs_dtype = np.dtype(np.uint8)
        self.frame_stack = obs_shape[0]
        frame_shape = obs_shape[1:]

        T, N = self.num_rows, self.num_envs
        self.frames = np.zeros((T, N, *frame_shape), dtype=np.uint8)
        self.action = np.zeros((T, N), dtype=np.int64)
        self.reward = np.zeros((T, N), dtype=np.float32)
        self.terminated = np.zeros((T, N), dtype=bool)
        self.truncated = np.zeros((T, N), dtype=bool)
        self.episode_end = np.zeros((T, N), dtype=bool)
        # Flat views (no copies): slot id -> entry.
        self.frames_flat = self.frames.reshape(self.num_slots, *frame_shape)
        self.action_flat = self.action.reshape(-1)
        self.reward_flat = self.reward.reshape(-1)
        self.terminated_flat = self.terminated.reshape(-1)
        self.truncated_flat = self.truncated.reshape(-1)
        self.episode_end_flat = self.episode_end.reshape(-1)
        self.obs_flat = _StackedObs(self)
        # The same memory as a tensor: torch's index_select gathers the (B * k) frames about 4x faster than
        # NumPy fancy indexing measured here (NumPy's fresh 0.9 MB outputs kept page-faulting through
        # glibc's mmap/trim path; with MALLOC_MMAP_THRESHOLD_ raised the two were on par).
        self._frames_t = torch.from_numpy(self.frames_flat)

        self.pos = 0  # next row to write
        self.rows_added = 0  # rows written since creation (not capped)
        self._env_ids = np.arange(N, dtype=np.int64)
        # frame i of a stack comes from _back[i] rows earlier (k-1, ..., 1, 0)
        self._back = np.arange(self.frame_stack - 1, -1, -1, dtype=np.int64)
        # true final obs of truncations; stacks that differ from the rebuild
        self._final = SideTable(self.num_slots, obs_shape, np.uint8, _INITIAL_SIDE_ENTRIES)
        self._stacks = SideTable(self.num_slots, obs_shape, np.uint8, _INITIAL_SIDE_ENTRIES)

    # ------------------------------------------------------------------ geometry
    @property
    def history_rows(self) -> int:
        """Rows before its own that a stack reads: ``frame_stack - 1``."""
        return self.frame_stack - 1

    def valid_range(self, n_step: int) -> tuple[int, int]:
        """``(first_slot, count)``: valid slots are ``(first_slot + j) % num_slots`` for ``j < count``.

        Not valid: the newest ``n_step`` rows (window or next observation unwritten) and, once full, the
        oldest ``frame_stack - 1`` rows (their stacks need overwritten frames).
        """
        if not self.full:
            return 0, max(self.rows_added - n_step, 0) * self.num_envs
        first_row = (self.pos + self.history_rows) % self.num_rows
        return first_row * self.num_envs, max(self.num_rows - n_step - self.history_rows, 0) * self.num_envs

    def newly_unsampleable(self) -> np.ndarray:
        """Slots that the last ``write`` pushed into the oldest ``frame_stack - 1`` rows (full ring only)."""
        if not self.full:
            return np.zeros(0, dtype=np.int64)
        if self.rows_added == self.num_rows:  # just filled: pos == 0, rows 0 .. k-2 at once
            rows = np.arange(self.history_rows, dtype=np.int64)
        else:
            rows = np.array([(self.pos + self.history_rows - 1) % self.num_rows], dtype=np.int64)
        return (rows[:, None] * self.num_envs + self._env_ids).reshape(-1)

    # ------------------------------------------------------------------ writing
    def write(self, obs, action, reward, terminated, truncated, final_obs, episode_end=None) -> int:
        """Write one row (one transition per env) at ``pos``; returns the row written.

        ``episode_end`` (default ``terminated | truncated``): the env's next observation starts a new
        episode. Pass it separately when ``terminated`` also marks non-final events (a lost life).
        """
        N = self.num_envs
        obs, terminated, truncated = self._row_inputs(obs, terminated, truncated)
        if episode_end is None:
            episode_end = terminated | truncated
        else:
            episode_end = np.asarray(episode_end).astype(bool, copy=False).reshape(N)
        row = self.pos
        np.copyto(self.frames[row], obs[:, -1], casting="same_kind")
        np.copyto(self.action[row], np.asarray(action).reshape(N), casting="same_kind")
        np.copyto(self.reward[row], np.asarray(reward).reshape(N), casting="same_kind")
        self.terminated[row] = terminated
        self.truncated[row] = truncated
        self.episode_end[row] = episode_end
        slots = self.row_slots(row)
        self._final.free(slots)
        self._stacks.free(slots)
        self.pos = (row + 1) % self.num_rows
        self.rows_added += 1

        # Keep the given stack where the rebuild from stored frames would differ.
        rebuilt = self._rebuild(slots)
        differs = (rebuilt[:, :-1] != obs[:, :-1]).reshape(N, -1).any(axis=1)
        if differs.any():
            self._stacks.put(slots[differs], obs[differs])
        self._keep_final_obs(slots, terminated, truncated, final_obs)
        return row

    # ------------------------------------------------------------------ reading
    def _rebuild(self, slots: np.ndarray) -> np.ndarray:
        """Stacks of ``slots`` from the stored frames: ``(B, k, H, W)``, zeros before the episode start
        and before the first row ever written."""
        N, S = self.num_envs, self.num_slots
        src = slots[:, None] - self._back * N  # (B, k): slot of frame i
        src %= S
        out = self._frames_t.index_select(0, torch.from_numpy(src.reshape(-1))).numpy()
        out = out.reshape(slots.shape[0], *self.obs_shape)
        # Frame i (from b = _back[i] rows earlier) is used iff that row is still stored and is not
        # older than this row's episode start, i.e. no episode_end in rows t-b .. t-1.
        age = (self.pos - 1 - slots // N) % self.num_rows  # 0 = newest row
        stored = age[:, None] + self._back[:-1] <= self.rows_stored - 1  # (B, k-1)
        ended = self.episode_end_flat[src[:, :-1]]  # rows t-k+1 .. t-1
        ended_since = np.cumsum(ended[:, ::-1], axis=1)[:, ::-1] > 0  # any episode_end in rows t-b .. t-1
        drop = ~stored | ended_since
        if drop.any():
            out[:, :-1][drop] = 0
        return out

    def stacked_obs(self, slots) -> np.ndarray:
        """The observations stored at flat ``slots`` (a fresh ``(B, k, H, W)`` uint8 array)."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        out = self._rebuild(slots)
        entries = self._stacks.entry_of[slots]
        given = entries >= 0
        if given.any():
            out[given] = self._stacks.values[entries[given]]
        return out

    def num_stored_stacks(self) -> int:
        """Number of slots whose full stack is kept because the rebuild differed (0 with correct flags)."""
        return len(self._stacks)

    # ------------------------------------------------------------------ checkpoint
    _ARRAYS = ("frames", "action", "reward", "terminated", "truncated", "episode_end")

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays (the live storage arrays, not copies: save them before the next ``write``) and
        JSON-able metadata; side tables compacted to their live entries."""
        final_obs, final_slot = self._final.state()
        stack_obs, stack_slot = self._stacks.state()
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        arrays.update(final_obs=final_obs, final_slot=final_slot, stack_obs=stack_obs, stack_slot=stack_slot)
        meta = {"pos": int(self.pos), "rows_added": int(self.rows_added), "frame_stack": self.frame_stack}
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        if int(meta.get("frame_stack", 0)) != self.frame_stack:
            raise CheckpointError(f"replay checkpoint has frame_stack={meta.get('frame_stack')!r}, "
                                  f"this buffer has {self.frame_stack}")
        for name in self._ARRAYS:
            if name not in arrays:
                raise CheckpointError(f"replay checkpoint lacks the frame-stack array '{name}'")
            self._copy_array_in(name, arrays[name])
        self._final.load(arrays["final_obs"], arrays["final_slot"], "'final_obs'")
        self._stacks.load(arrays["stack_obs"], arrays["stack_slot"], "'stack_obs'")
        self._load_position(meta)
