"""A tabular Q-learning run written to a folder: :func:`train_tabular`.

Trains a :class:`dqnkit.tabular.TabularQ` in chunks and writes ``config.yaml``,
``episodes.csv``, ``eval.csv`` and the learner's checkpoint (``qtable.safetensors`` and
``tabular.json``).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from dqnkit.errors import ConfigError
from dqnkit.runfolder import CONFIG_FILE, EPISODE_COLUMNS, EPISODES_FILE, EVAL_COLUMNS, EVAL_FILE, atomic_write
from dqnkit.tabular.learner import EnvSource, TabularQ

__all__ = ["train_tabular"]


def train_tabular(
    env_id: EnvSource = "GridWorld-v0",
    *,
    episodes: int,
    learning_rate: float = 0.1,
    gamma: float = 0.99,
    seed: int = 0,
    out_dir: str | os.PathLike,
    env_kwargs: Mapping[str, Any] | None = None,
    eval_every_episodes: int | None = None,
    eval_episodes: int = 10,
    **config: Any,
) -> TabularQ:
    """Trains a :class:`TabularQ` and writes a run folder ``out_dir``.

    Files: ``config.yaml``; ``episodes.csv`` (``env_step,episode,return,length,epsilon``, one
    row per episode); ``eval.csv`` (``env_step,mean_return,std_return``, every
    ``eval_every_episodes`` episodes, default ``episodes // 10``, and at the end);
    ``qtable.safetensors`` and ``tabular.json`` (see :meth:`TabularQ.save`).
    ``config`` takes the other :class:`TabularConfig` fields (exploration, ``max_episode_steps``).
    """
    if int(episodes) < 1:
        raise ConfigError(f"episodes={episodes} must be at least 1; pass a positive number of episodes.")
    every = int(eval_every_episodes) if eval_every_episodes is not None else max(1, int(episodes) // 10)
    if every < 1:
        raise ConfigError(f"eval_every_episodes={eval_every_episodes} must be at least 1; or leave it unset.")
    out = Path(out_dir)
    if (out / EPISODES_FILE).exists():
        raise ConfigError(f"{out} already holds a run (episodes.csv); choose a new out_dir or delete the old one.")

    learner = TabularQ(env_id, env_kwargs=env_kwargs, learning_rate=learning_rate, gamma=gamma, seed=seed, **config)
    out.mkdir(parents=True, exist_ok=True)
    run_config = {
        "algo": "tabular",
        "env_id": learner.env_id if learner.env_id is not None else getattr(env_id, "__name__", repr(env_id)),
        "env_kwargs": dict(env_kwargs or {}),
        "episodes": int(episodes),
        "eval_every_episodes": every,
        "eval_episodes": int(eval_episodes),
        **asdict(learner.config),
    }
    atomic_write(out / CONFIG_FILE, yaml.safe_dump(run_config, sort_keys=False))
    with open(out / EPISODES_FILE, "w", newline="") as ep_file, open(out / EVAL_FILE, "w", newline="") as ev_file:
        ep_csv, ev_csv = csv.writer(ep_file), csv.writer(ev_file)
        ep_csv.writerow(EPISODE_COLUMNS)
        ev_csv.writerow(EVAL_COLUMNS)
        done = 0
        while done < episodes:
            chunk = min(every, int(episodes) - done)
            for rec in learner.learn(chunk):
                ep_csv.writerow([rec.env_step, rec.episode, repr(rec.episode_return), rec.length, repr(rec.epsilon)])
            done += chunk
            result = learner.evaluate(eval_episodes)
            ev_csv.writerow([learner.env_steps, repr(result["mean_return"]), repr(result["std_return"])])
            ep_file.flush()
            ev_file.flush()
    learner.save(out)
    return learner
