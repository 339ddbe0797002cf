"""Tabular Q-learning: the seeds' baseline for small discrete environments.

Watkins' Q-learning (Watkins & Dayan 1992; Sutton & Barto 2018, eq. 6.8), as in
seeds 001 and 003::

    Q[s, a] += lr * (r + gamma * (1 - terminated) * max_a' Q[s', a'] - Q[s, a])

with epsilon-greedy exploration. Deviations from the seeds:

* bootstrapping stops only at *termination*; a truncated episode (time limit)
  still bootstraps from its final state (the seeds treat every end as terminal);
* greedy ties during learning are broken at random (seed 001 adds decaying noise
  to the Q-row instead); :meth:`TabularQ.predict` breaks ties by lowest index;
* every random choice draws from the learner's own ``np.random.Generator``.

Exploration uses :class:`dqnkit.explore.EpsilonSchedule`, in absolute units so a
resumed learner explores as an uninterrupted one would:
``exploration_schedule="multiplicative"`` (seed 003, the default): episode ``k``
(0-based) uses ``eps = max(final, initial * exploration_episode_decay**k)``;
``"linear"``: from initial to final over ``exploration_linear_env_steps`` env steps;
``"exponential"``: ``final + (initial - final) * exp(-env_step / exploration_decay_env_steps)``.

Works for any env with ``Discrete`` observations and actions: ``GridWorld-v0``,
``FrozenLake-v1``, ``Taxi-v3``, ``CliffWalking-v1``. :func:`train_tabular` (a training
run written to a folder) lives in :mod:`dqnkit.tabular_run` and is re-exported here.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from safetensors.numpy import load_file, save_file

from dqnkit.envs.make import make_env, spaces_signature
from dqnkit.errors import CheckpointError, ConfigError, EnvError
from dqnkit.explore import EpsilonSchedule

# The run-folder writer lives in dqnkit.tabular_run; re-exported here so
# ``from dqnkit.tabular import train_tabular`` keeps working.
from dqnkit.tabular_run import _atomic_write_text, train_tabular  # noqa: F401

QTABLE_FILE = "qtable.safetensors"
META_FILE = "tabular.json"
FORMAT = "dqnkit.tabular"
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
    """"multiplicative" (per episode, seed 003), "linear" or "exponential" (per env step)."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start of training."""
    exploration_final_eps: float = 0.01
    """Lowest epsilon (seed 003: 0.01)."""
    exploration_episode_decay: float = 0.995
    """multiplicative: eps <- max(final, eps * this) after each episode (seed 003: 0.995)."""
    exploration_linear_env_steps: int = 10_000
    """linear: env steps over which epsilon falls from initial to final."""
    exploration_decay_env_steps: float = 1000.0
    """exponential: eps = final + (initial - final) * exp(-env_step / this)."""
    seed: int = 0
    """Seeds the learner's generator and the env's first reset (evaluation uses seed + 1)."""
    max_episode_steps: int | None = None
    """Cut episodes after this many env steps (a truncation), on top of any time limit the env has.
    None: the env's own limit, or 1000 steps for an env without one."""

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


