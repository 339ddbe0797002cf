"""Building environments for dqnkit: checks, one-hot observations, vector envs.

* :func:`make_env` builds one env from a Gymnasium id or a zero-argument
  callable, rejects action spaces a DQN cannot use (:func:`check_discrete`),
  and one-hot encodes ``Discrete`` observations (:class:`OneHotObservation`).
* :func:`make_vec_env` builds a ``SyncVectorEnv`` of such envs in
  **same-step autoreset mode** (see below), and :func:`final_observations`
  recovers the true final observation of each episode that ended.
* :func:`obs_spec` says what the replay buffer stores; :func:`spaces_signature`
  describes the spaces as JSON so checkpoints from another env can be rejected.

Autoreset (Gymnasium 1.x, ``gymnasium/vector/sync_vector_env.py``): by default
a vector env resets a finished sub-env on the *next* ``step()`` call, which
returns a reset observation with reward 0 for an action that was never taken.
dqnkit builds its vector envs with ``autoreset_mode=AutoresetMode.SAME_STEP``
instead: when sub-env ``i`` terminates or truncates, the same ``step()`` call
resets it, so

* ``next_obs[i]`` is already the first observation of the next episode,
* ``reward[i]``, ``terminated[i]``, ``truncated[i]`` belong to the step just taken,
* ``infos["final_obs"]`` is a NumPy object array of length ``num_envs`` holding
  the true final observation at ``i`` (``None`` elsewhere), and
  ``infos["_final_obs"]`` is the boolean mask of the sub-envs that ended;
  ``infos["final_info"]`` / ``infos["_final_info"]`` hold the final step's info.

Both keys are present only on steps where at least one sub-env ended.
"""
from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnkit.errors import ConfigError, EnvError

EnvFactory = Callable[[], gym.Env]

__all__ = [
    "OneHotObservation",
    "ZeroBasedActions",
    "check_discrete",
    "final_observations",
    "input_scale",
    "make_env",
    "make_vec_env",
    "obs_spec",
    "spaces_signature",
]

# Extras to install for env families whose dependencies are optional.
_EXTRA_FOR_MODULE = {"Box2D": "box2d", "box2d": "box2d", "ale_py": "atari", "pygame": "box2d"}


# ----------------------------------------------------------------- wrappers
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
        out = np.zeros(self._n, dtype=np.float32)
        out[int(observation) - self._start] = 1.0
        return out


