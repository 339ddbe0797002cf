"""Vector envs in same-step autoreset mode, and reading what one vector step returned.

Autoreset (Gymnasium 1.x, ``gymnasium/vector/sync_vector_env.py``): by default a vector env resets a
finished sub-env on the *next* ``step()`` call, which returns a reset observation with reward 0 for an
action that was never taken. dqnkit builds its vector envs with
``autoreset_mode=AutoresetMode.SAME_STEP`` instead: when sub-env ``i`` terminates or truncates, the same
``step()`` call resets it, so

* ``next_obs[i]`` is already the first observation of the next episode,
* ``reward[i]``, ``terminated[i]``, ``truncated[i]`` belong to the step just taken,
* ``infos["final_obs"]`` is a NumPy object array of length ``num_envs`` holding the true final
  observation at ``i`` (``None`` elsewhere), and ``infos["_final_obs"]`` is the boolean mask of the
  sub-envs that ended; ``infos["final_info"]`` / ``infos["_final_info"]`` hold the final step's info.

Both keys are present only on steps where at least one sub-env ended.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from dqnkit.config import Config
from dqnkit.envs.atari import is_atari, make_atari_env
from dqnkit.envs.classic import SUPPORTED as CLASSIC
from dqnkit.envs.classic import make_classic_vector
from dqnkit.envs.make import EnvFactory, ensure_registered, make_env
from dqnkit.envs.masks import final_masks, masks_of_infos, require_some_allowed, vector_masks, with_mask_info
from dqnkit.envs.recorder import EpisodeRecorder
from dqnkit.envs.spaces import input_scale, obs_spec, spaces_signature
from dqnkit.envs.wrappers import apply_wrappers, one_hot
from dqnkit.errors import ConfigError, EnvError

EnvSource = str | Callable[[], gym.Env]


def same_step_vector(factories: Sequence[Callable[[], gym.Env]]) -> gym.vector.SyncVectorEnv:
    """A ``SyncVectorEnv`` of ``factories`` in same-step autoreset mode (see the module docstring)."""
    return gym.vector.SyncVectorEnv(list(factories), autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


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
        ensure_registered(env_id_or_callable)

    def factory(i: int) -> EnvFactory:
        def thunk() -> gym.Env:
            return make_env(
                env_id_or_callable,
                seed=None if seed is None else int(seed) + i,
                env_kwargs=env_kwargs,
                one_hot=one_hot,
            )

        return thunk

    envs = same_step_vector([factory(i) for i in range(int(num_envs))])
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


class VecStep(NamedTuple):
    """One step of :class:`TrainingEnvs`, as the replay and the episode counters need it."""

    next_obs: np.ndarray  # (N, *obs): where each env is now (a reset observation where an episode ended)
    final_obs: np.ndarray  # (N, *obs): the observation each transition ended in (the true final one at an end)
    reward: np.ndarray  # (N,): the reward to learn from (sign-clipped on Atari with clip_rewards)
    terminated: np.ndarray  # (N,) bool: stop bootstrapping (game over, or a lost life on Atari with terminal_on_life_loss)
    truncated: np.ndarray  # (N,) bool: a time limit ended the episode
    episode_end: np.ndarray  # (N,) bool: the next observation starts a new episode (terminated | truncated of the game)
    reported_reward: np.ndarray  # (N,): the reward the episode return is reported in (the game's unclipped score)
    final_mask: np.ndarray | None = None  # (N, |A|) bool: the action mask of final_obs (envs with action masks)


class TrainingEnvs:
    """The vector of training envs of one run: ``cfg.num_envs`` copies in lockstep, same-step autoreset.

    Builds Atari games with dqnkit's preprocessing (:func:`dqnkit.envs.atari.make_atari_env`) and everything
    else with :func:`dqnkit.envs.make.make_env`, each wrapped in an :class:`EpisodeRecorder` so that the
    envs' state can be checkpointed as JSON (:meth:`snapshot`, :meth:`restore`). :meth:`step` separates
    what is learned from (clipped reward, life-loss terminals) from what is reported (the game's score).
    """

    def __init__(self, source: EnvSource, cfg: Config, *, env_seeds: Sequence[int] | None = None,
                 vectorised: bool = False):
        """``env_seeds``: the seed of each sub-env (default ``cfg.seed + i`` for ``cfg.num_envs`` envs; a
        population passes its members' seeds). ``vectorised``: CartPole, Acrobot and MountainCar (plain ids,
        no env_kwargs or wrappers) step as :mod:`dqnkit.envs.classic`'s NumPy-vectorised versions, which
        follow Gymnasium's envs bit for bit."""
        self.source, self.cfg = source, cfg
        self.atari = isinstance(source, str) and is_atari(source)
        self.env_seeds = [cfg.seed + i for i in range(cfg.num_envs)] if env_seeds is None else list(env_seeds)
        self.num_envs = len(self.env_seeds)
        self.classic = (vectorised and isinstance(source, str) and source in CLASSIC and not cfg.env_kwargs
                        and not cfg.env_wrapper)
        if self.classic:
            self.vec = make_classic_vector(source, self.num_envs)
            first = make_env(source)
            spaces_of = first
        else:
            self.vec = same_step_vector([lambda s=s: EpisodeRecorder(self.make_one(s)) for s in self.env_seeds])
            first = self.vec.envs[0]
            spaces_of = self.vec
        self.observation_space = self.vec.single_observation_space
        self.n_actions = int(self.vec.single_action_space.n)
        self.obs_shape, self.obs_dtype = obs_spec(self.observation_space)
        self.signature = spaces_signature(spaces_of)
        self.input_scale = input_scale(self.observation_space, cfg.policy_kwargs.get("normalize_images", True))
        # the space before one-hot encoding: the Python API encodes raw Discrete states the same way
        self.raw_observation_space = first.unwrapped.observation_space
        self.env_name = source if isinstance(source, str) else "this env"
        # action masks (dqnkit.envs.masks): known from the first reset; current_mask belongs to the current obs
        self.masked = False
        self.current_mask: np.ndarray | None = None

    def make_one(self, seed: int | None = None, render_mode: str | None = None, evaluation: bool = False) -> gym.Env:
        """One env of this run: ``evaluation`` gives the unclipped rewards and no life-loss signal (Atari)."""
        cfg = self.cfg
        if self.atari:
            env = make_atari_env(self.source, cfg, render_mode=render_mode, evaluation=evaluation)
            return with_mask_info(apply_wrappers(env, cfg.env_wrapper))
        return with_mask_info(make_env(self.source, seed=seed, render_mode=render_mode,
                                       env_kwargs=cfg.env_kwargs or None, wrappers=cfg.env_wrapper))

    def make_eval_env(self, render_mode: str | None = None) -> gym.Env:
        """A separate env for greedy evaluation (and videos): unclipped rewards, lives not terminal."""
        return self.make_one(render_mode=render_mode, evaluation=True)

    def reset(self) -> np.ndarray:
        """Reset every env with its seed (``env_seeds``)."""
        if self.classic:
            return self.vec.reset_members(np.asarray(self.env_seeds))
        obs, infos = self.vec.reset(seed=self.env_seeds)
        self.current_mask = vector_masks(infos, self.num_envs, self.n_actions, self.env_name)
        self.masked = self.current_mask is not None
        if self.masked:
            require_some_allowed(self.current_mask, self.env_name)
        return obs

    def step(self, actions: np.ndarray) -> VecStep:
        if self.classic:
            next_obs, reward, terminated, truncated, final = self.vec.step(actions)
            return VecStep(next_obs, final, reward, terminated, truncated, terminated | truncated, reward)
        next_obs, reward, terminated, truncated, infos = self.vec.step(actions)
        ended = terminated | truncated
        final = final_observations(next_obs, infos, ended) if ended.any() else next_obs
        final_mask = self._step_masks(infos, ended) if self.masked else None
        if not self.atari:
            return VecStep(next_obs, final, reward, terminated, truncated, ended, reward, final_mask)
        n = self.num_envs
        raw = step_info(infos, "raw_reward", np.nan, n)
        raw = np.where(np.isnan(raw), reward, raw)
        learn_terminated = terminated | step_info(infos, "life_loss", False, n).astype(bool)
        return VecStep(next_obs, final, reward, learn_terminated, truncated, ended, raw, final_mask)

    def _step_masks(self, infos: Mapping[str, Any], ended: np.ndarray) -> np.ndarray:
        """Set ``current_mask`` (the next obs's masks) and return the final obs's masks of this step."""
        current = vector_masks(infos, self.num_envs, self.n_actions, self.env_name)
        if current is None:
            current = np.ones((self.num_envs, self.n_actions), dtype=bool)
        require_some_allowed(current, self.env_name)
        self.current_mask = current
        return final_masks(infos, current, ended, self.n_actions, self.env_name)

    def encode(self, obs: Any) -> tuple[np.ndarray, bool]:
        """(a batch of network inputs, whether ``obs`` was one observation): raw ``Discrete`` states are one-hot
        encoded as in training; an observation of the training shape gets a batch axis."""
        arr = np.asarray(obs)
        raw = self.raw_observation_space
        shape = tuple(self.obs_shape)
        if isinstance(raw, gym.spaces.Discrete) and arr.dtype.kind in "iu":
            low, high = int(raw.start), int(raw.start) + int(raw.n) - 1
            if arr.size and (arr.min() < low or arr.max() > high):
                raise EnvError(f"state {arr.min() if arr.min() < low else arr.max()} is outside {self.env_name}'s "
                               f"observation space {raw}; pass a state index from {low} to {high}")
            return one_hot(np.atleast_1d(arr), int(raw.n), int(raw.start)), arr.ndim == 0
        if arr.shape == shape:
            return arr[None], True
        if arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
            return arr, False
        states = f", a state index from {int(raw.start)} to {int(raw.start) + int(raw.n) - 1}" \
            if isinstance(raw, gym.spaces.Discrete) else ""
        raise EnvError(f"observation of shape {arr.shape} does not fit {self.env_name}: pass one observation of shape "
                       f"{shape}{states} or a batch of shape (B, {', '.join(map(str, shape))})")

    def snapshot(self) -> list[dict[str, Any]]:
        """Each env's RNG state at the start of its episode and the actions taken since (JSON)."""
        if self.classic:
            return self.vec.snapshot()
        return [env.snapshot() for env in self.vec.envs]

    def restore(self, snapshots: list[dict[str, Any]]) -> np.ndarray:
        """Re-simulate every env to its snapshot; returns the stacked current observations."""
        if len(snapshots) != self.num_envs:
            raise ValueError(f"snapshot holds {len(snapshots)} envs, the vector env has {self.num_envs}")
        if self.classic:
            return self.vec.restore(snapshots)
        obs = np.stack([env.restore(snap) for env, snap in zip(self.vec.envs, snapshots)])
        if self.masked:
            self.current_mask = masks_of_infos([env.last_info for env in self.vec.envs], self.n_actions,
                                               self.env_name)
        return obs

    def close(self) -> None:
        self.vec.close()
