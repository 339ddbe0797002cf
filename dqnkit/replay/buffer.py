"""The replay buffer: ring storage + n-step windows at sample time + a sampling distribution.

Experience replay as in Mnih et al. (2015); n-step returns (Sutton & Barto 2018, Sec. 7.1) and
proportional prioritisation (Schaul et al. 2016) as combined in Rainbow (Hessel et al. 2018, Sec. 3).
The pieces live in ``storage.py`` (``RingStorage``), ``nstep.py`` (``nstep_window``) and
``samplers.py`` (``UniformSampler``, ``PrioritizedSampler``); this class composes them and converts
the result into a ``dqnkit.types.Batch``.

Usage, with a Gymnasium vector env in SAME_STEP autoreset mode::

    obs, _ = envs.reset(seed=seed)
    action = ...
    next_obs, reward, terminated, truncated, info = envs.step(action)
    final_obs = next_obs.copy(); final_obs[done] = <the true final observations from info>
    buffer.add(obs, action, reward, terminated, truncated, final_obs)
    obs = next_obs
    batch = buffer.sample(32, beta)
    buffer.update_priorities(batch.index, td_abs)

Deviations from the papers:
- A slot becomes sampleable only once its n-step window and the observation after it are written:
  the newest ``n_step`` rows are never sampled (Dopamine and Stable-Baselines3 do the same).
- n-step returns are computed at sample time from the stored one-step rewards, so ``gamma`` and
  ``n_step`` do not change what is stored.
- See ``samplers.py`` for the PER deviations (weights normalised by the batch maximum).

Stacked pixel observations (``frame_stack=k > 1``, obs ``(k, H, W)`` uint8): ``FrameStackStorage``
(``frames.py``) stores each frame once and rebuilds stacks at sample time; ``add`` then takes
``episode_end`` (the env's next observation starts a new episode; default ``terminated | truncated``),
which differs from ``terminated`` when a lost life stops bootstrapping but not the game.
"""
from __future__ import annotations

import numpy as np
import torch

from dqnkit.envs.masks import pack, packed_width, unpack
from dqnkit.errors import CheckpointError
from dqnkit.replay.frames import FrameStackStorage
from dqnkit.replay.nstep import nstep_window
from dqnkit.replay.samplers import PrioritizedSampler, UniformSampler
from dqnkit.replay.storage import RingStorage
from dqnkit.types import Batch

_FORMAT_VERSION = 1


