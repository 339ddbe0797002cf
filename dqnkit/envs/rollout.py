"""Whole episodes of a policy on separate envs (greedy evaluation), run in lockstep: one policy call per step.

Episode ``i`` is reset with seed ``seed + i``, so successive evaluations of a run, and evaluations of
different runs (DQN or tabular), face the same initial states. Envs with action masks
(``info["action_mask"]``, see :mod:`dqnkit.envs.masks`) have the policy called as ``policy(obs, masks)``.
"""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from dqnkit.envs.masks import single_mask

Policy = Callable[[np.ndarray], np.ndarray]


def run_episodes(policy: Policy, make_env: Callable[[], gym.Env], episodes: int, *, seed: int,
                 max_parallel: int = 16) -> dict:
    """Play ``episodes`` full episodes; ``policy`` maps a (k, *obs) batch to k actions (and takes the (k, |A|)
    bool masks of the allowed actions as a second argument when the envs give masks).

    Returns ``mean_return``, ``std_return`` (population std), ``episodes``, ``returns``, ``lengths`` (env steps
    per episode) and ``mean_length``."""
    returns: list[float] = []
    lengths: list[int] = []
    envs = [make_env() for _ in range(min(max_parallel, episodes))]
    try:
        next_episode = 0
        while next_episode < episodes:
            k = min(len(envs), episodes - next_episode)
            resets = [envs[i].reset(seed=seed + next_episode + i) for i in range(k)]
            obs = np.stack([o for o, _ in resets])
            n_actions = int(envs[0].action_space.n)
            masks = _masks([info for _, info in resets], n_actions)
            ret = np.zeros(k)
            length = np.zeros(k, dtype=np.int64)
            alive = np.ones(k, dtype=bool)
            while alive.any():
                idx = np.flatnonzero(alive)
                actions = policy(obs[idx]) if masks is None else policy(obs[idx], masks[idx])
                for j, a in zip(idx, actions):
                    o, r, term, trunc, info = envs[j].step(a)
                    obs[j] = o
                    if masks is not None:
                        step_mask = single_mask(info, n_actions)
                        masks[j] = True if step_mask is None else step_mask
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


def _masks(infos: list[dict], n_actions: int) -> np.ndarray | None:
    """(k, |A|) masks from the reset infos, or None when no env gives one."""
    rows = [single_mask(info, n_actions) for info in infos]
    if all(r is None for r in rows):
        return None
    return np.stack([np.ones(n_actions, dtype=bool) if r is None else r for r in rows])
