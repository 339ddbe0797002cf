"""Environments: building and checking envs (make, spaces, wrappers), vector envs and what a training step
returns (vector), Atari preprocessing (atari), the tutorials' grid world (gridworld), and exact env state
for resume (recorder).

Importing this package registers ``GridWorld-v0`` with Gymnasium (once).
"""
from __future__ import annotations

import gymnasium as gym

GRIDWORLD_ID = "GridWorld-v0"

if GRIDWORLD_ID not in gym.registry:
    gym.register(
        id=GRIDWORLD_ID,
        entry_point="dqnkit.envs.gridworld:GridWorldEnv",
        max_episode_steps=100,
    )

from dqnkit.envs.gridworld import GridWorldEnv  # noqa: E402
from dqnkit.envs.make import make_env  # noqa: E402
from dqnkit.envs.spaces import check_discrete, input_scale, obs_spec, spaces_signature  # noqa: E402
from dqnkit.envs.vector import final_observations, make_vec_env  # noqa: E402
from dqnkit.envs.wrappers import OneHotObservation, ZeroBasedActions, apply_wrappers, one_hot  # noqa: E402

__all__ = [
    "GRIDWORLD_ID",
    "GridWorldEnv",
    "OneHotObservation",
    "ZeroBasedActions",
    "apply_wrappers",
    "check_discrete",
    "final_observations",
    "input_scale",
    "make_env",
    "make_vec_env",
    "obs_spec",
    "one_hot",
    "spaces_signature",
]
