"""A Q-table on continuous states: :class:`DiscretizeObservation` turns a ``Box`` observation into one cell index.

Each dimension ``d`` is cut into ``bins[d]`` equal-width bins over ``[low_d, high_d]`` (the space's bounds, or the
``bounds`` given where the space is unbounded, as CartPole's velocities are); values outside fall into the end
bins. The cell index is ``numpy.ravel_multi_index`` of the per-dimension bins (C order: the last dimension varies
fastest), so a Q-table row ``s`` of a 2-D state is bin ``(s // bins[1], s % bins[1])``.
The resolved ``bins`` and ``bounds`` are saved with a tabular run (tabular.json), so eval and policy use the same
cells. Imports no torch.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnkit.errors import ConfigError, EnvError

Bounds = Sequence[Sequence[float] | None]


def parse_bins(text: str) -> list[int]:
    """``"20"`` or ``"20,20"`` (one count per dimension) from the command line."""
    try:
        bins = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"--bins {text!r}: write one bin count for every dimension (20) or one per dimension "
                          "(20,20)") from None
    return bins


def parse_bounds(text: str) -> list[list[float] | None]:
    """``"lo:hi,lo:hi"``, one range per dimension; an empty entry keeps the space's own bounds."""
    out: list[list[float] | None] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            out.append(None)
            continue
        lo, sep, hi = part.partition(":")
        try:
            if not sep:
                raise ValueError
            out.append([float(lo), float(hi)])
        except ValueError:
            raise ConfigError(f"--bounds {text!r}: write one lo:hi range per dimension, e.g. -2.4:2.4,-3:3 (an "
                              "empty entry keeps the space's bounds)") from None
    return out


class Discretizer:
    """Equal-width bins over a Box: ``index(obs)`` -> cell, ``centres[d]`` -> the bin centres of dimension ``d``."""

    def __init__(self, space: spaces.Space, bins: int | Sequence[int], bounds: Bounds | None = None,
                 name: str = "the env"):
        if not isinstance(space, spaces.Box):
            raise EnvError(f"--bins discretises Box observations; {name} has {space}, which needs no bins")
        low, high = np.asarray(space.low, dtype=np.float64).ravel(), np.asarray(space.high, dtype=np.float64).ravel()
        dims = low.size
        counts = [int(bins)] * dims if isinstance(bins, (int, np.integer)) else [int(b) for b in bins]
        if len(counts) == 1 and dims > 1:
            counts = counts * dims
        if len(counts) != dims or any(b < 1 for b in counts):
            raise ConfigError(f"bins={list(counts)}: {name}'s observations have {dims} dimensions; give one positive "
                              f"bin count for all of them or one for each (--bins {','.join(['10'] * dims)})")
        given = list(bounds) if bounds is not None else [None] * dims
        if len(given) != dims:
            raise ConfigError(f"bounds has {len(given)} ranges but {name}'s observations have {dims} dimensions; "
                              "give one lo:hi per dimension (an empty entry keeps the space's bounds)")
        self.low, self.high = low.copy(), high.copy()
        for d, rng in enumerate(given):
            if rng is not None:
                if len(rng) != 2 or not float(rng[0]) < float(rng[1]):
                    raise ConfigError(f"bounds of dimension {d}: {list(rng)} must be lo:hi with lo < hi")
                self.low[d], self.high[d] = float(rng[0]), float(rng[1])
        for d in range(dims):
            if not (math.isfinite(self.low[d]) and math.isfinite(self.high[d])):
                example = ",".join(f"{lo:g}:{hi:g}" if math.isfinite(lo) and math.isfinite(hi) else "-3:3"
                                   for lo, hi in zip(self.low, self.high))
                raise ConfigError(f"{name}'s observation dimension {d} is unbounded ([{self.low[d]:g}, "
                                  f"{self.high[d]:g}]), so --bins cannot cut it; give its range with --bounds, one "
                                  f"lo:hi per dimension (e.g. --bounds={example})")
        self.bins = counts
        self.shape = tuple(space.shape)
        self.n = int(np.prod(counts))
        self.centres = [lo + (np.arange(b) + 0.5) * (hi - lo) / b for lo, hi, b in zip(self.low, self.high, counts)]
        # plain Python numbers for index(): one observation per env step, where NumPy's per-call cost dominates
        self._cut = [(float(lo), b / float(hi - lo), b) for lo, hi, b in zip(self.low, self.high, counts)]

    def cells(self, obs: Any) -> np.ndarray:
        """Per-dimension bin indices of one observation (or a batch, last axis = dimensions)."""
        x = np.asarray(obs, dtype=np.float64).reshape(-1, len(self.bins))
        counts = np.asarray(self.bins)
        idx = np.floor((x - self.low) / (self.high - self.low) * counts).astype(np.int64)
        return np.clip(idx, 0, counts - 1)

    def index(self, obs: Any) -> int:
        """The cell of one observation: ``ravel_multi_index(cells(obs))``."""
        cell = 0
        for x, (lo, per_unit, b) in zip(np.asarray(obs, dtype=np.float64).ravel().tolist(), self._cut):
            k = math.floor((x - lo) * per_unit)
            cell = cell * b + (0 if k < 0 else b - 1 if k >= b else k)
        return cell

    def describe(self) -> dict[str, list]:
        """The resolved bins and bounds, as JSON (what a tabular run saves)."""
        return {"bins": list(self.bins), "bounds": [[float(lo), float(hi)] for lo, hi in zip(self.low, self.high)]}


class DiscretizeObservation(gym.ObservationWrapper):
    """A ``Box`` observation becomes the index of its cell: the observation space becomes ``Discrete(prod(bins))``."""

    def __init__(self, env: gym.Env, bins: int | Sequence[int], bounds: Bounds | None = None):
        super().__init__(env)
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        self.discretizer = Discretizer(env.observation_space, bins, bounds, name)
        self.observation_space = spaces.Discrete(self.discretizer.n)

    def observation(self, observation: Any) -> int:
        return self.discretizer.index(observation)