class ZeroBasedActions(gym.ActionWrapper):
    """Maps actions ``0..n-1`` onto a ``Discrete(n, start)`` action space whose start is not 0."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._start = int(env.action_space.start)
        self.action_space = spaces.Discrete(int(env.action_space.n))

    def action(self, action: Any) -> Any:
        return int(action) + self._start


# ------------------------------------------------------------------- checks
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


def _check_observation_space(space: spaces.Space, name: str) -> None:
    if isinstance(space, (spaces.Box, spaces.Discrete)):
        return
    raise EnvError(
        f"{name} has a {type(space).__name__} observation space ({space}); dqnkit needs a Box or Discrete "
        "observation space. Convert it with a wrapper: --set env_wrapper=minigrid.wrappers.ImgObsWrapper for "
        "MiniGrid, gymnasium.wrappers.FlattenObservation for others (or wrap it inside your env callable)."
    )


# ------------------------------------------------------------------ factory
def _ensure_registered(env_id: str) -> None:
    """Raises :class:`EnvError` with close matches if ``env_id`` cannot be made."""
    import dqnkit.envs  # noqa: F401  (registers GridWorld-v0)

    if ":" in env_id:  # "package.module:EnvName-v0": gym.make imports the module first
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EnvError(
                f"cannot import module {module!r} for env {env_id!r} ({exc}); install the package that "
                "provides it, or fix the module name before the ':'."
            ) from exc
    if env_id in gym.registry:
        return
    if env_id.startswith(("MiniGrid-", "BabyAI-")):
        try:
            import minigrid  # noqa: F401,PLC0415  (registers its envs on import)
        except ImportError as exc:
            raise EnvError(f"{env_id} is a MiniGrid env but minigrid is not installed; "
                           "pip install 'dqnkit[minigrid]'.") from exc
        if env_id in gym.registry:
            return
    if env_id.startswith("ALE/"):
        try:
            import ale_py  # noqa: PLC0415
        except ImportError as exc:
            raise EnvError(
                f"{env_id} is an Atari env but ale-py is not installed; pip install 'dqnkit[atari]'."
            ) from exc
        gym.register_envs(ale_py)
        if env_id in gym.registry:
            return
    matches = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3, cutoff=0.6)
    hint = f"Did you mean {' or '.join(repr(m) for m in matches)}? " if matches else ""
    raise EnvError(
        f"unknown environment id {env_id!r}. {hint}Check the spelling and version, or register a custom env "
        "with gymnasium.register(id=..., entry_point=...) (or pass a callable that returns the env)."
    )


def _build(
    env_id_or_callable: str | EnvFactory,
    render_mode: str | None,
    env_kwargs: Mapping[str, Any] | None,
) -> tuple[gym.Env, str]:
    """The raw env (no dqnkit wrappers) and a name for messages."""
    kwargs = dict(env_kwargs or {})
    if isinstance(env_id_or_callable, str):
        env_id = env_id_or_callable
        _ensure_registered(env_id)
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        try:
            env = gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as exc:
            extra = "box2d" if "box2d" in str(exc).lower() else None
            fix = f"pip install 'dqnkit[{extra}]'" if extra else "install the missing package"
            raise EnvError(f"{env_id} needs a package that is not installed ({exc}); {fix}.") from exc
        except ModuleNotFoundError as exc:
            extra = _EXTRA_FOR_MODULE.get((exc.name or "").split(".")[0])
            fix = f"pip install 'dqnkit[{extra}]'" if extra else f"pip install the package providing {exc.name!r}"
            raise EnvError(f"{env_id} needs module {exc.name!r}, which is not installed; {fix}.") from exc
        except TypeError as exc:
            if not kwargs:
                raise
            raise ConfigError(
                f"{env_id} rejected env_kwargs {kwargs} ({exc}); pass only arguments its constructor accepts."
            ) from exc
        return env, env_id
    if callable(env_id_or_callable):
        if env_kwargs:
            raise ConfigError(
                "env_kwargs were given with an env callable; bind them inside the callable "
                "(e.g. functools.partial) or pass a Gymnasium id instead."
            )
        env = env_id_or_callable()
        if not isinstance(env, gym.Env):
            raise EnvError(
                f"the env callable {env_id_or_callable!r} returned {type(env).__name__}, not a gymnasium.Env; "
                "make it return a Gymnasium environment."
            )
        if render_mode is not None and env.render_mode != render_mode:
            raise ConfigError(
                f"render_mode={render_mode!r} was requested but the env callable built an env with "
                f"render_mode={env.render_mode!r}; set render_mode inside the callable."
            )
        name = env.spec.id if env.spec is not None else getattr(env_id_or_callable, "__name__", type(env).__name__)
        return env, name
    raise ConfigError(
        f"expected a Gymnasium env id (str) or a zero-argument callable returning an env, "
        f"got {type(env_id_or_callable).__name__}; pass e.g. 'CartPole-v1'."
    )


def import_object(path: str, what: str = "wrapper") -> Any:
    """The object named by ``'package.module.Name'`` or ``'package.module:Name'``; EnvError if it cannot be imported."""
    module_name, sep, name = path.partition(":")
    if not sep:
        module_name, _, name = path.rpartition(".")
    if not module_name or not name:
        raise ConfigError(f"{what} {path!r} is not an import path; write it as 'package.module.Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvError(f"cannot import module {module_name!r} for {what} {path!r} ({exc}); install the package "
                       "that provides it, or fix the path.") from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise EnvError(f"module {module_name!r} has no {name!r} (from {what} {path!r}); fix the name.") from None


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


def make_env(
    env_id_or_callable: str | EnvFactory,
    *,
    seed: int | None = None,
    render_mode: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    one_hot: bool = True,
    wrappers: Sequence[str | Mapping[str, Mapping[str, Any]]] | None = None,
) -> gym.Env:
    """One environment ready for dqnkit.

    Args:
        env_id_or_callable: a registered Gymnasium id (``"CartPole-v1"``, ``"GridWorld-v0"``,
            ``"module:Env-v0"``) or a zero-argument callable returning a ``gymnasium.Env``.
        seed: seeds the action and observation spaces (used for random actions). The env's own
            RNG is seeded by the caller's first ``env.reset(seed=...)``, as Gymnasium intends.
        render_mode: passed to ``gymnasium.make`` (ids only).
        env_kwargs: extra keyword arguments for ``gymnasium.make`` (ids only).
        one_hot: wrap ``Discrete`` observation spaces in :class:`OneHotObservation`
            (networks need vectors; tabular learners pass ``one_hot=False``).
        wrappers: applied to the raw env before the checks (see :func:`apply_wrappers`), e.g.
            ``["minigrid.wrappers.ImgObsWrapper"]`` to give MiniGrid envs a Box observation.

    Raises:
        EnvError: unknown id (with close matches), missing optional dependency, action space
            that is not ``Discrete``, or an observation space that is neither Box nor Discrete.
    """
    env, name = _build(env_id_or_callable, render_mode, env_kwargs)
    try:
        env = apply_wrappers(env, wrappers)
        check_discrete(env.action_space, name)
        _check_observation_space(env.observation_space, name)
    except (EnvError, ConfigError):
        env.close()
        raise
    if int(env.action_space.start) != 0:
        env = ZeroBasedActions(env)
    if one_hot and isinstance(env.observation_space, spaces.Discrete):
        env = OneHotObservation(env)
    if seed is not None:
        env.action_space.seed(int(seed))
        env.observation_space.seed(int(seed))
    return env


def make_vec_env(
    env_id_or_callable: str | EnvFactory,
    num_envs: int,
    *,
    seed: int | None,
    env_kwargs: Mapping[str, Any] | None = None,
    one_hot: bool = True,
) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of :func:`make_env` in a ``SyncVectorEnv`` with same-step autoreset.

    Sub-env ``i``'s action space is seeded with ``seed + i``. The envs themselves are not reset
    here: the caller's ``envs.reset(seed=seed)`` seeds sub-env ``i`` with ``seed + i``
    (Gymnasium's rule for an int seed). See the module docstring for ``infos["final_obs"]``.
    """
    if int(num_envs) < 1:
        raise ConfigError(f"num_envs={num_envs} must be at least 1; use 1 for a single env.")
    # Fail fast, with dqnkit's message, before building the vector env.
    if isinstance(env_id_or_callable, str):
        _ensure_registered(env_id_or_callable)

    def factory(i: int) -> EnvFactory:
        def thunk() -> gym.Env:
            return make_env(
                env_id_or_callable,
                seed=None if seed is None else int(seed) + i,
                env_kwargs=env_kwargs,
                one_hot=one_hot,
            )

        return thunk

    envs = gym.vector.SyncVectorEnv(
        [factory(i) for i in range(int(num_envs))],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    if seed is not None:
        envs.action_space.seed(int(seed))
    return envs


def final_observations(next_obs: np.ndarray, infos: Mapping[str, Any], ended: np.ndarray) -> np.ndarray:
    """The observation each transition actually ended in, for a same-step-autoreset vector env.

    Returns an array equal to ``next_obs`` except in the rows where ``ended`` (= terminated |
    truncated) is True, which hold ``infos["final_obs"][i]`` instead of the reset observation.
    When no episode ended, ``next_obs`` itself is returned (no copy): do not modify the result.
    """
    ended = np.asarray(ended, dtype=bool)
    if not ended.any():
        return next_obs
    if "final_obs" not in infos:
        raise EnvError(
            "an episode ended but infos has no 'final_obs': the vector env is not in same-step autoreset "
            "mode; build it with dqnkit.envs.make_vec_env (autoreset_mode=AutoresetMode.SAME_STEP)."
        )
    final_obs = infos["final_obs"]
    mask = np.asarray(infos.get("_final_obs", ended), dtype=bool)
    if not np.array_equal(mask, ended):
        raise EnvError(
            f"infos['_final_obs'] {mask.tolist()} does not match terminated|truncated {ended.tolist()}; "
            "pass the infos of the same step() call, from a same-step-autoreset vector env."
        )
    out = np.array(next_obs, copy=True)
    for i in np.flatnonzero(ended):
        out[i] = final_obs[i]
    return out


# ------------------------------------------------------------ descriptions
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


def step_info(infos: Mapping[str, Any], key: str, default: Any, num_envs: int) -> np.ndarray:
    """Per-env value of ``key`` for this vector step, in same-step autoreset mode.

    For envs whose episode ended, the step's own info lives in ``infos["final_info"]`` (the
    top-level entry then holds the reset info), so it is read from there.
    """
    out = np.full(num_envs, default)
    if key in infos:
        mask = infos.get(f"_{key}", np.ones(num_envs, dtype=bool))
        out[mask] = np.asarray(infos[key])[mask]
    final = infos.get("final_info")
    if isinstance(final, Mapping) and key in final:
        mask = final.get(f"_{key}", np.ones(num_envs, dtype=bool))
        out[mask] = np.asarray(final[key])[mask]
    return out
