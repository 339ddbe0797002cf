"""Greedy evaluation of every member at once: each member's episodes on its own seeds, one forward per step.

Member ``m`` plays the episodes a single run with its seed would (reset seeds ``seed + 1e6 + i``, greedy
actions, Atari-free envs as :meth:`dqnkit.envs.vector.TrainingEnvs.make_eval_env` builds them); the
classic-control envs run as one NumPy-vectorised env of all members' episodes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from dqnkit.envs.classic import make_classic_vector
from dqnkit.envs.vector import TrainingEnvs


def evaluate_members(q_values: Callable[[np.ndarray], np.ndarray], source, envs: TrainingEnvs,
                     seeds: np.ndarray) -> list[dict]:
    """``seeds`` (M, K): member m's K episode seeds. ``q_values`` maps (M, K, *obs) to (M, K, |A|).
    Returns one ``run_episodes``-style result per member."""
    m_count, k_count = seeds.shape
    n = m_count * k_count
    if envs.classic:
        vec = make_classic_vector(source, n)
        obs = vec.reset_members(seeds.reshape(-1))

        def step(actions: np.ndarray, alive: np.ndarray):
            nxt, reward, term, trunc, _ = vec.step(actions)
            return nxt, reward, term | trunc
    else:
        eval_envs = [envs.make_eval_env() for _ in range(n)]
        obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(eval_envs, seeds.reshape(-1))])

        def step(actions: np.ndarray, alive: np.ndarray):
            nxt, reward, done = obs.copy(), np.zeros(n), np.zeros(n, dtype=bool)
            for i in np.flatnonzero(alive):
                o, r, te, tr, _ = eval_envs[i].step(int(actions[i]))
                nxt[i], reward[i], done[i] = o, r, te or tr
            return nxt, reward, done
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        actions = q_values(obs.reshape(m_count, k_count, *obs.shape[1:])).argmax(axis=-1).reshape(-1)
        obs, reward, done = step(actions, alive)
        returns[alive] += reward[alive]
        lengths[alive] += 1
        alive &= ~done
    if not envs.classic:
        for env in eval_envs:
            env.close()
    out = []
    for m in range(m_count):
        r, ln = returns[m * k_count:(m + 1) * k_count], lengths[m * k_count:(m + 1) * k_count]
        out.append({"mean_return": float(r.mean()), "std_return": float(r.std()), "episodes": k_count,
                    "returns": [float(x) for x in r], "lengths": [int(x) for x in ln], "mean_length": float(ln.mean())})
    return out
