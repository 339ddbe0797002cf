"""Whole episodes of a policy on separate envs (greedy evaluation), run in lockstep: one policy call per step.

Episode ``i`` is reset with seed ``seed + i``, so successive evaluations of a run, and evaluations of
different runs (DQN or tabular), face the same initial states.
"""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]


def run_episodes(policy: Policy, make_env: Callable[[], gym.Env], episodes: int, *, seed: int,
                 max_parallel: int = 16) -> dict:
    """Play ``episodes`` full episodes; ``policy`` maps a (k, *obs) batch to k actions.

    Returns ``mean_return``, ``std_return`` (population std), ``episodes``, ``returns``, ``lengths`` (env steps
    per episode) and ``mean_length``."""
    returns: list[float] = []
    lengths: list[int] = []
    envs = [make_env() for _ in range(min(max_parallel, episodes))]
    try:
        next_episode = 0
        while next_episode < episodes:
            k = min(len(envs), episodes - next_episode)
            obs = np.stack([envs[i].reset(seed=seed + next_episode + i)[0] for i in range(k)])
            ret = np.zeros(k)
            length = np.zeros(k, dtype=np.int64)
            alive = np.ones(k, dtype=bool)
            while alive.any():
                idx = np.flatnonzero(alive)
                actions = policy(obs[idx])
                for j, a in zip(idx, actions):
                    o, r, term, trunc, _ = envs[j].step(a)
                    obs[j] = o
                    ret[j] += float(r)
                    length[j] += 1
                    if term or trunc:
                        alive[j] = False
            returns += ret.tolist()
            lengths += length.tolist()
            next_episode += k
    finally:
        for env in envs:
            env.close()
    arr = np.asarray(returns, dtype=np.float64)
    return {"mean_return": float(arr.mean()), "std_return": float(arr.std()), "episodes": len(returns),
            "returns": [float(r) for r in returns], "lengths": [int(x) for x in lengths],
            "mean_length": float(np.mean(lengths))}
