"""What dqnkit needs to know about spaces: whether an env fits a DQN, how its observations are stored and
scaled, and a JSON description that tells two envs apart (so a checkpoint from another env is refused).
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnkit.errors import EnvError


def _describe(env_or_space: Any) -> str:
    spec = getattr(env_or_space, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return spec.id
    return type(getattr(env_or_space, "unwrapped", env_or_space)).__name__


def check_discrete(
    env_or_space: gym.Env | gym.vector.VectorEnv | spaces.Space, env_id: str | None = None
) -> spaces.Discrete:
    """Returns the env's (single) action space if it is ``Discrete``; raises :class:`EnvError` otherwise."""
    if isinstance(env_or_space, spaces.Space):
        space = env_or_space
    else:
        space = getattr(env_or_space, "single_action_space", None)
        if space is None:
            space = env_or_space.action_space
    name = env_id or _describe(env_or_space)
    if isinstance(space, spaces.Discrete):
        return space
    if isinstance(space, spaces.Box):
        raise EnvError(
            f"{name} has a continuous action space ({space}); dqnkit's DQN needs a Discrete action space. "
            "Discretise it with a wrapper, or pick an env with discrete actions."
        )
    if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
        raise EnvError(
            f"{name} has a {type(space).__name__} action space ({space}); dqnkit's DQN needs a single Discrete "
            "action space. Flatten it into one Discrete space with a wrapper (one action per combination), "
            "or pick an env with discrete actions."
        )
    raise EnvError(
        f"{name} has a {type(space).__name__} action space ({space}); dqnkit's DQN needs a Discrete action "
        "space. Wrap the env so its action space is Discrete(n), or pick an env with discrete actions."
    )


def check_observation_space(space: spaces.Space, name: str) -> None:
    if isinstance(space, (spaces.Box, spaces.Discrete)):
        return
    raise EnvError(
        f"{name} has a {type(space).__name__} observation space ({space}); dqnkit needs a Box or Discrete "
        "observation space. Convert it with a wrapper: --set env_wrapper=minigrid.wrappers.ImgObsWrapper for "
        "MiniGrid, gymnasium.wrappers.FlattenObservation for others (or wrap it inside your env callable)."
    )


def stored_obs_dtype(obs_dtype: Any) -> np.dtype:
    """Float observations are stored (and fed to networks) as float32; every other dtype as given."""
    dtype = np.dtype(obs_dtype)
    return np.dtype(np.float32) if np.issubdtype(dtype, np.floating) else dtype


def obs_spec(space: spaces.Space) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` of one observation as the replay buffer should store it.

    uint8 observations (pixels) stay uint8; integer or bool Boxes whose bounds fit in
    [0, 255] become uint8; every other Box is stored as float32. A ``Discrete(n)`` space
    is stored as its one-hot encoding, ``((n,), float32)``.
    """
    if isinstance(space, spaces.Discrete):
        return (int(space.n),), np.dtype(np.float32)
    if not isinstance(space, spaces.Box):
        raise EnvError(
            f"cannot store observations of a {type(space).__name__} space ({space}); dqnkit stores Box or "
            "Discrete observations. Flatten the space with gymnasium.wrappers.FlattenObservation."
        )
    shape = tuple(int(x) for x in space.shape)
    dtype = np.dtype(space.dtype)
    if dtype == np.uint8:
        return shape, np.dtype(np.uint8)
    if dtype == np.bool_ or (
        np.issubdtype(dtype, np.integer) and np.all(space.low >= 0) and np.all(space.high <= 255)
    ):
        return shape, np.dtype(np.uint8)
    return shape, np.dtype(np.float32)


def input_scale(space: spaces.Space, normalize_images: bool = True) -> float:
    """What an MLP multiplies a uint8 observation by after the cast to float: ``1/255`` for a uint8 Box
    whose bounds are exactly [0, 255] (an image, or anything stored like one) when ``normalize_images``,
    else 1.

    Stable-Baselines3 does the same for its image spaces (``preprocess_obs`` with ``normalize_images=True``),
    though only for 3-D ones; dqnkit scales every uint8 [0, 255] Box. Without it an MLP sees raw values
    up to 255 (or MiniGrid's object codes up to 10): on ``MiniGrid-Empty-5x5-v0`` that was the whole
    difference between a greedy return of 0.0 and the optimal 0.955 (``benchmarks/parity.py``).
    """
    if not normalize_images or not isinstance(space, spaces.Box) or np.dtype(space.dtype) != np.uint8:
        return 1.0
    return 1.0 / 255.0 if bool(np.all(space.low == 0) and np.all(space.high == 255)) else 1.0


def _json_number(x: float | int) -> float | int | str:
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _space_signature(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        sig: dict[str, Any] = {"type": "Box", "shape": [int(x) for x in space.shape], "dtype": str(space.dtype)}
        if space.low.size <= 64:  # bounds of small spaces tell envs apart; pixel bounds add nothing
            sig["low"] = [_json_number(v) for v in space.low.ravel().tolist()]
            sig["high"] = [_json_number(v) for v in space.high.ravel().tolist()]
        return sig
    if isinstance(space, spaces.MultiDiscrete):
        nvec, start = np.asarray(space.nvec).tolist(), np.asarray(space.start).tolist()
        return {"type": "MultiDiscrete", "nvec": nvec, "start": start}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [_space_signature(s) for s in space.spaces]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: _space_signature(s) for k, s in space.spaces.items()}}
    return {"type": type(space).__name__, "repr": repr(space)}


def spaces_signature(env: gym.Env | gym.vector.VectorEnv) -> dict[str, Any]:
    """A JSON-able description of the (single-env) observation and action spaces.

    Two envs a checkpoint can move between have equal signatures; compare with ``==``
    after a JSON round trip (non-finite bounds are written as ``"inf"``/``"-inf"``).
    """
    obs_space = getattr(env, "single_observation_space", None)
    act_space = getattr(env, "single_action_space", None)
    if obs_space is None or act_space is None:
        obs_space, act_space = env.observation_space, env.action_space
    return {"observation_space": _space_signature(obs_space), "action_space": _space_signature(act_space)}
