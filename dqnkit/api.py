"""The Python API: ``DQN(env, **config)``, ``.learn``, ``.predict``, ``.q_values``, ``.evaluate``, ``.save``, ``DQN.load``.

Example::

    from dqnkit import DQN
    model = DQN.from_preset("CartPole-v1", seed=1)
    model.learn(50_000)
    print(model.evaluate(20)["mean_return"])
    model.save("cartpole-model")
    model = DQN.load("cartpole-model")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from dqnkit.checkpoint import check_compatible, find_checkpoint, load_checkpoint, save_checkpoint
from dqnkit.config import Config
from dqnkit.errors import CheckpointError, ConfigError
from dqnkit.explore import epsilon_greedy
from dqnkit.presets import load_preset
from dqnkit.train import Trainer


class DQN:
    """A DQN-family agent on one environment; every config field is a keyword argument."""

    def __init__(self, env: str | Callable[[], gym.Env] = "CartPole-v1", *, run_dir: str | Path | None = None,
                 verbose: int = 0, **config: Any):
        if isinstance(env, str):
            config.setdefault("env_id", env)
        elif callable(env):
            config.setdefault("env_id", "custom")
        else:
            raise ConfigError(f"env must be a Gymnasium id or a zero-argument callable returning an env, "
                              f"got {type(env).__name__}")
        self.config = Config.from_dict(config)
        self.trainer = Trainer(self.config, run_dir, env=env, verbosity="plain" if verbose else "quiet")

    @classmethod
    def from_preset(cls, name: str, *, run_dir: str | Path | None = None, **overrides: Any) -> "DQN":
        values = load_preset(name)
        values.update(overrides)
        env = values.pop("env_id")
        return cls(env, run_dir=run_dir, **values)

    # --- training ------------------------------------------------------------------------
    def learn(self, total_timesteps: int | None = None) -> "DQN":
        """Train for ``total_timesteps`` more env steps (default: the config's total_timesteps)."""
        steps = self.config.total_timesteps if total_timesteps is None else int(total_timesteps)
        self.trainer.learn(self.trainer.env_step + steps)
        return self

    @property
    def num_timesteps(self) -> int:
        return self.trainer.env_step

    # --- using the policy ----------------------------------------------------------------
    def _batch(self, obs: Any) -> tuple[np.ndarray, bool]:
        """(batch of network inputs, whether ``obs`` was a single observation)."""
        arr = np.asarray(obs)
        raw_space = self.trainer.envs.envs[0].unwrapped.observation_space
        if isinstance(raw_space, gym.spaces.Discrete) and arr.dtype.kind in "iu":
            # raw Discrete states (ints): one-hot encode like the training wrapper does
            states = np.atleast_1d(arr).astype(np.int64) - int(raw_space.start)
            one_hot = np.zeros((states.size, int(raw_space.n)), dtype=np.float32)
            one_hot[np.arange(states.size), states] = 1.0
            return one_hot, arr.ndim == 0
        if arr.shape == tuple(self.trainer.obs_shape):
            return arr[None], True
        return arr, False

    def q_values(self, obs: Any) -> np.ndarray:
        """Q-values of one observation (shape (|A|,)) or of a batch (shape (B, |A|)); C51 gives expectations."""
        batch, single = self._batch(obs)
        q = self.trainer.agent.q_values(batch.astype(self.trainer.obs_dtype, copy=False))
        return q[0] if single else q

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray | int:
        """Greedy action (or epsilon-greedy at the current epsilon when not deterministic)."""
        q = self.q_values(obs)
        greedy = np.argmax(q, axis=-1)
        if deterministic:
            return int(greedy) if np.ndim(greedy) == 0 else greedy
        flat = epsilon_greedy(np.atleast_1d(greedy), self.trainer.epsilon(), self.trainer.n_actions, self.trainer.rng)
        return int(flat[0]) if np.ndim(greedy) == 0 else flat

    def evaluate(self, episodes: int = 10, seed: int | None = None) -> dict:
        """Greedy episodes on a fresh env: mean_return, std_return, episodes, returns, lengths."""
        return self.trainer.evaluate(episodes, seed)

    # --- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model (networks, optimizer, config, counters) as safetensors + JSON into folder ``path``."""
        return save_checkpoint(Path(path), self.trainer.agent.tensors(), self.trainer.state())

    @classmethod
    def load(cls, path: str | Path, env: str | Callable[[], gym.Env] | None = None, which: str = "latest",
             **overrides: Any) -> "DQN":
        """Load a saved model, a checkpoint folder, or a run folder (its latest or best checkpoint)."""
        ckpt = find_checkpoint(path, which)
        tensors, state, _ = load_checkpoint(ckpt, with_replay=False)
        try:
            values = dict(state["config"])
        except (KeyError, TypeError):
            raise CheckpointError(f"checkpoint {ckpt} has no config in its state.json; it was not written by dqnkit") from None
        values.update(overrides)
        if env is None:
            if values.get("env_id") == "custom":
                raise CheckpointError(f"{ckpt} was trained on a custom env callable; pass it: DQN.load(path, env=make_env)")
            env = values["env_id"]
        values.pop("env_id", None)
        model = cls(env, **values)
        check_compatible(state, model.trainer.signature, ckpt, model.config.env_id)
        model.trainer.agent.load(tensors, state["agent"])
        model.trainer.env_step = int(state["counters"]["env_step"])
        model.trainer.episodes = int(state["counters"]["episodes"])
        return model

    def close(self) -> None:
        self.trainer.close()
