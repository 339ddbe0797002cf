"""An Ape-X actor (Horgan et al. 2018, Algorithm 1): its own vector env and a CPU copy of the Q-network, stepping
``apex_chunk_steps`` vector steps at a time with its own fixed epsilon and sending the transitions as one chunk.

A plain class: :mod:`dqnkit.distributed.learner` wraps it with ``ray.remote`` (``max_restarts=-1``,
``max_task_retries=0``), so this module never imports ray. A chunk holds the arrays ``ReplayBuffer.add`` takes, one
row per vector step (obs, action, reward, terminated, truncated, episode_end, next_mask; Atari frame stacks as
their newest frames, ``shards.pack_frames``), the true final
observations of the truncated transitions only (``final_rows``, ``final_obs``), the observation after the chunk
(``next_obs``: the final observation should the stream be cut there), the episodes that ended in it, and the
version (learner updates) of the weights that acted. With PER it carries initial priorities from the actor's own
Q-values, as in Ape-X. Deviation: they are one-step |TD| errors from the actor's network alone (Ape-X computes
n-step errors); the learner's first update of a transition replaces them with its own.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from dqnkit.config import Config
from dqnkit.distributed.cluster import actor_epsilons
from dqnkit.distributed.shards import pack_frames
from dqnkit.envs.vector import TrainingEnvs
from dqnkit.learner.agent import Agent
from dqnkit.networks import pick_torso
from dqnkit.runfolder import generator_state, set_generator_state

SEED_STRIDE = 1000  # actor i after r restarts seeds its envs and exploration with seed + 1000 * i + r


def actor_seed(seed: int, index: int, restarts: int) -> int:
    return int(seed) + SEED_STRIDE * int(index) + int(restarts)


def numpy_weights(net: torch.nn.Module) -> dict[str, np.ndarray]:
    """A network's state as NumPy arrays, for ``ray.put`` (no pickled modules)."""
    return {k: v.detach().to("cpu").numpy().copy() for k, v in net.state_dict().items()}


