"""Environments: building and checking envs for dqnkit, and the seeds' grid world.

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
from dqnkit.envs.make import (  # noqa: E402
    OneHotObservation,
    ZeroBasedActions,
    check_discrete,
    final_observations,
    input_scale,
    make_env,
    make_vec_env,
    obs_spec,
    spaces_signature,
)

__all__ = [
    "GRIDWORLD_ID",
    "GridWorldEnv",
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