class ReplayBuffer:
    """Ring replay buffer for ``num_envs`` lockstep environments, optionally n-step and prioritised.

    Args:
        capacity: transitions kept (env steps summed over envs); rounded up to a multiple of ``num_envs``.
        num_envs: number of vectorised environments writing one row per ``add``.
        obs_shape: shape of one observation.
        obs_dtype: observation dtype; floats are stored as float32, anything else (uint8) as given.
        n_step: steps summed into each target (1 = one-step DQN). Rainbow uses 3.
        gamma: discount per env step.
        prioritized: proportional PER (Schaul et al. 2016) instead of uniform sampling.
        alpha: PER priority exponent (paper: 0.6 proportional; Rainbow: 0.5).
        priority_eps: added to ``td_abs`` so no valid transition has priority 0.
        priority_clip: ``td_abs`` is clipped to this before it becomes a priority; None = no clip.
        seed: seed of the sampler's own ``np.random.Generator(PCG64(seed))``.
        device: torch device of the returned batches.
        frame_stack: ``k > 1`` stores uint8 observations ``(k, H, W)`` one frame per transition
            (``FrameStackStorage``); 1 stores whole observations (``RingStorage``).
        mask_actions: the number of actions of an env with action masks (:mod:`dqnkit.envs.masks`): each
            transition then stores the mask of the state it ended in, bit-packed (``np.packbits``), and batches
            carry ``next_mask``, the mask at the end of each n-step window; 0 = no masks.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple,
        obs_dtype,
        *,
        n_step: int = 1,
        gamma: float = 0.99,
        prioritized: bool = False,
        alpha: float = 0.6,
        priority_eps: float = 1e-6,
        priority_clip: float | None = None,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        frame_stack: int = 1,
        mask_actions: int = 0,
    ) -> None:
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
        self.frame_stack = int(frame_stack)
        if self.frame_stack > 1:
            shape = tuple(obs_shape)
            if len(shape) != 3 or shape[0] != self.frame_stack or np.dtype(obs_dtype) != np.uint8:
                raise ValueError(
                    f"frame_stack={self.frame_stack} needs uint8 observations of shape "
                    f"({self.frame_stack}, H, W), got shape {shape} dtype {np.dtype(obs_dtype)}; "
                    f"stack frames with FrameStackObservation({self.frame_stack}) or use frame_stack=1"
                )
            self.storage = FrameStackStorage(capacity, num_envs, obs_shape, obs_dtype)
        else:
            self.storage = RingStorage(capacity, num_envs, obs_shape, obs_dtype)
        min_rows = n_step + self.frame_stack - 1
        if self.storage.num_rows <= min_rows:
            stack = f" and frame_stack={self.frame_stack}" if self.frame_stack > 1 else ""
            raise ValueError(
                f"capacity {capacity} gives {self.storage.num_rows} rows of {num_envs} envs; "
                f"n_step={n_step}{stack} needs more than {min_rows} rows"
            )
        self.capacity = int(capacity)
        self.num_envs = int(num_envs)
        self.obs_shape = self.storage.obs_shape
        self.obs_dtype = self.storage.obs_dtype
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.prioritized = bool(prioritized)
        self.device = torch.device(device)
        self._gamma_powers = self.gamma ** np.arange(self.n_step, dtype=np.float64)
        self._discount_of_k = (self.gamma ** np.arange(self.n_step + 1, dtype=np.float64)).astype(np.float32)
        self.mask_actions = int(mask_actions)
        # (slots, ceil(|A| / 8)) uint8: the packed action mask of the state each transition ended in
        self.next_mask = np.zeros((self.storage.num_slots, packed_width(self.mask_actions)), dtype=np.uint8) \
            if self.mask_actions else None
        if self.prioritized:
            self.sampler = PrioritizedSampler(self.storage.num_slots, alpha=alpha, priority_eps=priority_eps,
                                              priority_clip=priority_clip, seed=seed)
        else:
            self.sampler = UniformSampler(self.storage.num_slots, seed=seed)

    # ------------------------------------------------------------------ writing
    def add(self, obs, action, reward, terminated, truncated, final_obs, episode_end=None, next_mask=None) -> None:
        """Add one vector step: row ``i`` of each argument belongs to env ``i``.

        ``obs`` is the observation the action was taken in; ``final_obs`` is the true next observation
        of this step (only the rows with ``truncated`` set are kept; the next ``add``'s ``obs`` supplies
        the next observation of every other row). ``episode_end`` (frame stacks only; default
        ``terminated | truncated``): the next ``obs`` of that env starts a new episode. ``next_mask``
        (buffers with ``mask_actions``): the (num_envs, |A|) bool action masks of the states this step ended in.
        """
        if self.next_mask is not None and next_mask is None:
            raise ValueError("this buffer stores action masks (mask_actions > 0): pass next_mask to add()")
        if self.frame_stack > 1:
            row = self.storage.write(obs, action, reward, terminated, truncated, final_obs, episode_end)
            written = np.concatenate((self.storage.row_slots(row), self.storage.newly_unsampleable()))
        else:
            row = self.storage.write(obs, action, reward, terminated, truncated, final_obs)
            written = self.storage.row_slots(row)
        if self.next_mask is not None:
            self.next_mask[self.storage.row_slots(row)] = pack(
                np.asarray(next_mask, dtype=bool).reshape(self.num_envs, self.mask_actions))
        # Row `row - n_step` now has its whole window and the observation after it written.
        now_valid = None
        if self.storage.rows_added > self.n_step:
            now_valid = self.storage.row_slots((row - self.n_step) % self.storage.num_rows)
        self.sampler.on_write(written, now_valid)

    def truncate_newest(self, final_obs) -> np.ndarray:
        """The envs' streams were cut after the newest row (a distributed actor restarted with fresh envs): its
        unfinished transitions become truncated ones that bootstrap from ``final_obs`` (N, *obs_shape), so no
        window spans the cut. Returns the env indices changed."""
        return self.storage.truncate_newest_row(final_obs)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        """Transitions stored (rows written x num_envs, capped at the ring size)."""
        return self.storage.rows_stored * self.num_envs

    def num_valid(self) -> int:
        """Transitions that can be sampled now (all stored except the newest ``n_step`` rows, and with
        frame stacks the oldest ``frame_stack - 1`` rows of a full ring)."""
        return self.storage.valid_range(self.n_step)[1]

    def newest_rewards(self, rows: int) -> np.ndarray:
        """The one-step rewards of the newest ``rows`` rows (fewer when fewer are stored), (k, num_envs)."""
        st = self.storage
        k = min(int(rows), st.rows_stored)
        if st.pos >= k:
            return st.reward[st.pos - k:st.pos]
        return np.concatenate((st.reward[st.num_rows - (k - st.pos):], st.reward[:st.pos]))

    def can_sample(self, batch_size: int) -> bool:
        """True when at least ``batch_size`` (>= 1) transitions are sampleable."""
        return self.num_valid() >= max(int(batch_size), 1)

    def sample(self, batch_size: int, beta: float = 0.4) -> Batch:
        """A batch of ``batch_size`` transitions drawn with replacement; ``beta`` is the PER
        importance-sampling exponent (ignored by uniform sampling)."""
        first_valid, num_valid = self._valid_range(batch_size)
        index, is_weight = self.sampler.sample(int(batch_size), first_valid, num_valid, beta)
        return self._gather(index, is_weight)

    def sample_round(self, n_batches: int, batch_size: int, beta: float = 0.4) -> Batch:
        """``n_batches`` batches of ``batch_size`` drawn at once, as one Batch of ``n_batches * batch_size`` rows
        (batch ``g`` is rows ``[g * batch_size, (g + 1) * batch_size)``). With PER they all come from the
        priorities as they are now, each batch stratified and its IS weights normalised on its own, as
        ``sample`` draws one batch (``per_round_sampling``); uniform: the same as ``sample(n_batches * batch_size)``."""
        if n_batches < 1:
            raise ValueError(f"n_batches must be >= 1, got {n_batches}")
        first_valid, num_valid = self._valid_range(batch_size)
        index, is_weight = self.sampler.sample_round(int(n_batches), int(batch_size), first_valid, num_valid, beta)
        return self._gather(index, is_weight)

    def _valid_range(self, batch_size: int) -> tuple[int, int]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        first_valid, num_valid = self.storage.valid_range(self.n_step)
        if num_valid <= 0:
            raise ValueError(
                f"cannot sample: {self.storage.rows_stored} rows stored, need at least {self.n_step + 1} "
                f"(check can_sample() before sample())"
            )
        return first_valid, num_valid

    def _gather(self, index: np.ndarray, is_weight: np.ndarray) -> Batch:
        return gather_batch(self.storage, index, is_weight, self._gamma_powers, self._discount_of_k, self.device,
                            masks=self.next_mask, n_actions=self.mask_actions)

    def update_priorities(self, index: np.ndarray, td_abs: np.ndarray | torch.Tensor) -> None:
        """New priorities ``(min(td_abs, priority_clip) + priority_eps) ** alpha`` for slots ``index`` (no-op when uniform).
        Duplicate indices: the last one wins."""
        if not self.prioritized:
            return
        if isinstance(td_abs, torch.Tensor):
            td_abs = td_abs.detach().to("cpu", torch.float64).numpy()
        self.sampler.update_priorities(index, td_abs)

    # ------------------------------------------------------------------ checkpoint
    def _config(self) -> dict:
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "obs_shape": list(self.obs_shape),
            "obs_dtype": str(self.obs_dtype),
            "n_step": self.n_step,
            "gamma": self.gamma,
            "prioritized": self.prioritized,
            "frame_stack": self.frame_stack,
            "mask_actions": self.mask_actions,
        }

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """``(arrays, meta)``: arrays for safetensors (storage arrays are live views, not copies:
        write them out before the next ``add``), JSON-able metadata incl. pos and the sampler's RNG state."""
        storage_arrays, storage_meta = self.storage.state_dict()
        sampler_arrays, sampler_meta = self.sampler.state_dict()
        arrays = {**storage_arrays, **{f"sampler.{k}": v for k, v in sampler_arrays.items()}}
        if self.next_mask is not None:
            arrays["next_mask"] = self.next_mask
        meta = {
            "format_version": _FORMAT_VERSION,
            "config": self._config(),
            "storage": storage_meta,
            "sampler": sampler_meta,
            "pos": storage_meta["pos"],
            "full": self.storage.full,
        }
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Restore a ``state_dict``; the buffer must have been built with the same structure."""
        if meta.get("format_version") != _FORMAT_VERSION:
            raise CheckpointError(f"replay checkpoint format {meta.get('format_version')!r}, expected {_FORMAT_VERSION}")
        saved, mine = meta["config"], self._config()
        saved = {"frame_stack": 1, "mask_actions": 0, **saved}  # checkpoints from before frame stacks, masks
        keys = ("capacity", "num_envs", "obs_shape", "obs_dtype", "n_step", "prioritized", "frame_stack",
                "mask_actions")
        for key in keys:
            if saved[key] != mine[key]:
                raise CheckpointError(
                    f"replay checkpoint has {key}={saved[key]!r} but this buffer has {key}={mine[key]!r}: "
                    f"build the buffer with the checkpoint's settings"
                )
        self.storage.load_state_dict(arrays, meta["storage"])
        if self.next_mask is not None:
            np.copyto(self.next_mask, _checked(arrays["next_mask"], self.next_mask))
        prefix = "sampler."
        self.sampler.load_state_dict(
            {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}, meta["sampler"]
        )

    def __repr__(self) -> str:
        kind = "prioritized" if self.prioritized else "uniform"
        return (
            f"ReplayBuffer({len(self)}/{self.storage.num_slots} transitions, num_envs={self.num_envs}, "
            f"obs={self.obs_shape} {self.obs_dtype}, n_step={self.n_step}, {kind}"
            + (f", frame_stack={self.frame_stack})" if self.frame_stack > 1 else ")")
        )


def _checked(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    src = np.asarray(src)
    if src.shape != dst.shape or src.dtype != dst.dtype:
        raise CheckpointError(f"replay array 'next_mask' has shape {src.shape} dtype {src.dtype}, this buffer "
                              f"expects {dst.shape} {dst.dtype}: build the buffer with the checkpoint's settings")
    return src


def gather_batch(storage, index: np.ndarray, is_weight: np.ndarray, gamma_powers: np.ndarray,
                 discount_table: np.ndarray, device: torch.device, limit: np.ndarray | None = None,
                 masks: np.ndarray | None = None, n_actions: int = 0) -> Batch:
    """The :class:`Batch` of the n-step windows starting at flat slots ``index`` of ``storage``.

    ``gamma_powers`` is ``gamma ** arange(n)`` or one row per sample (B, n), ``discount_table`` is
    ``gamma ** arange(n + 1)`` as float32, or one row per sample (B, n + 1); ``limit`` (B,) caps n per sample
    (see :func:`dqnkit.replay.nstep.nstep_window`). The truncated windows bootstrap from the true final
    observation the storage kept. ``masks`` (slots, packed bytes): the packed masks of the states each slot's
    transition ended in; ``next_mask`` is then the mask at each window's last slot, where a mask that allows
    nothing (a terminal state's) allows everything, so that a max over it stays finite (terminated targets
    ignore it).
    """
    win = nstep_window(index, storage.reward_flat, storage.terminated_flat, storage.truncated_flat,
                       num_envs=storage.num_envs, gamma_powers=gamma_powers, limit=limit)
    obs = storage.obs_flat[index]
    next_obs = storage.obs_flat[win.next_slot]  # a reset obs where the episode ended: fixed below / masked
    if win.truncated.any():
        rows = np.flatnonzero(win.truncated)
        next_obs[rows] = storage.final_obs_of(win.end_slot[rows])
    if discount_table.ndim == 1:
        discount = discount_table[win.k_steps]
    else:
        discount = discount_table[np.arange(index.shape[0]), win.k_steps]
    arrays = (obs, storage.action_flat[index], win.reward, next_obs, win.terminated.astype(np.float32), discount,
              is_weight)
    if masks is not None:
        next_mask = unpack(masks[win.end_slot], n_actions)
        next_mask[~next_mask.any(axis=1)] = True
        arrays += (next_mask,)
    if device.type == "cpu":
        tensors = [torch.from_numpy(a) for a in arrays]
    else:
        tensors = [torch.from_numpy(a).to(device, non_blocking=True) for a in arrays]
    return Batch(*tensors[:7], index=index, next_mask=tensors[7] if masks is not None else None)