class ApexActor:
    """Actor ``index`` of ``n_actors``; ``cfg`` is the run's config as a dict."""

    def __init__(self, cfg: dict, index: int, n_actors: int) -> None:
        torch.set_num_threads(1)
        self.base = Config.from_dict(cfg)
        self.index, self.n_actors = int(index), int(n_actors)
        base = self.base
        eps = actor_epsilons(n_actors, base.apex_eps_base, base.apex_eps_alpha)[index]
        self.epsilon = 0.0 if base.noisy or base.exploration == "boltzmann" else eps
        self.version = -1
        self._build(0)

    def _build(self, restarts: int) -> None:
        self.restarts = int(restarts)
        self.seed = actor_seed(self.base.seed, self.index, restarts)
        cfg = dataclasses.replace(self.base, seed=self.seed, device="cpu")
        self.cfg = cfg
        self.envs = TrainingEnvs(cfg.env_id, cfg)
        torso = "custom" if cfg.q_network is not None else pick_torso(cfg.torso, self.envs.obs_shape)
        self.agent = Agent(cfg, self.envs.obs_shape, self.envs.n_actions, torso=torso, device=torch.device("cpu"),
                           input_scale=self.envs.input_scale)
        self.rng = np.random.default_rng(self.seed + 3)
        self.obs = self.envs.reset()
        self.ep_return = np.zeros(self.envs.num_envs)
        self.ep_length = np.zeros(self.envs.num_envs, dtype=np.int64)
        self.episodes = self.env_steps = self.chunks = 0
        if self.version >= 0 and getattr(self, "_weights", None) is not None:
            self.agent.online.load_state_dict(self._weights)

    # --- control from the learner ---------------------------------------------------
    def reset(self, restarts: int, weights: dict | None, version: int) -> int:
        """After a restart: fresh envs seeded ``seed + 1000 * index + restarts`` and the latest weights."""
        self._build(restarts)
        self.set_weights(weights, version)
        return self.seed

    def set_weights(self, weights: dict[str, np.ndarray] | None, version: int) -> None:
        if weights is None or int(version) == self.version:
            return
        self._weights = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
        self.agent.online.load_state_dict(self._weights)
        self.version = int(version)

    def info(self) -> dict:
        import os
        return {"index": self.index, "pid": os.getpid(), "seed": self.seed, "restarts": self.restarts,
                "epsilon": self.epsilon, "version": self.version, "episodes": self.episodes,
                "env_steps": self.env_steps}

    # --- acting ------------------------------------------------------------------------
    def sample(self, vec_steps: int, weights: dict[str, np.ndarray] | None = None, version: int = -1) -> dict:
        """Step ``vec_steps`` vector steps (after loading ``weights`` of ``version`` when newer); the chunk."""
        self.set_weights(weights, version)
        t0 = time.perf_counter()
        envs, K, E = self.envs, int(vec_steps), self.envs.num_envs
        obs_buf = np.empty((K, E, *envs.obs_shape), dtype=np.asarray(self.obs).dtype)
        action = np.empty((K, E), dtype=np.int64)
        reward = np.empty((K, E), dtype=np.float32)
        terminated, truncated, episode_end = (np.empty((K, E), dtype=bool) for _ in range(3))
        next_mask = np.empty((K, E, envs.n_actions), dtype=bool) if envs.masked else None
        final_rows: list[int] = []
        final_obs: list[np.ndarray] = []
        returns: list[float] = []
        lengths: list[int] = []
        end_steps: list[int] = []
        for t in range(K):
            mask = envs.current_mask
            if self.cfg.exploration != "epsilon":
                actions = self.agent.act(self.obs, self.epsilon, self.rng, mask, self.cfg.exploration_final_temperature)
            elif mask is None:
                actions = self.agent.act(self.obs, self.epsilon, self.rng)
            else:
                actions = self.agent.act(self.obs, self.epsilon, self.rng, mask)
            step = envs.step(actions)
            obs_buf[t] = self.obs
            action[t], reward[t] = actions, step.reward
            terminated[t], truncated[t], episode_end[t] = step.terminated, step.truncated, step.episode_end
            for e in np.flatnonzero(step.truncated & ~step.terminated):
                final_rows.append(t * E + int(e))
                final_obs.append(np.array(step.final_obs[e]))
            if next_mask is not None:
                next_mask[t] = step.final_mask
            self.ep_return += step.reported_reward
            self.ep_length += 1
            for e in np.flatnonzero(step.episode_end):
                returns.append(float(self.ep_return[e]))
                lengths.append(int(self.ep_length[e]))
                end_steps.append(t)
                self.ep_return[e], self.ep_length[e] = 0.0, 0
            self.obs = step.next_obs
        self.episodes += len(returns)
        self.env_steps += K * E
        self.chunks += 1
        chunk = {
            "actor": self.index, "restarts": self.restarts, "seq": self.chunks, "version": self.version,
            "epsilon": self.epsilon, "obs": obs_buf, "action": action, "reward": reward, "terminated": terminated,
            "truncated": truncated, "episode_end": episode_end, "next_mask": next_mask,
            "final_rows": np.asarray(final_rows, dtype=np.int64),
            "final_obs": np.stack(final_obs) if final_obs else np.empty((0, *envs.obs_shape), obs_buf.dtype),
            "next_obs": np.array(self.obs), "returns": np.asarray(returns, dtype=np.float64),
            "lengths": np.asarray(lengths, dtype=np.int64), "end_steps": np.asarray(end_steps, dtype=np.int64),
            "env_steps": K * E,
        }
        chunk["td_abs"] = self.initial_priorities(chunk) if self.cfg.prioritized_replay else None
        if envs.atari and self.cfg.frame_stack > 1:  # newest frames only (the first stacks and episode starts whole)
            chunk.update(pack_frames(chunk.pop("obs")))
        chunk["seconds"] = time.perf_counter() - t0
        return chunk

    def initial_priorities(self, chunk: dict) -> np.ndarray:
        """One-step |r + gamma * (1 - terminated) * max_a Q(s', a) - Q(s, a)| per transition (K, E), from this
        actor's network (Horgan et al. 2018, Sec. 3: priorities computed by the actors)."""
        K, E = chunk["action"].shape
        shape = chunk["obs"].shape[2:]
        both = np.concatenate((chunk["obs"], chunk["next_obs"][None])).reshape(((K + 1) * E, *shape))
        q = self.agent.q_values(both)
        q_sa = q[np.arange(K * E), chunk["action"].reshape(-1)]
        q_next = q[E:].max(axis=1)
        if chunk["final_rows"].size:
            q_next[chunk["final_rows"]] = self.agent.q_values(chunk["final_obs"]).max(axis=1)
        target = chunk["reward"].reshape(-1) + self.cfg.gamma * (1.0 - chunk["terminated"].reshape(-1)) * q_next
        return np.abs(target - q_sa).astype(np.float64).reshape(K, E)

    # --- checkpoints -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """This actor's state as JSON: seed base, restarts, envs (re-simulation), exploration RNG, episodes."""
        return {"index": self.index, "seed": self.seed, "restarts": self.restarts, "epsilon": self.epsilon,
                "envs": self.envs.snapshot(), "rng": generator_state(self.rng),
                "ep_return": self.ep_return.tolist(), "ep_length": self.ep_length.tolist(),
                "episodes": self.episodes, "env_steps": self.env_steps, "chunks": self.chunks,
                "noise_gen": self.agent.noise_gen.get_state().tolist()}

    def restore(self, snap: dict[str, Any], weights: dict | None, version: int) -> int:
        """Continue exactly where ``snapshot`` was taken (with the weights the actor held then)."""
        self._build(int(snap["restarts"]))
        self.set_weights(weights, version)
        self.obs = self.envs.restore(snap["envs"])
        set_generator_state(self.rng, snap["rng"])
        self.ep_return = np.asarray(snap["ep_return"], dtype=np.float64)
        self.ep_length = np.asarray(snap["ep_length"], dtype=np.int64)
        self.episodes, self.env_steps, self.chunks = int(snap["episodes"]), int(snap["env_steps"]), int(snap["chunks"])
        self.agent.noise_gen.set_state(torch.tensor(snap["noise_gen"], dtype=torch.uint8))
        return self.seed