class GreedyPath(NamedTuple):
    """A greedy rollout: ``states[0]`` is the start, ``states[i + 1]`` follows ``actions[i]``."""

    states: list[int]
    actions: list[int]
    rewards: list[float]
    terminated: bool
    truncated: bool

    @property
    def total_return(self) -> float:
        return float(sum(self.rewards))


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
        self.env = self._make(env)
        self.n_states = int(self.env.observation_space.n)
        self.n_actions = int(self.env.action_space.n)
        self._obs_start = int(self.env.observation_space.start)
        self.q_table = np.zeros((self.n_states, self.n_actions), dtype=np.float64)
        self.rng = np.random.default_rng(self.config.seed)
        self.epsilon_schedule = self.config.schedule()
        self.env_steps = 0
        self.episodes = 0
        self._env_seeded = False  # the env's first reset gets seed=config.seed
        self._eval_env: gym.Env | None = None

    # ---------------------------------------------------------------- setup
    def _make(self, source: EnvSource) -> gym.Env:
        env = make_env(source, env_kwargs=self.env_kwargs or None, one_hot=False)
        name = self.env_id or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__)
        if not isinstance(env.observation_space, spaces.Discrete):
            env.close()
            raise EnvError(
                f"{name} has a {type(env.observation_space).__name__} observation space "
                f"({env.observation_space}); TabularQ needs a Discrete observation space. Use dqnkit's DQN for "
                "continuous observations, or discretise them with a wrapper."
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

    def _explore_action(self, state: int, epsilon: float) -> int:
        if self.rng.random() < epsilon:
            return int(self.rng.integers(self.n_actions))
        row = self.q_table[state]
        best = np.flatnonzero(row == row.max())
        return int(best[0]) if best.size == 1 else int(best[self.rng.integers(best.size)])

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
                a = self._explore_action(s, epsilon)
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
    def _eval(self) -> gym.Env:
        if self._eval_env is None:
            self._eval_env = self._make(self._env_source)
        return self._eval_env

    def evaluate(self, episodes: int = 10, *, seed: int | None = None) -> dict[str, Any]:
        """Greedy episodes on a separate env; the first reset uses ``seed`` (default ``config.seed + 1``).

        Returns ``{"mean_return", "std_return", "episodes", "returns", "lengths"}``.
        """
        if int(episodes) < 1:
            raise ConfigError(f"episodes={episodes} must be at least 1; pass a positive number of episodes.")
        env = self._eval()
        returns, lengths = [], []
        first_seed = self.config.seed + 1 if seed is None else int(seed)
        for i in range(int(episodes)):
            obs, _ = env.reset(seed=first_seed if i == 0 else None)
            total, length, done = 0.0, 0, False
            while not done:
                obs, r, terminated, truncated, _ = env.step(self.predict(self._state(obs)))
                total += float(r)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
        arr = np.asarray(returns, dtype=np.float64)
        return {
            "mean_return": float(arr.mean()),
            "std_return": float(arr.std()),
            "episodes": int(episodes),
            "returns": returns,
            "lengths": lengths,
        }

    def greedy_path(
        self, start_state: int | None = None, max_steps: int = 100, *, seed: int | None = None
    ) -> GreedyPath:
        """Follows the greedy policy from ``start_state`` (default: the env's reset state).

        Setting the start needs a toy-text style env with a settable state ``s`` (GridWorld,
        FrozenLake, Taxi, CliffWalking). Stops at termination, truncation or ``max_steps``.
        """
        env = self._eval()
        obs, _ = env.reset(seed=self.config.seed + 1 if seed is None else seed)
        if start_state is not None and int(start_state) != self._state(obs):
            base = env.unwrapped
            if not hasattr(base, "s"):
                raise EnvError(
                    f"cannot start {type(base).__name__} in state {start_state}: it has no settable state 's'; "
                    "call greedy_path(start_state=None) to start from the reset state."
                )
            if not 0 <= int(start_state) < self.n_states:
                raise ConfigError(f"start_state={start_state} is outside 0..{self.n_states - 1}; pick a valid state.")
            base.s = int(start_state) + self._obs_start
            obs = base.s
        states, actions, rewards = [self._state(obs)], [], []
        terminated = truncated = False
        for _ in range(int(max_steps)):
            a = self.predict(states[-1])
            obs, r, terminated, truncated, _ = env.step(a)
            states.append(self._state(obs))
            actions.append(a)
            rewards.append(float(r))
            if terminated or truncated:
                break
        else:
            truncated = True
        return GreedyPath(states, actions, rewards, bool(terminated), bool(truncated and not terminated))

    # --------------------------------------------------------- persistence
    def _meta(self) -> dict[str, Any]:
        env_rng = self.env.unwrapped.np_random.bit_generator.state if self._env_seeded else None
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": asdict(self.config),
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "spaces": spaces_signature(self.env),
            "counters": {"env_steps": self.env_steps, "episodes": self.episodes},
            "rng_state": self.rng.bit_generator.state,
            "env_rng_state": env_rng,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Writes ``qtable.safetensors`` and ``tabular.json`` (last) into directory ``path``."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (QTABLE_FILE + ".tmp")
        save_file({"q_table": np.ascontiguousarray(self.q_table)}, str(tmp))
        os.replace(tmp, out / QTABLE_FILE)
        _atomic_write_text(out / META_FILE, json.dumps(self._meta(), indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike, *, env: EnvSource | None = None) -> TabularQ:
        """Restores a learner saved by :meth:`save` (Q-table, config, counters, RNG states).

        ``env`` is needed only when the learner was built from a callable.
        """
        folder = Path(path)
        meta_path, q_path = folder / META_FILE, folder / QTABLE_FILE
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
        table = load_file(str(q_path)).get("q_table")
        if table is None or table.shape != learner.q_table.shape:
            raise CheckpointError(
                f"{q_path} holds no q_table of shape {learner.q_table.shape}; re-save the learner."
            )
        learner.q_table[:] = table
        learner.env_steps = int(meta["counters"]["env_steps"])
        learner.episodes = int(meta["counters"]["episodes"])
        learner.rng.bit_generator.state = meta["rng_state"]
        if meta.get("env_rng_state") is not None:
            # Resume the env's random stream too, so save + load + learn == learn without a break.
            learner.env.unwrapped.np_random.bit_generator.state = meta["env_rng_state"]
            learner._env_seeded = True
        return learner

    def close(self) -> None:
        self.env.close()
        if self._eval_env is not None:
            self._eval_env.close()
