"""Exact env state for resumable runs, by re-simulation instead of pickling.

A Gymnasium env's state is opaque (physics objects, C handles) and pickling it is both
fragile and unsafe to load. Its future is, however, a function of two things we can store
as JSON: the state of its ``np_random`` generator when the current episode was reset,
and the actions taken since. :class:`EpisodeRecorder` remembers both; ``restore`` rebuilds
the same env state in a fresh process by resetting from that RNG state and replaying the
actions. Envs whose dynamics draw from another RNG than ``np_random`` are not covered.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dqnkit.runfolder import generator_state, set_generator_state


class EpisodeRecorder(gym.Wrapper):
    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.episode_start: dict[str, Any] = {}
        self.episode_actions: list[int] = []
        self.last_info: dict = {}  # of the last reset or step: an action mask is read back from it after restore

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.episode_start = {"seed": int(seed)}
        else:
            self.episode_start = {"rng": generator_state(self.unwrapped.np_random)}
        if options:
            self.episode_start["options"] = options
        self.episode_actions = []
        obs, self.last_info = self.env.reset(seed=seed, options=options)
        return obs, self.last_info

    def step(self, action):
        self.episode_actions.append(int(action))
        out = self.env.step(action)
        self.last_info = out[4]
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"start": self.episode_start, "actions": list(self.episode_actions)}

    def restore(self, snapshot: dict[str, Any]) -> np.ndarray:
        """Rebuild the env state of ``snapshot``; returns the current observation."""
        start = snapshot["start"]
        options = start.get("options")
        if "seed" in start:
            obs, _ = self.reset(seed=start["seed"], options=options)
        else:
            self.env.reset(seed=0)  # creates np_random if needed; its state is overwritten next
            set_generator_state(self.unwrapped.np_random, start["rng"])
            obs, _ = self.reset(options=options)
        for action in snapshot["actions"]:
            obs, *_ = self.step(action)
        return obs
