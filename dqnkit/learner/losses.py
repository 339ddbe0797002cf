"""Pure TD-loss functions: tensors in, ``(loss, td_abs)`` out; nothing is written in place.

Importance-sampling weights multiply the per-sample loss on every path (MSE, Huber, C51).

- Scalar target (Mnih et al. 2015, eq. 2 / Methods): y = r + gamma^k * (1 - terminated) * max_a' Q_target(s', a')
  with k-step rewards already summed by the replay (Sutton & Barto 2018, sec. 7.1).
- Double DQN (van Hasselt et al. 2016, eq. 4): the online net picks a* = argmax_a' Q_online(s', a'),
  the target net evaluates Q_target(s', a*).
- C51 (Bellemare et al. 2017, Algorithm 1): project r + gamma^k z onto the fixed support and
  minimise the cross-entropy; the per-sample cross-entropy is the new priority (Hessel et al. 2018).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_q(q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Q-values with the disallowed actions at -inf, so that max and argmax pick allowed ones only."""
    return q if mask is None else q.masked_fill(~mask, float("-inf"))


def td_target(reward: torch.Tensor, discount: torch.Tensor, terminated: torch.Tensor,
              next_q_target: torch.Tensor, next_q_online: torch.Tensor | None = None,
              next_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Bootstrapped target per sample. ``next_q_online`` given -> Double DQN action selection. ``next_mask``
    (allowed actions at s', each row with at least one True) restricts the max, or Double DQN's argmax.

    The action axis is the last one, so a leading member axis (population: (M, B, |A|)) works too."""
    if next_mask is not None:
        if next_q_online is None:
            next_q_target = masked_q(next_q_target, next_mask)
        else:
            next_q_online = masked_q(next_q_online, next_mask)
    if next_q_online is None:
        next_v = next_q_target.max(dim=-1).values
    else:
        a_star = next_q_online.argmax(dim=-1, keepdim=True)
        next_v = next_q_target.gather(-1, a_star).squeeze(-1)
    return reward + discount * (1.0 - terminated) * next_v


def value_loss(q_sa: torch.Tensor, target: torch.Tensor, is_weight: torch.Tensor | None,
               kind: str = "huber") -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean of Huber (delta=1) or squared TD errors; returns (loss, |td|).

    ``is_weight=None`` means all weights are 1 (uniform replay): the same value, fewer ops.
    """
    target = target.detach()
    if kind not in ("huber", "mse"):
        raise ValueError(f"unknown loss {kind!r}")
    lossfn = F.smooth_l1_loss if kind == "huber" else F.mse_loss
    if is_weight is None:
        loss = lossfn(q_sa, target)
    else:
        loss = (is_weight * lossfn(q_sa, target, reduction="none")).mean()
    return loss, (q_sa.detach() - target).abs()


def categorical_projection(next_probs: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor,
                           terminated: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Project the distribution of r + gamma^k * z (z ~ next_probs) onto ``support`` (C51, Algorithm 1).

    next_probs: (B, n_atoms) probabilities of the bootstrap action at s', or (B, |A|, n_atoms) those of every
    action (each projected alike: the atoms' destinations depend on the sample, not on the action). Terminal
    samples collapse to a point mass at r. Targets outside [v_min, v_max] are clipped to the ends.
    Returns target probabilities of next_probs' shape; each distribution sums to 1.
    """
    n_atoms = support.shape[0]
    v_min, v_max = support[0], support[-1]
    delta_z = (v_max - v_min) / (n_atoms - 1)
    scale = (discount * (1.0 - terminated)).unsqueeze(1)
    tz = (reward.unsqueeze(1) + scale * support.unsqueeze(0)).clamp(v_min, v_max)
    b = (tz - v_min) / delta_z  # fractional atom index in [0, n_atoms - 1]
    lower = b.floor().long().clamp(0, n_atoms - 1)
    upper = b.ceil().long().clamp(0, n_atoms - 1)
    # When b lands exactly on an atom, lower == upper: give it the whole mass.
    w_upper = b - lower.to(b.dtype)
    w_lower = 1.0 - w_upper
    if next_probs.dim() == 3:
        lower, upper = lower.unsqueeze(1).expand_as(next_probs), upper.unsqueeze(1).expand_as(next_probs)
        w_lower, w_upper = w_lower.unsqueeze(1), w_upper.unsqueeze(1)
    target = torch.zeros_like(next_probs)
    target.scatter_add_(-1, lower, next_probs * w_lower)
    target.scatter_add_(-1, upper, next_probs * w_upper)
    return target


def categorical_loss(logits_sa: torch.Tensor, target_probs: torch.Tensor,
                     is_weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy between the projected target and the online distribution of the taken action."""
    per_sample = -(target_probs.detach() * F.log_softmax(logits_sa, dim=-1)).sum(-1)
    loss = per_sample.mean() if is_weight is None else (is_weight * per_sample).mean()
    return loss, per_sample.detach()
