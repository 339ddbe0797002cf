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

import warnings
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from dqnkit.errors import CheckpointError, ConfigError, DqnkitError
from dqnkit.envs.masks import check_masks
from dqnkit.learner.explore import epsilon_greedy, masked_argmax
from dqnkit.presets import load_preset
from dqnkit.presets.zoo import config_from_zoo
from dqnkit.runfolder import PLOTS_DIR
from dqnkit.training.checkpoint import find_checkpoint, read_state
from dqnkit.training.trainer import Trainer

PREDICT_SEED_OFFSET = 4  # predict(deterministic=False) draws from its own generator, seeded seed + 4


class DQN:
    """A DQN-family agent on one environment; every config field is a keyword argument."""

    def __init__(self, env: str | Callable[[], gym.Env] = "CartPole-v1", *, run_dir: str | Path | None = None,
                 verbose: int | None = None, **config: Any):
        """``run_dir``: the run folder to write (CSV files, checkpoints, plots/ and report.html after ``learn``), or
        None for none. ``verbose``: None shows a progress bar in a terminal or a Jupyter notebook and nothing
        otherwise; 0 shows nothing; 1 prints a progress line every 10% of ``learn`` (or 30 s) anywhere."""
        if isinstance(env, str):
            config.setdefault("env_id", env)
        elif callable(env):
            config.setdefault("env_id", "custom")
        else:
            raise ConfigError(f"env must be a Gymnasium id or a zero-argument callable returning an env, "
                              f"got {type(env).__name__}")
        self.config = config_from_zoo(config)
        verbosity = "interactive" if verbose is None else ("plain" if verbose else "quiet")
        self.trainer = Trainer(self.config, run_dir, env=env, verbosity=verbosity)
        self._predict_rng = np.random.default_rng(self.config.seed + PREDICT_SEED_OFFSET)

    @classmethod
    def population(cls, env: str | Callable[[], gym.Env] = "CartPole-v1", *, seeds: Any = (0,),
                   grid: dict[str, list] | None = None, run_dir: str | Path | None = None, verbose: int = 0,
                   **config: Any) -> "Population":
        """Many seeds (and a grid of settings) trained together in one process; see :class:`Population`."""
        return Population(env, seeds=seeds, grid=grid, run_dir=run_dir, verbose=verbose, **config)

    @classmethod
    def from_preset(cls, name: str, *, run_dir: str | Path | None = None, **overrides: Any) -> "DQN":
        values = load_preset(name)
        values.update(overrides)
        env = values.pop("env_id")
        return cls(env, run_dir=run_dir, **values)

    # --- training ------------------------------------------------------------------------
    def learn(self, total_timesteps: int | None = None, callback: Any = None) -> "DQN":
        """Train for ``total_timesteps`` more env steps (default: the config's total_timesteps). With a ``run_dir``,
        then refresh its plots/ and report.html, as ``dqnkit train`` does.

        ``callback``: one object or a list with any of ``on_step``, ``on_episode_end``, ``on_eval``,
        ``on_checkpoint`` (each gets a read-only view of counters and metrics; False stops training, with a
        checkpoint); built-ins in :mod:`dqnkit.training.callbacks`."""
        if self.config.distributed != "none":
            raise ConfigError(f"distributed={self.config.distributed!r} is not trained by DQN.learn(), which runs in one "
                              "process; train Ape-X from the command line (dqnkit train --distributed ray ...) or set "
                              "distributed='none'")
        steps = self.config.total_timesteps if total_timesteps is None else int(total_timesteps)
        self.trainer.learn(self.trainer.env_step + steps, callback=callback)
        if self.run_dir is not None:
            try:
                self.write_report()
            except Exception as exc:  # noqa: BLE001 - the run itself is safe on disk
                warnings.warn(f"report.html not written ({exc}); try model.write_report() or "
                              f"`dqnkit report {self.run_dir}`", stacklevel=2)
        return self

    @property
    def num_timesteps(self) -> int:
        return self.trainer.env_step

    @property
    def run_dir(self) -> Path | None:
        """The run folder this model writes (``DQN(..., run_dir=...)``), or None."""
        return self.trainer.run_dir

    def write_report(self) -> Path:
        """Refresh ``run_dir``'s plots/ and report.html from its files (with this model's greedy policy on a grid
        world); ``learn`` calls it. Returns the report's path."""
        if self.run_dir is None:
            raise DqnkitError("this model has no run folder to report on; create it with DQN(..., run_dir=\"runs/x\")")
        return write_run_report(self.run_dir, self)

    # --- using the policy ----------------------------------------------------------------
    def q_values(self, obs: Any) -> np.ndarray:
        """Q-values of one observation (shape (|A|,)) or of a batch (shape (B, |A|)); C51 gives expectations.
        Raw states of a Discrete observation space are one-hot encoded as in training."""
        envs = self.trainer.envs
        batch, single = envs.encode(obs)
        q = self.trainer.agent.q_values(batch.astype(envs.obs_dtype, copy=False))
        return q[0] if single else q

    def predict(self, obs: Any, deterministic: bool = True, action_masks: Any = None) -> np.ndarray | int:
        """Greedy action (or epsilon-greedy at the current epsilon when not deterministic); ``action_masks``
        (|A|,) or (B, |A|) bool: only these actions may be chosen (sb3-contrib's keyword)."""
        q = self.q_values(obs)
        mask = None
        if action_masks is not None:
            n = self.trainer.envs.n_actions
            mask = check_masks(np.asarray(action_masks).reshape(-1, n) if np.size(action_masks) % n == 0
                               else np.asarray(action_masks)[None], np.atleast_2d(q).shape[0], n, "predict")
        greedy = masked_argmax(np.atleast_2d(q), mask)
        greedy = greedy[0] if q.ndim == 1 else greedy
        if deterministic:
            return int(greedy) if np.ndim(greedy) == 0 else greedy
        flat = epsilon_greedy(np.atleast_1d(greedy), self.trainer.epsilon(), self.trainer.envs.n_actions,
                              self._predict_rng, mask)
        return int(flat[0]) if np.ndim(greedy) == 0 else flat

    def q_table(self) -> np.ndarray:
        """Q-values of every state, ``(n_states, n_actions)``, for an env with a Discrete observation space."""
        raw = self.trainer.envs.raw_observation_space
        if not isinstance(raw, gym.spaces.Discrete):
            raise DqnkitError(f"{self.config.env_id} has {type(raw).__name__} observations, not a small set of "
                              "discrete states; a Q-table exists only for Discrete observation spaces (grid worlds: "
                              "GridWorld-v0, FrozenLake, Taxi)")
        return self.q_values(np.arange(int(raw.n)) + int(raw.start))

    def evaluate(self, episodes: int = 10, seed: int | None = None, epsilon: float | None = None) -> dict:
        """Greedy episodes on fresh envs (reset with seeds ``seed``, ``seed + 1``, ...; default: the periodic
        evaluation's seeds); epsilon-greedy at ``epsilon`` (default: the config's eval_epsilon, 0) with a
        generator seeded from ``seed``, so the same call gives the same episodes. Returns ``mean_return``, ``std_return`` (population std), ``episodes`` (how many),
        ``returns`` (one per episode), ``lengths`` (env steps of each episode) and ``mean_length``."""
        if epsilon is not None and not 0.0 <= float(epsilon) <= 1.0:
            raise ConfigError(f"evaluation epsilon must be in [0, 1], got {epsilon}")
        return self.trainer.evaluate(episodes, seed, epsilon)

    def make_eval_env(self, render_mode: str | None = None) -> gym.Env:
        """An env as evaluation sees it (Atari: unclipped rewards, lives not terminal)."""
        return self.trainer.envs.make_eval_env(render_mode=render_mode)

    def record(self, out_dir: str | Path, *, episodes: int = 1, epsilon: float = 0.0, seed: int = 0,
               gif: bool = True) -> list[Path]:
        """MP4 files (and a GIF of the first episode) of ``episodes`` (epsilon-)greedy episodes; needs the video extra."""
        from dqnkit.training.video import record_episodes
        return record_episodes(self.q_values, self.make_eval_env, Path(out_dir), episodes=episodes, epsilon=epsilon,
                               seed=seed, gif=gif)

    # --- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model (networks, optimizer, config, counters) as safetensors + JSON into folder ``path``."""
        return self.trainer.save_model(Path(path))

    @classmethod
    def load(cls, path: str | Path, env: str | Callable[[], gym.Env] | None = None, which: str = "latest",
             **overrides: Any) -> "DQN":
        """Load a saved model, a checkpoint folder, or a run folder (its latest or best checkpoint)."""
        ckpt = find_checkpoint(path, which)
        try:
            values = dict(read_state(ckpt)["config"])
        except (KeyError, TypeError):
            raise CheckpointError(f"checkpoint {ckpt} has no config in its state.json; it was not written by dqnkit") from None
        values.update(overrides)
        if env is None:
            if values.get("env_id") == "custom":
                raise CheckpointError(f"{ckpt} was trained on a custom env callable; pass it: DQN.load(path, env=make_env)")
            env = values["env_id"]
        values.pop("env_id", None)
        model = cls(env, **values)
        model.trainer.restore(ckpt, replay=False, env_id=model.config.env_id)
        return model

    def close(self) -> None:
        self.trainer.close()


