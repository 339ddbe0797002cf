"""Building one environment for dqnkit: :func:`make_env` from a Gymnasium id or a callable.

It imports the package that registers an id where that is known (ale-py for ``ALE/...``, minigrid for
``MiniGrid-...``), names the extra to install when a dependency is missing, applies the config's
wrappers, rejects action spaces a DQN cannot use, and one-hot encodes ``Discrete`` observations.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from dqnkit.envs.atari import register_ale
from dqnkit.envs.spaces import check_discrete, check_observation_space
from dqnkit.envs.wrappers import OneHotObservation, ZeroBasedActions, apply_wrappers
from dqnkit.errors import ConfigError, EnvError

EnvFactory = Callable[[], gym.Env]

# Extras to install for env families whose dependencies are optional.
_EXTRA_FOR_MODULE = {"Box2D": "box2d", "box2d": "box2d", "ale_py": "atari", "pygame": "box2d"}


def ensure_registered(env_id: str) -> None:
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
        register_ale()
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
        ensure_registered(env_id)
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
        check_observation_space(env.observation_space, name)
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
