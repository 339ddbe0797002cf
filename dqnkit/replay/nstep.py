"""n-step returns computed at sample time, vectorised over the batch.

The n-step target (Sutton & Barto, *Reinforcement Learning: An Introduction*, 2nd ed. 2018,
Sec. 7.1, Eq. 7.1; used with Q-learning in Hessel et al. 2018, *Rainbow*, Eq. 2)::

    G_t^(k) = sum_{i<k} gamma^i r_{t+i},    target = G_t^(k) + gamma^k (1 - terminated) max_a Q(s_{t+k}, a)

where the window length ``k`` is ``n`` unless the episode ends first: the window stops *after* the
first row whose ``terminated`` or ``truncated`` flag is set, so it never crosses into the next episode.
A truncated window bootstraps from the true final observation (Pardo et al. 2018, *Time Limits in
Reinforcement Learning*); a terminated one does not bootstrap.

All work is on arrays of shape ``(B, n)``: no Python loop over samples or over ``n``.
The caller guarantees that the sampled slots are valid (their window and the observation after it
are written), so the window never crosses the ring's write pointer.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class NStepWindow(NamedTuple):
    reward: np.ndarray  # (B,) float32: sum_{i<k} gamma^i r_{t+i}
    k_steps: np.ndarray  # (B,) int64 in [1, n]: rows used
    end_slot: np.ndarray  # (B,) int64: slot of the last row used
    next_slot: np.ndarray  # (B,) int64: slot holding s_{t+k} (a reset obs if the episode ended)
    terminated: np.ndarray  # (B,) bool: the window stopped at a termination
    truncated: np.ndarray  # (B,) bool: the window stopped at a truncation (and not a termination)


def nstep_window(
    index: np.ndarray,
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    *,
    num_envs: int,
    gamma_powers: np.ndarray,
    limit: np.ndarray | None = None,
) -> NStepWindow:
    """n-step windows starting at flat slots ``index``.

    ``reward``/``terminated``/``truncated`` are the storage's flat ``(T * N,)`` arrays; the row after
    slot ``s`` in the same env is ``(s + num_envs) % (T * N)``. ``gamma_powers`` is
    ``gamma ** arange(n)`` (float64), whose length sets ``n``, or one such row per sample ``(B, n)``
    (population members with their own gamma). ``limit`` (B,): a shorter n per sample (a member whose
    ``n_step`` is below the longest); its rows past the limit are not used.
    """
    num_slots = reward.shape[0]
    n_step = gamma_powers.shape[-1]
    index = np.asarray(index, dtype=np.int64)
    window = index[:, None] + np.arange(n_step, dtype=np.int64) * num_envs  # (B, n)
    window %= num_slots
    term = terminated[window]
    done = term | truncated[window]
    # Row k is used iff no episode ended in rows 0..k-1 of the window (and k < limit).
    ends_before = np.cumsum(done, axis=1)
    ends_before -= done
    used = ends_before == 0
    if limit is not None:
        used &= np.arange(n_step) < np.asarray(limit)[:, None]
    k_steps = used.sum(axis=1)
    ret = (reward[window] * (gamma_powers * used)).sum(axis=1, dtype=np.float64)
    end_slot = window[np.arange(index.shape[0]), k_steps - 1]
    term_end = terminated[end_slot]
    trunc_end = truncated[end_slot] & ~term_end
    next_slot = (end_slot + num_envs) % num_slots
    return NStepWindow(ret.astype(np.float32), k_steps.astype(np.int64), end_slot, next_slot, term_end, trunc_end)