def write_run_report(run_dir: str | Path, model: DQN | None = None) -> Path:
    """Write a DQN run folder's plots/ and report.html; on a grid world (GridWorld-v0, FrozenLake, Taxi) the
    report shows the greedy policy of ``model`` (default: the run's latest checkpoint, when it has one)."""
    from dqnkit.analysis.groups import variant_name
    from dqnkit.analysis.policy import policy_report
    from dqnkit.analysis.report import write_report

    run_dir = Path(run_dir)
    policy = None
    try:
        shown = model if model is not None else DQN.load(run_dir)
        try:
            q_table = shown.q_table()  # raises for observations that are not a small set of states
            env = shown.make_eval_env()
            try:
                policy = policy_report(q_table, env, run_dir / PLOTS_DIR, learner=variant_name(shown.config.to_dict()))
            finally:
                env.close()
        finally:
            if shown is not model:
                shown.close()
    except DqnkitError:
        policy = None  # not a grid world, or no checkpoint yet: no policy section
    return write_report(run_dir, policy=policy)


class Population:
    """Members = ``seeds`` x the cross product of ``grid`` ({config key: [values]}), on top of ``config``.

    ``learn()`` trains them (grouped where a setting changes tensor shapes) and returns one dict per member:
    name, seed, setting, run_dir, episodes, last_eval. With ``run_dir`` each member gets an ordinary run
    folder under it, which ``DQN.load``, ``dqnkit eval``, ``plot``, ``report`` and ``resume`` accept.
    """

    def __init__(self, env: str | Callable[[], gym.Env] = "CartPole-v1", *, seeds: Any = (0,),
                 grid: dict[str, list] | None = None, run_dir: str | Path | None = None, verbose: int = 0,
                 **config: Any):
        from dqnkit.population.members import parse_grid, parse_seeds

        self.env = env
        self.seeds = parse_seeds(seeds)
        self.grid = parse_grid(grid)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.verbosity = "plain" if verbose else "quiet"
        self.config = dict(config)
        if isinstance(env, str):
            self.config.setdefault("env_id", env)
        else:
            self.config.setdefault("env_id", "custom")
        config_from_zoo(self.config)  # bad keys and values fail here, before any member is built

    def learn(self, total_timesteps: int | None = None) -> list[dict]:
        """Train every member for ``total_timesteps`` env steps (default: the config's)."""
        from dqnkit.population.run import train_population

        base = dict(self.config)
        if total_timesteps is not None:
            base["total_timesteps"] = int(total_timesteps)
        env = None if isinstance(self.env, str) else self.env
        say = print if self.verbosity != "quiet" else (lambda text: None)
        return train_population(base, self.seeds, self.grid, self.run_dir, env=env, verbosity=self.verbosity,
                                say=say)
