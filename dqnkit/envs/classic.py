"""CartPole-v1, Acrobot-v1 and MountainCar-v0 as NumPy-vectorised environments with one RNG per sub-env.

Each sub-env follows Gymnasium's own env step for step: the same float64 arithmetic in the same order,
the same ``reset`` draws from its own ``np.random.Generator`` (seeded as ``env.reset(seed=s)`` seeds
Gymnasium's, then continued on autoreset), the same time limit (the registered ``max_episode_steps``)
and the same float32 observations. ``tests/envs/test_classic.py`` checks trajectories against
``gymnasium.make``. What differs from Gymnasium's own vector versions (``CartPoleVectorEnv``): one
generator per sub-env instead of one shared, and **same-step autoreset** (see ``dqnkit.envs.vector``).

Every sub-env also keeps what :class:`dqnkit.envs.recorder.EpisodeRecorder` keeps (the RNG state or
seed its episode started from and the actions since), so :meth:`snapshot` is the same JSON a vector
of Gymnasium envs would give, and :meth:`restore` replays it exactly.
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from dqnkit.runfolder import generator_state, set_generator_state

SUPPORTED = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")


class ClassicVectorEnv:
    """``num_envs`` copies of one classic-control env, stepped together. ``step`` returns
    ``(next_obs, reward, terminated, truncated, final_obs)``: ``next_obs`` holds the reset observation where an
    episode ended (same-step autoreset) and ``final_obs`` the observation it ended in (``next_obs`` elsewhere)."""

    env_id: str = ""
    max_episode_steps: int = 0
    state_width: int = 0

    def __init__(self, num_envs: int):
        self.num_envs = int(num_envs)
        spec_env = gym.make(self.env_id)
        self.single_observation_space = spec_env.observation_space
        self.single_action_space = spec_env.action_space
        spec_env.close()
        self.state = np.zeros((self.num_envs, self.state_width), dtype=np.float64)
        self.elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self.rngs = [np.random.default_rng(0) for _ in range(self.num_envs)]
        self.starts: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self.actions: list[list[int]] = [[] for _ in range(self.num_envs)]

    # --- per-env reset (Gymnasium's draws, from that env's generator) ---------------------
    def _draw_reset(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _observe_reset(self, i: int) -> np.ndarray:
        return self._observe(np.array([i]))[0]

    def _reset_one(self, i: int, seed: int | None) -> np.ndarray:
        if seed is not None:
            self.rngs[i] = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
            self.starts[i] = {"seed": int(seed)}
        else:
            self.starts[i] = {"rng": generator_state(self.rngs[i])}
        self.actions[i] = []
        self.state[i] = self._draw_reset(i)
        self.elapsed[i] = 0
        return self._observe_reset(i)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env; sub-env ``i`` is seeded with ``seed + i`` (Gymnasium's rule for an int seed)."""
        return np.stack([self._reset_one(i, None if seed is None else seed + i) for i in range(self.num_envs)])

    def reset_members(self, seeds: np.ndarray) -> np.ndarray:
        """Reset every env with its own seed (``seeds[i]`` for sub-env ``i``)."""
        return np.stack([self._reset_one(i, int(s)) for i, s in enumerate(seeds)])

    # --- stepping ------------------------------------------------------------------------
    def _dynamics(self, actions: np.ndarray) -> np.ndarray:
        """Advance ``self.state`` for all envs; return the termination flags."""
        raise NotImplementedError

    def _reward(self, terminated: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        for i, a in enumerate(actions.tolist()):
            self.actions[i].append(a)
        terminated = self._dynamics(actions)
        reward = self._reward(terminated)
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        obs = self._observe(np.arange(self.num_envs))
        final = obs
        ended = np.flatnonzero(terminated | truncated)
        if ended.size:
            final = obs.copy()
            for i in ended.tolist():
                obs[i] = self._reset_one(i, None)
        return obs, reward, terminated, truncated, final

    # --- exact state as JSON ------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Per env ``{"start": ..., "actions": [...]}``, as :meth:`EpisodeRecorder.snapshot` writes it."""
        return [{"start": dict(s), "actions": list(a)} for s, a in zip(self.starts, self.actions)]

    def restore(self, snapshots: list[dict[str, Any]]) -> np.ndarray:
        """Re-simulate every env to its snapshot (the inverse of :meth:`snapshot`); returns the observations."""
        if len(snapshots) != self.num_envs:
            raise ValueError(f"snapshot holds {len(snapshots)} envs, this vector env has {self.num_envs}")
        obs = np.zeros((self.num_envs, *self.single_observation_space.shape), dtype=np.float32)
        for i, snap in enumerate(snapshots):
            start = snap["start"]
            if "seed" in start:
                obs[i] = self._reset_one(i, start["seed"])
            else:
                set_generator_state(self.rngs[i], start["rng"])
                obs[i] = self._reset_one(i, None)
            for a in snap["actions"]:
                obs[i] = self._step_one(i, int(a))
        return obs

    _row_arrays: tuple[str, ...] = ("state",)  # per-env arrays that _dynamics reads and writes

    def _step_one(self, i: int, action: int) -> np.ndarray:
        """Advance env ``i`` alone (restore only; a snapshot never holds an episode end)."""
        full = {name: getattr(self, name) for name in self._row_arrays}
        for name, arr in full.items():
            setattr(self, name, arr[i:i + 1].copy())
        self._dynamics(np.array([action], dtype=np.int64))
        for name, arr in full.items():
            arr[i] = getattr(self, name)[0]
            setattr(self, name, arr)
        self.elapsed[i] += 1
        self.actions[i].append(action)
        return self._observe(np.array([i]))[0]

    def close(self) -> None:
        pass


class CartPoleVector(ClassicVectorEnv):
    """``gymnasium.envs.classic_control.CartPoleEnv`` (Euler integrator), time limit 500."""

    env_id, max_episode_steps, state_width = "CartPole-v1", 500, 4
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass = masspole + masscart
    polemass_length = masspole * length
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def _draw_reset(self, i: int) -> np.ndarray:
        return self.rngs[i].uniform(low=-0.05, high=0.05, size=(4,))

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        return self.state[rows].astype(np.float32)

    def _dynamics(self, actions: np.ndarray) -> np.ndarray:
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        self.state = np.stack((x, x_dot, theta, theta_dot), axis=1)
        return ((x < -self.x_threshold) | (x > self.x_threshold)
                | (theta < -self.theta_threshold_radians) | (theta > self.theta_threshold_radians))

    def _reward(self, terminated: np.ndarray) -> np.ndarray:
        return np.ones(self.num_envs)  # 1 also on the terminating step (Gymnasium's default reward)


class MountainCarVector(ClassicVectorEnv):
    """``gymnasium.envs.classic_control.MountainCarEnv``, time limit 200."""

    env_id, max_episode_steps, state_width = "MountainCar-v0", 200, 2
    min_position, max_position, max_speed, goal_position, goal_velocity = -1.2, 0.6, 0.07, 0.5, 0.0
    force, gravity = 0.001, 0.0025

    def _draw_reset(self, i: int) -> np.ndarray:
        return np.array([self.rngs[i].uniform(low=-0.6, high=-0.4), 0])

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        return self.state[rows].astype(np.float32)

    def _dynamics(self, actions: np.ndarray) -> np.ndarray:
        position, velocity = self.state[:, 0].copy(), self.state[:, 1].copy()
        velocity += (actions - 1) * self.force + np.cos(3 * position) * (-self.gravity)
        velocity = np.clip(velocity, -self.max_speed, self.max_speed)
        position += velocity
        position = np.clip(position, self.min_position, self.max_position)
        velocity = np.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        self.state = np.stack((position, velocity), axis=1)
        return (position >= self.goal_position) & (velocity >= self.goal_velocity)

    def _reward(self, terminated: np.ndarray) -> np.ndarray:
        return np.full(self.num_envs, -1.0)


class AcrobotVector(ClassicVectorEnv):
    """``gymnasium.envs.classic_control.AcrobotEnv`` ("book" dynamics, RK4 over dt = 0.2), time limit 500."""

    env_id, max_episode_steps, state_width = "Acrobot-v1", 500, 4
    dt = 0.2
    m1 = m2 = 1.0
    l1 = 1.0
    lc1 = lc2 = 0.5
    moi = 1.0
    max_vel_1, max_vel_2 = 4 * math.pi, 9 * math.pi
    torques = np.array([-1.0, 0.0, 1.0])

    _row_arrays = ("state", "fresh")

    def __init__(self, num_envs: int):
        super().__init__(num_envs)
        # Gymnasium keeps the state float32 right after a reset (float64 after a step): observations of a
        # fresh state are computed in float32, as there.
        self.fresh = np.zeros(self.num_envs, dtype=bool)

    def _draw_reset(self, i: int) -> np.ndarray:
        self.fresh[i] = True
        return self.rngs[i].uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        s = self.state[rows]
        obs = np.stack([np.cos(s[:, 0]), np.sin(s[:, 0]), np.cos(s[:, 1]), np.sin(s[:, 1]), s[:, 2], s[:, 3]],
                       axis=1).astype(np.float32)
        fresh = self.fresh[rows]
        if fresh.any():
            f = s[fresh].astype(np.float32)
            obs[fresh] = np.stack([np.cos(f[:, 0]), np.sin(f[:, 0]), np.cos(f[:, 1]), np.sin(f[:, 1]),
                                   f[:, 2], f[:, 3]], axis=1)
        return obs

    def _dsdt(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        m1, m2, l1, lc1, lc2, i1, i2, g = self.m1, self.m2, self.l1, self.lc1, self.lc2, self.moi, self.moi, 9.8
        theta1, theta2, dtheta1, dtheta2 = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
        pi = math.pi
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * np.cos(theta2)) + i1 + i2
        d2 = m2 * (lc2**2 + l1 * lc2 * np.cos(theta2)) + i2
        phi2 = m2 * lc2 * g * np.cos(theta1 + theta2 - pi / 2.0)
        phi1 = (-m2 * l1 * lc2 * dtheta2**2 * np.sin(theta2)
                - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * np.sin(theta2)
                + (m1 * lc1 + m2 * l1) * g * np.cos(theta1 - pi / 2)
                + phi2)
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * np.sin(theta2) - phi2) / (
            m2 * lc2**2 + i2 - d2**2 / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return np.stack((dtheta1, dtheta2, ddtheta1, ddtheta2, np.zeros_like(a)), axis=1)

    def _dynamics(self, actions: np.ndarray) -> np.ndarray:
        torque = self.torques[actions]
        y0 = np.concatenate((self.state, torque[:, None]), axis=1)  # float64, like np.append upcasts
        dt = self.dt
        dt2 = dt / 2.0
        k1 = self._dsdt(y0[:, :4], y0[:, 4])
        y = y0 + dt2 * k1
        k2 = self._dsdt(y[:, :4], y[:, 4])
        y = y0 + dt2 * k2
        k3 = self._dsdt(y[:, :4], y[:, 4])
        y = y0 + dt * k3
        k4 = self._dsdt(y[:, :4], y[:, 4])
        ns = (y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4))[:, :4]
        for col in (0, 1):  # wrap to [-pi, pi], as gymnasium's wrap() loops
            diff = 2 * math.pi
            while (ns[:, col] > math.pi).any():
                ns[:, col] = np.where(ns[:, col] > math.pi, ns[:, col] - diff, ns[:, col])
            while (ns[:, col] < -math.pi).any():
                ns[:, col] = np.where(ns[:, col] < -math.pi, ns[:, col] + diff, ns[:, col])
        ns[:, 2] = np.minimum(np.maximum(ns[:, 2], -self.max_vel_1), self.max_vel_1)
        ns[:, 3] = np.minimum(np.maximum(ns[:, 3], -self.max_vel_2), self.max_vel_2)
        self.state = ns
        self.fresh[:] = False
        return -np.cos(ns[:, 0]) - np.cos(ns[:, 1] + ns[:, 0]) > 1.0

    def _reward(self, terminated: np.ndarray) -> np.ndarray:
        return np.where(terminated, 0.0, -1.0)


def make_classic_vector(env_id: str, num_envs: int) -> ClassicVectorEnv:
    """The NumPy-vectorised version of ``env_id`` (one of :data:`SUPPORTED`)."""
    classes = {"CartPole-v1": CartPoleVector, "Acrobot-v1": AcrobotVector, "MountainCar-v0": MountainCarVector}
    if env_id not in classes:
        raise ValueError(f"{env_id} has no NumPy-vectorised version; those are {', '.join(SUPPORTED)}")
    return classes[env_id](num_envs)
