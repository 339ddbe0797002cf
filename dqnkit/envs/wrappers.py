"""Wrappers dqnkit puts around environments, and wrappers named in a config.

* :class:`OneHotObservation`: a ``Discrete(n, start)`` observation becomes a float32 one-hot vector
  (:func:`one_hot` is the same encoding for a batch of raw states, used by the Python API).
* :class:`ZeroBasedActions`: actions ``0..n-1`` on a ``Discrete(n, start)`` action space.
* :func:`apply_wrappers`: the config's ``env_wrapper`` entries (rl-zoo's key), by import path (:func:`dqnkit.importing.import_object`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnkit.errors import ConfigError, EnvError
from dqnkit.importing import import_object


def one_hot(states: Any, n: int, start: int = 0) -> np.ndarray:
    """float32 one-hot rows of ``n`` for integer ``states`` of a ``Discrete(n, start)`` space: a scalar gives
    shape ``(n,)``, an array of shape ``S`` gives ``S + (n,)``."""
    idx = np.asarray(states, dtype=np.int64) - int(start)
    out = np.zeros(idx.shape + (int(n),), dtype=np.float32)
    np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
    return out


class OneHotObservation(gym.ObservationWrapper):
    """Encodes a ``Discrete(n, start)`` observation as a float32 one-hot vector of size ``n``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Discrete):
            raise EnvError(
                f"OneHotObservation needs a Discrete observation space, got {space}; "
                "apply it only to envs with Discrete observations."
            )
        self._n = int(space.n)
        self._start = int(space.start)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self._n,), dtype=np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return one_hot(observation, self._n, self._start)


class ZeroBasedActions(gym.ActionWrapper):
    """Maps actions ``0..n-1`` onto a ``Discrete(n, start)`` action space whose start is not 0."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._start = int(env.action_space.start)
        self.action_space = spaces.Discrete(int(env.action_space.n))

    def action(self, action: Any) -> Any:
        return int(action) + self._start


def apply_wrappers(env: gym.Env, wrappers: Sequence[str | Mapping[str, Mapping[str, Any]]] | None) -> gym.Env:
    """Wrap ``env`` in each of ``wrappers`` (innermost first): import paths, or ``{path: kwargs}`` mappings."""
    for spec in wrappers or ():
        if isinstance(spec, Mapping):
            (path, kwargs), = spec.items()
        else:
            path, kwargs = spec, {}
        cls = import_object(path)
        try:
            env = cls(env, **dict(kwargs or {}))
        except TypeError as exc:
            raise ConfigError(f"env wrapper {path} rejected its arguments {dict(kwargs or {})} ({exc}); "
                              "pass only arguments its constructor accepts.") from exc
    return env
