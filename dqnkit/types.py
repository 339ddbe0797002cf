"""Typed contracts passed between components.

One name, one meaning: ``is_weight`` is always an importance-sampling weight,
``td_abs`` is always the new |TD error| (or per-sample loss) used as a priority.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A minibatch of (possibly n-step) transitions, as torch tensors on the learner's device.

    The learner's TD target is ``reward + discount * (1 - terminated) * bootstrap(next_obs)``; with
    ``next_mask`` the bootstrap's max (and Double DQN's argmax) runs over the allowed actions only.
    """

    obs: torch.Tensor  # (B, *obs_shape), stored dtype (float32, or uint8 for pixels)
    action: torch.Tensor  # (B,) int64
    reward: torch.Tensor  # (B,) float32: sum_{i<k} gamma^i r_{t+i} over the k steps of the window
    next_obs: torch.Tensor  # (B, *obs_shape): observation k steps later (true final obs if truncated)
    terminated: torch.Tensor  # (B,) float32: 1.0 where the window ended in a termination
    discount: torch.Tensor  # (B,) float32: gamma^k, k = steps in the window (1 <= k <= n_step)
    is_weight: torch.Tensor  # (B,) float32: importance-sampling weights, ones for uniform sampling
    index: np.ndarray  # (B,) int64: flat storage slots, for update_priorities
    # (B, |A|) bool: the actions allowed at next_obs (envs with action masks, dqnkit.envs.masks), else None
    next_mask: torch.Tensor | None = None

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The seven per-sample tensors, obs to is_weight (not index, not next_mask)."""
        return self[:7]

    def rows(self, key) -> "Batch":
        """The batch of the samples ``key`` selects (a slice, or ``(slice(None), s)`` for (M, B) batches)."""
        return Batch(*(field[key] for field in self.tensors()), index=self.index[key],
                     next_mask=None if self.next_mask is None else self.next_mask[key])
