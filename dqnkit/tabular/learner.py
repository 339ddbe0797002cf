"""Tabular Q-learning: the baseline the DQN tutorials start from, for small discrete environments.

Watkins' Q-learning (Watkins & Dayan 1992; Sutton & Barto 2018, eq. 6.8), as in
Karagiannakos' "Deep Q Learning and Deep Q Networks" (AI Summer, 2018) and the "Deep Q-Networks (DQN)" tutorial notebook::

    Q[s, a] += lr * (r + gamma * (1 - terminated) * max_a' Q[s', a'] - Q[s, a])

with epsilon-greedy exploration. Deviations from the tutorials:

* bootstrapping stops only at *termination*; a truncated episode (time limit)
  still bootstraps from its final state (the tutorials treat every end as terminal);
* greedy ties during learning are broken at random (Karagiannakos adds decaying noise
  to the Q-row instead); :meth:`TabularQ.predict` breaks ties by lowest index;
* every random choice draws from the learner's own ``np.random.Generator``.

Exploration uses :class:`dqnkit.learner.explore.EpsilonSchedule`, in absolute units so a
resumed learner explores as an uninterrupted one would:
``exploration_schedule="multiplicative"`` (the notebook's, the default): episode ``k``
(0-based) uses ``eps = max(final, initial * exploration_episode_decay**k)``;
``"linear"``: from initial to final over ``exploration_linear_env_steps`` env steps;
``"exponential"``: ``final + (initial - final) * exp(-env_step / exploration_decay_env_steps)``.

Works for any env with ``Discrete`` observations and actions: ``GridWorld-v0``,
``FrozenLake-v1``, ``Taxi-v3``, ``CliffWalking-v1``; with ``bins`` also for ``Box`` observations
(``MountainCar-v0``), cut into equal-width cells by :class:`dqnkit.envs.discretize.DiscretizeObservation`.
:func:`train_tabular` (a training run written to a folder) lives in :mod:`dqnkit.tabular.run`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from safetensors.numpy import load_file, save

from dqnkit.envs.discretize import DiscretizeObservation
from dqnkit.envs.make import make_env
from dqnkit.envs.spaces import spaces_signature
from dqnkit.errors import CheckpointError, ConfigError, DqnkitError, EnvError
from dqnkit.envs.rollout import run_episodes
from dqnkit.learner.explore import EpsilonSchedule, epsilon_greedy_row

from dqnkit.runfolder import QTABLE_FILE, QTABLE_KEY, TABULAR_FILE, atomic_write, generator_state, set_generator_state

FORMAT = "dqnkit.tabular.learner"
FORMAT_VERSION = 1
# Episodes of an env without a time limit are cut after this many steps.
DEFAULT_MAX_EPISODE_STEPS = 1000


@dataclass(frozen=True)
class TabularConfig:
    """Hyperparameters of :class:`TabularQ`. Units: episodes, or none (rates, probabilities)."""

    learning_rate: float = 0.1
    """Step size of the Q-learning update (alpha), in (0, 1]."""
    gamma: float = 0.99
    """Discount factor, in [0, 1]."""
    exploration_schedule: str = "multiplicative"
    """"multiplicative" (per episode, as in the notebook), "linear" or "exponential" (per env step)."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start of training."""
    exploration_final_eps: float = 0.01
    """Lowest epsilon (the notebook: 0.01)."""
    exploration_episode_decay: float = 0.995
    """multiplicative: eps <- max(final, eps * this) after each episode (the notebook: 0.995)."""
    exploration_linear_env_steps: int = 10_000
    """linear: env steps over which epsilon falls from initial to final."""
    exploration_decay_env_steps: float = 1000.0
    """exponential: eps = final + (initial - final) * exp(-env_step / this)."""
    seed: int = 0
    """Seeds the learner's generator and the env's first reset (evaluation uses seed + 1)."""
    max_episode_steps: int | None = None
    """Cut episodes after this many env steps (a truncation), on top of any time limit the env has.
    None: the env's own limit, or 1000 steps for an env without one."""
    bins: int | list[int] | None = None
    """Box observations: equal-width bins per dimension (one count for all, or one each); the Q-table then has
    prod(bins) rows (:class:`dqnkit.envs.discretize.DiscretizeObservation`). None: Discrete observations only."""
    bounds: list | None = None
    """With ``bins``: ``[lo, hi]`` per dimension (None entries keep the space's bounds; needed where the space is
    unbounded). The learner stores the resolved bounds of every dimension, so a loaded run cuts the same cells."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"tabular {name}={getattr(self, name)!r} is invalid; use {rule}.")

        if not 0.0 < self.learning_rate <= 1.0:
            raise bad("learning_rate", "a value in (0, 1], e.g. 0.1")
        if not 0.0 <= self.gamma <= 1.0:
            raise bad("gamma", "a value in [0, 1], e.g. 0.99")
        if self.exploration_schedule not in ("multiplicative", "linear", "exponential"):
            raise bad("exploration_schedule", '"multiplicative", "linear" or "exponential"')
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "a probability in [0, 1]")
        if self.exploration_final_eps > self.exploration_initial_eps:
            raise bad("exploration_final_eps", f"a value <= exploration_initial_eps ({self.exploration_initial_eps})")
        if not 0.0 < self.exploration_episode_decay <= 1.0:
            raise bad("exploration_episode_decay", "a factor in (0, 1], e.g. 0.995")
        if int(self.exploration_linear_env_steps) < 1:
            raise bad("exploration_linear_env_steps", "a positive number of env steps")
        if not self.exploration_decay_env_steps > 0:
            raise bad("exploration_decay_env_steps", "a positive number of env steps")
        if self.max_episode_steps is not None and int(self.max_episode_steps) < 1:
            raise bad("max_episode_steps", "a positive number of steps, or None")
        counts = [self.bins] if isinstance(self.bins, int) else self.bins
        if counts is not None and not (isinstance(counts, (list, tuple)) and counts
                                       and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in counts)):
            raise bad("bins", "a positive bin count (20) or one per dimension ([20, 20])")
        if self.bounds is not None and self.bins is None:
            raise bad("bounds", "bounds only together with bins")

    def schedule(self) -> EpsilonSchedule:
        return EpsilonSchedule(
            self.exploration_schedule,
            self.exploration_initial_eps,
            self.exploration_final_eps,
            decay_env_steps=self.exploration_decay_env_steps,
            episode_decay=self.exploration_episode_decay,
            linear_env_steps=self.exploration_linear_env_steps,
        )


class EpisodeRecord(NamedTuple):
    """One finished training episode (a row of ``episodes.csv``)."""

    env_step: int  # env steps taken since training began, this episode included
    episode: int  # episodes finished since training began, this one included (1-based)
    episode_return: float  # undiscounted sum of rewards
    length: int  # env steps in this episode
    epsilon: float  # exploration rate of the episode's last step


EnvSource = str | Callable[[], gym.Env]


class TabularQ:
    """A Q-table learner for an environment with ``Discrete`` observations and actions.

    Args:
        env: Gymnasium id (e.g. ``"GridWorld-v0"``) or zero-argument callable returning the env.
            Only ids can be restored by :meth:`load` without passing the env again.
        env_kwargs: keyword arguments for ``gymnasium.make`` (ids only), e.g. ``{"is_slippery": False}``.
        **config: fields of :class:`TabularConfig` (``learning_rate``, ``gamma``, ``seed``, ...).
    """

    def __init__(self, env: EnvSource = "GridWorld-v0", *, env_kwargs: Mapping[str, Any] | None = None, **config: Any):
        known = {f.name for f in fields(TabularConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"unknown TabularQ option(s) {unknown}; use only {sorted(known)}.")
        self.config = TabularConfig(**config)
        self.env_id: str | None = env if isinstance(env, str) else None
        self.env_kwargs: dict[str, Any] = dict(env_kwargs or {})
        self._env_source = env
        self.discretizer = None  # set by _make when config.bins cuts a Box into cells
        self.env = self._make(env)
        if self.config.bins is not None:  # keep the resolved cells: eval, load and policy cut the same ones
            self.config = replace(self.config, **self.discretizer.describe())
        self.n_states = int(self.env.observation_space.n)
        self.n_actions = int(self.env.action_space.n)
        self._obs_start = int(self.env.observation_space.start)
        self.q_table = np.zeros((self.n_states, self.n_actions), dtype=np.float64)
        self.rng = np.random.default_rng(self.config.seed)
        self.epsilon_schedule = self.config.schedule()
        self.env_steps = 0
        self.episodes = 0
        self._env_seeded = False  # the env's first reset gets seed=config.seed

    # ---------------------------------------------------------------- setup
    def _make(self, source: EnvSource) -> gym.Env:
        env = make_env(source, env_kwargs=self.env_kwargs or None, one_hot=False)
        name = self.env_id or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__)
        if self.config.bins is not None:
            try:
                env = DiscretizeObservation(env, self.config.bins, self.config.bounds)
            except DqnkitError:
                env.close()
                raise
            self.discretizer = env.discretizer
        if not isinstance(env.observation_space, spaces.Discrete):
            env.close()
            raise EnvError(
                f"{name} has a {type(env.observation_space).__name__} observation space "
                f"({env.observation_space}); TabularQ needs a Discrete observation space: cut a Box into cells with "
                "--bins N (TabularQ(..., bins=N)), or use dqnkit's DQN."
            )
        limit = self.config.max_episode_steps
        has_limit = env.spec is not None and env.spec.max_episode_steps is not None
        if limit is not None or not has_limit:
            env = gym.wrappers.TimeLimit(env, max_episode_steps=int(limit or DEFAULT_MAX_EPISODE_STEPS))
        return env

    def _state(self, obs: Any) -> int:
        return int(obs) - self._obs_start

    # --------------------------------------------------------------- acting
    def q_values(self, state: int) -> np.ndarray:
        """The Q-row of ``state`` (a copy), one value per action."""
        return self.q_table[int(state)].copy()

    def predict(self, state: int) -> int:
        """The greedy action in ``state`` (ties: lowest action index)."""
        return int(np.argmax(self.q_table[int(state)]))

    # ------------------------------------------------------------- learning
    def learn(self, episodes: int) -> list[EpisodeRecord]:
        """Runs ``episodes`` training episodes, continuing the counters and the schedule."""
        if int(episodes) < 1:
            raise ConfigError(f"episodes={episodes} must be at least 1; pass a positive number of episodes.")
        cfg, q, env, schedule = self.config, self.q_table, self.env, self.epsilon_schedule
        records: list[EpisodeRecord] = []
        for _ in range(int(episodes)):
            if self._env_seeded:
                obs, _ = env.reset()
            else:
                obs, _ = env.reset(seed=cfg.seed)
                self._env_seeded = True
            s = self._state(obs)
            ep_return, length = 0.0, 0
            while True:
                epsilon = schedule.value(self.env_steps + length, self.episodes)
                a = epsilon_greedy_row(q[s], epsilon, self.rng)
                obs, r, terminated, truncated, _ = env.step(a)
                s_next = self._state(obs)
                bootstrap = 0.0 if terminated else cfg.gamma * q[s_next].max()
                q[s, a] += cfg.learning_rate * (float(r) + bootstrap - q[s, a])
                ep_return += float(r)
                length += 1
                s = s_next
                if terminated or truncated:
                    break
            self.env_steps += length
            self.episodes += 1
            records.append(EpisodeRecord(self.env_steps, self.episodes, ep_return, length, epsilon))
        return records

    # ----------------------------------------------------------- evaluation
    def evaluate(self, episodes: int = 10, *, seed: int | None = None) -> dict[str, Any]:
        """Greedy episodes on separate envs, episode ``i`` reset with ``seed + i`` (default seed: ``config.seed + 1``).

        Returns ``{"mean_return", "std_return", "episodes", "returns", "lengths", "mean_length"}``.
        """
        if int(episodes) < 1:
            raise ConfigError(f"episodes={episodes} must be at least 1; pass a positive number of episodes.")

        def greedy(obs: np.ndarray) -> np.ndarray:
            return self.q_table[np.asarray(obs, dtype=np.int64) - self._obs_start].argmax(axis=1)

        first = self.config.seed + 1 if seed is None else int(seed)
        return run_episodes(greedy, lambda: self._make(self._env_source), int(episodes), seed=first)

    # --------------------------------------------------------- persistence
    def _meta(self) -> dict[str, Any]:
        env_rng = generator_state(self.env.unwrapped.np_random) if self._env_seeded else None
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": asdict(self.config),
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "spaces": spaces_signature(self.env),
            "counters": {"env_steps": self.env_steps, "episodes": self.episodes},
            "rng_state": generator_state(self.rng),
            "env_rng_state": env_rng,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Writes ``qtable.safetensors`` and ``tabular.json`` (last) into directory ``path``."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / QTABLE_FILE, save({QTABLE_KEY: np.ascontiguousarray(self.q_table)}))
        atomic_write(out / TABULAR_FILE, json.dumps(self._meta(), indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike, *, env: EnvSource | None = None) -> TabularQ:
        """Restores a learner saved by :meth:`save` (Q-table, config, counters, RNG states).

        ``env`` is needed only when the learner was built from a callable.
        """
        folder = Path(path)
        meta_path, q_path = folder / TABULAR_FILE, folder / QTABLE_FILE
        for p in (meta_path, q_path):
            if not p.is_file():
                raise CheckpointError(f"{p} is missing; pass a folder written by TabularQ.save or train_tabular.")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{meta_path} is not valid JSON ({exc}); re-save the learner.") from exc
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{meta_path} has format {meta.get('format')!r} v{meta.get('version')!r}, expected {FORMAT!r} "
                f"v{FORMAT_VERSION}; load it with the dqnkit version that wrote it."
            )
        source = env if env is not None else meta["env_id"]
        if source is None:
            raise CheckpointError(
                f"{folder} was saved from an env callable; pass it again: TabularQ.load(path, env=make_my_env)."
            )
        env_kwargs = meta["env_kwargs"] if isinstance(source, str) else None
        learner = cls(source, env_kwargs=env_kwargs, **meta["config"])
        saved = json.loads(json.dumps(meta["spaces"]))
        current = json.loads(json.dumps(spaces_signature(learner.env)))
        if saved != current:
            raise CheckpointError(
                f"{folder} was saved for spaces {saved}, but this env has {current}; load it with the env it was "
                "trained on."
            )
        table = load_file(str(q_path)).get(QTABLE_KEY)
        if table is None or table.shape != learner.q_table.shape:
            raise CheckpointError(
                f"{q_path} holds no q_table of shape {learner.q_table.shape}; re-save the learner."
            )
        learner.q_table[:] = table
        learner.env_steps = int(meta["counters"]["env_steps"])
        learner.episodes = int(meta["counters"]["episodes"])
        set_generator_state(learner.rng, meta["rng_state"])
        if meta.get("env_rng_state") is not None:
            # Resume the env's random stream too, so save + load + learn == learn without a break.
            set_generator_state(learner.env.unwrapped.np_random, meta["env_rng_state"])
            learner._env_seeded = True
        return learner

    def close(self) -> None:
        self.env.close()
