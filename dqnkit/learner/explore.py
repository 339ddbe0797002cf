"""Epsilon-greedy exploration schedules, all in absolute env steps (or episodes).

Absolute units mean a resumed run explores exactly as the uninterrupted one would:
unlike a schedule tied to "progress remaining", nothing depends on the budget of the
current call to ``learn``.

- linear (Mnih et al. 2015; SB3's default): decays from initial to final over
  ``exploration_fraction * total_timesteps`` env steps, then stays at final.
- exponential (PyTorch's DQN tutorial): ``final + (initial - final) * exp(-step / decay)``.
- multiplicative (the tabular Q-learning tutorials): ``eps <- max(final, eps * decay)`` after each
  finished episode.

Also the two epsilon-greedy choices: :func:`epsilon_greedy` for a batch of greedy actions (DQN acting,
videos, ``predict``, evaluation with ``eval_epsilon``) and :func:`epsilon_greedy_row` for one Q-table row with
random tie-breaking (the tabular learner); :func:`boltzmann` (softmax(Q / T)) and :func:`max_boltzmann`
(keras-rl's MaxBoltzmannQPolicy), with the temperature on a linear schedule like epsilon's. Each takes an
optional mask of allowed actions. Torch-free.
"""
from __future__ import annotations

import math

import numpy as np


class EpsilonSchedule:
    """Epsilon as a function of env steps and finished episodes."""

    def __init__(self, kind: str, initial: float, final: float, *, decay_env_steps: float = 1000.0,
                 episode_decay: float = 0.995, linear_env_steps: float = 1.0):
        self.kind = kind
        self.initial = float(initial)
        self.final = float(final)
        self.decay_env_steps = float(decay_env_steps)
        self.episode_decay = float(episode_decay)
        self.linear_env_steps = max(float(linear_env_steps), 1.0)

    @classmethod
    def from_config(cls, cfg) -> "EpsilonSchedule":
        return cls(cfg.exploration_schedule, cfg.exploration_initial_eps, cfg.exploration_final_eps,
                   decay_env_steps=cfg.exploration_decay_env_steps, episode_decay=cfg.exploration_episode_decay,
                   linear_env_steps=cfg.exploration_fraction * cfg.total_timesteps)

    @classmethod
    def temperature_from_config(cls, cfg) -> "EpsilonSchedule":
        """Boltzmann's temperature: linear from initial to final over exploration_fraction * total_timesteps."""
        return cls("linear", cfg.exploration_initial_temperature, cfg.exploration_final_temperature,
                   linear_env_steps=cfg.exploration_fraction * cfg.total_timesteps)

    def value(self, env_step: int, episodes: int) -> float:
        if self.kind == "linear":
            frac = min(1.0, env_step / self.linear_env_steps)
            return self.initial + frac * (self.final - self.initial)
        if self.kind == "exponential":
            return self.final + (self.initial - self.final) * math.exp(-env_step / self.decay_env_steps)
        if self.kind == "multiplicative":
            return max(self.final, self.initial * self.episode_decay ** episodes)
        raise ValueError(f"unknown exploration schedule {self.kind!r}")


def epsilon_greedy(greedy: np.ndarray, epsilon: float, n_actions: int, rng: np.random.Generator,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Replace each greedy action by a uniform random one with probability epsilon (vectorised); with a
    ``mask`` (B, n_actions) of allowed actions the random one is uniform over the allowed actions."""
    return with_exploration(greedy, *epsilon_draws(greedy.shape[0], epsilon, n_actions, rng, mask))


def epsilon_draws(n: int, epsilon: float, n_actions: int, rng: np.random.Generator,
                  mask: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The random half of :func:`epsilon_greedy` for ``n`` envs, drawn before the greedy actions are known: which
    envs explore (None when epsilon <= 0) and their random actions (None when none does). The draws are those
    of ``epsilon_greedy``, so a caller may skip the forward pass when every env explores and stay exact."""
    if epsilon <= 0.0:
        return None, None
    explore = rng.random(n) < epsilon
    if not explore.any():
        return explore, None
    if mask is None:
        return explore, rng.integers(0, n_actions, size=n)
    return explore, uniform_allowed(mask, rng)


def with_exploration(greedy: np.ndarray, explore: np.ndarray | None, random_actions: np.ndarray | None) -> np.ndarray:
    """``greedy`` with the exploring envs' random actions put in (``epsilon_draws``'s two results)."""
    return greedy if random_actions is None else np.where(explore, random_actions, greedy)


def uniform_allowed(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of ``mask`` (B, n_actions), uniform over its True entries (one draw per row)."""
    counts = mask.sum(axis=1)
    k = np.minimum((rng.random(mask.shape[0]) * counts).astype(np.int64), counts - 1)
    return (np.cumsum(mask, axis=1) > k[:, None]).argmax(axis=1)


def masked_argmax(q: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """argmax over the allowed actions of each row (all actions without a mask)."""
    if mask is None:
        return q.argmax(axis=1)
    return np.where(mask, q, -np.inf).argmax(axis=1)


def boltzmann(q: np.ndarray, temperature: float, rng: np.random.Generator,
              mask: np.ndarray | None = None) -> np.ndarray:
    """One action per row of ``q`` (B, |A|) drawn from softmax(q / temperature) over the allowed actions (keras-rl's
    BoltzmannQPolicy, without its clip of q / T to [-500, 500]: the max is subtracted instead). One uniform per row."""
    z = np.asarray(q, dtype=np.float64) / float(temperature)
    if mask is not None:
        z = np.where(mask, z, -np.inf)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(cdf.shape[0]) * cdf[:, -1]
    return (cdf > u[:, None]).argmax(axis=1)


def max_boltzmann(q: np.ndarray, epsilon: float, temperature: float, rng: np.random.Generator,
                  mask: np.ndarray | None = None) -> np.ndarray:
    """keras-rl's MaxBoltzmannQPolicy (Wiering 1999): with probability epsilon a Boltzmann sample, else greedy."""
    greedy = masked_argmax(q, mask)
    explore = rng.random(greedy.shape[0]) < epsilon
    if not explore.any():
        return greedy
    return np.where(explore, boltzmann(q, temperature, rng, mask), greedy)


def explore(q: np.ndarray, kind: str, epsilon: float, temperature: float, rng: np.random.Generator,
            mask: np.ndarray | None = None) -> np.ndarray:
    """The exploring actions of config ``exploration`` ``kind`` for Q-values ``q`` (B, |A|)."""
    if kind == "boltzmann":
        return boltzmann(q, temperature, rng, mask)
    if kind == "max_boltzmann":
        return max_boltzmann(q, epsilon, temperature, rng, mask)
    return epsilon_greedy(masked_argmax(q, mask), epsilon, q.shape[1], rng, mask)


def epsilon_policy(greedy_policy, epsilon: float, n_actions: int, rng: np.random.Generator):
    """``greedy_policy(obs, mask=None)`` made epsilon-greedy with its own generator (evaluation's eval_epsilon)."""
    def policy(obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return epsilon_greedy(greedy_policy(obs, mask), epsilon, n_actions, rng, mask)
    return policy


def epsilon_greedy_row(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability epsilon a uniform random action, else an argmax of ``q_row``, ties broken at random."""
    if rng.random() < epsilon:
        return int(rng.integers(q_row.shape[0]))
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[0]) if best.size == 1 else int(best[rng.integers(best.size)])
