"""One typed, validated config per run.

Hyperparameter names follow Stable-Baselines3's DQN wherever it has one, so that an rl-baselines3-zoo
``dqn.yml`` entry loads unchanged (through :func:`dqnkit.presets.zoo.normalise`, which also reads the
zoo's spellings such as ``n_timesteps`` and ``"dict(net_arch=[256, 256])"``). Every field carries a
one-line doc (shown by ``dqnkit train --help-config``) that states its unit: env steps (transitions
summed over all vector envs), episodes, or gradient updates; bounds and choices are declared beside it,
so :meth:`Config.validate` is one loop over the fields plus the checks that involve several fields.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from dqnkit.errors import ConfigError
from dqnkit.importing import is_import_path


def _f(default: Any, doc: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
       choices: tuple[str, ...] | None = None, prefix_ok: bool = False, rule: str | None = None) -> Any:
    """A field with its doc and its rule: ``lo``/``hi`` bounds (``lo_open``: strictly above ``lo``), or
    ``choices`` (``prefix_ok``: also ``choice:suffix``, as in ``cuda:1``); ``rule`` words the bound."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "prefix_ok": prefix_ok,
            "rule": rule}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    # --- environment and run -------------------------------------------------------------
    env_id: str = _f("CartPole-v1", "Gymnasium environment id (Discrete action space).")
    env_kwargs: dict = _f({}, "Keyword arguments passed to gymnasium.make.")
    env_wrapper: list = _f([], "Wrappers applied to each env, innermost first (rl-zoo's env_wrapper): import paths "
                               "'module.Class' or 'module:Class', or {path: {kwargs}}, e.g. "
                               "minigrid.wrappers.ImgObsWrapper.")
    total_timesteps: int = _f(50_000, "Training budget in env steps (summed over all vector envs).", lo=1)
    num_envs: int = _f(1, "Number of environments stepped in lockstep (SyncVectorEnv).", lo=1)
    seed: int = _f(0, "Seed for envs, networks, replay sampling and exploration.")
    device: str = _f("auto", "Torch device: auto | cpu | cuda | mps (auto picks cuda, then mps, then cpu).", choices=("auto", "cpu", "cuda", "mps"), prefix_ok=True)
    torch_threads: int = _f(1, "Torch intra-op threads on CPU (1 is fastest for small nets on 2 cores; 0 is the "
                            "count torch had when dqnkit was imported, one per core unless you set it before, "
                            "which the Atari CNN presets use).", lo=0)
    # --- replay --------------------------------------------------------------------------
    buffer_size: int = _f(1_000_000, "Replay capacity in transitions.", lo=1)
    learning_starts: int = _f(100, "Env steps of random actions before learning; the first training round "
                                   "comes at the first train_freq multiple past it (as in SB3).", lo=0)
    batch_size: int = _f(32, "Transitions per gradient update.", lo=1)
    # --- learner -------------------------------------------------------------------------
    learning_rate: float = _f(1e-4, "Optimizer step size (at env step 0 when learning_rate_schedule is linear; "
                                    "rl-zoo's 'lin_2.3e-3' sets both).", lo=0, lo_open=True, rule="a positive number")
    learning_rate_schedule: str = _f("constant", "constant | linear: decays to learning_rate_final at "
                                                  "total_timesteps (env steps, so resuming keeps it).", choices=("constant", "linear"))
    learning_rate_final: float = _f(0.0, "linear schedule: step size at total_timesteps.")
    gamma: float = _f(0.99, "Discount factor per env step.", lo=0, hi=1)
    train_freq: int = _f(4, "Env steps between training rounds (SB3's train_freq in steps; [n, 'step'] accepted).", lo=1)
    gradient_steps: int = _f(1, "Gradient updates per training round; -1 = one per env step collected in the round.")
    target_update_interval: int = _f(10_000, "Env steps between target-network syncs.", lo=1)
    tau: float = _f(1.0, "Target sync coefficient: 1.0 = hard copy, <1 = Polyak average target <- tau*online + (1-tau)*target.", lo=0, lo_open=True, hi=1, rule="in (0, 1] (1 = hard copy)")
    loss: str = _f("huber", "TD loss: huber (smooth L1, delta 1) | mse.", choices=("huber", "mse"))
    optimizer: str = _f("adam", "Optimizer: adam | adamw | rmsprop.", choices=("adam", "adamw", "rmsprop"))
    amsgrad: bool = _f(False, "Use the AMSGrad variant (adam/adamw).")
    adam_eps: float = _f(1e-8, "Epsilon of Adam/AdamW/RMSprop denominators.")
    weight_decay: float = _f(0.0, "Weight decay (decoupled for adamw).")
    max_grad_norm: float | None = _f(10.0, "Clip the global gradient L2 norm to this (null disables).", lo=0, lo_open=True)
    grad_clip_value: float | None = _f(None, "Clip each gradient element to [-v, v] (null disables).", lo=0, lo_open=True)
    fast_path: bool = _f(True, "Hand-derived forward/backward (no autograd) for MLP Q-networks: plain, dueling (mean "
                               "aggregation), noisy and C51 heads and their combinations; the same gradients to "
                               "float rounding. false = autograd always (to check, or to compare speed).")
    policy_kwargs: dict = _f({"net_arch": [64, 64]}, "Network options: net_arch = hidden layer sizes of the MLP torso; "
                                                      "normalize_images (default true) = scale uint8 [0, 255] "
                                                      "observations to [0, 1] before the MLP; layer_norm (default "
                                                      "false) = LayerNorm after each hidden layer (PQN).")
    q_network: str | None = _f(None, "Your own network, by import path 'package.module:Factory': an nn.Module factory "
                                      "called as Factory(obs_shape, out_dim, **q_network_kwargs); see q_network_role. "
                                      "null = dqnkit's torso (net_arch / torso).")
    q_network_kwargs: dict = _f({}, "Keyword arguments of the q_network factory (JSON values only: they are stored "
                                    "in config.yaml and state.json).")
    q_network_role: str = _f("torso", "torso: q_network is a feature extractor under dqnkit's heads (dueling, noisy "
                                      "and C51 still apply; out_dim = features_dim) | q_network: it is the whole "
                                      "Q-network, out_dim = n_actions, output (batch, n_actions).",
                             choices=("torso", "q_network"))
    features_dim: int | None = _f(None, "q_network torso: its output size (passed to the factory as out_dim); null "
                                        "= the factory picks it (out_dim None) and a dummy forward measures it.", lo=1)
    # --- exploration ---------------------------------------------------------------------
    exploration_schedule: str = _f("linear", "Epsilon schedule: linear | exponential | multiplicative.", choices=("linear", "exponential", "multiplicative"))
    exploration_fraction: float = _f(0.1, "linear: fraction of total_timesteps over which epsilon decays.", lo=0, lo_open=True, hi=1)
    exploration_initial_eps: float = _f(1.0, "Epsilon at env step 0.", lo=0, hi=1)
    exploration_final_eps: float = _f(0.05, "Epsilon floor.", lo=0, hi=1)
    exploration_decay_env_steps: float = _f(1000.0, "exponential: eps = final + (initial-final) * exp(-env_step / this).", lo=0, lo_open=True)
    exploration_episode_decay: float = _f(0.995, "multiplicative: eps <- max(final, eps * this) after each episode.", lo=0, lo_open=True, hi=1)
    exploration: str = _f("epsilon", "How actions are explored: epsilon (epsilon-greedy) | boltzmann (sample softmax(Q / T)) | "
                                     "max_boltzmann (keras-rl's MaxBoltzmannQPolicy: with probability epsilon sample "
                                     "softmax(Q / T), else greedy).", choices=("epsilon", "boltzmann", "max_boltzmann"))
    exploration_initial_temperature: float = _f(1.0, "boltzmann/max_boltzmann: temperature T at env step 0, decayed linearly "
                                                     "over exploration_fraction * total_timesteps env steps.", lo=0, lo_open=True)
    exploration_final_temperature: float = _f(0.1, "boltzmann/max_boltzmann: temperature T after the decay.", lo=0, lo_open=True)
    eval_epsilon: float = _f(0.0, "Epsilon of evaluation's epsilon-greedy actions (evaluate, dqnkit eval, periodic "
                                  "evaluation); the Atari protocol uses 0.05 (Mnih 2015) or 0.001 (Hessel 2018).", lo=0, hi=1)
    # --- Rainbow-family options (defaults give plain DQN) --------------------------------
    double_q: bool = _f(False, "Double DQN: online net picks argmax at s', target net evaluates it (van Hasselt 2016).")
    dueling: bool = _f(False, "Dueling head: Q = V + A - mean(A) (Wang et al. 2016).")
    dueling_aggregation: str = _f("mean", "dueling: how V and A combine (keras-rl's dueling_type): mean (Q = V + A - mean A, "
                                          "Wang et al. eq. 9) | max (Q = V + A - max A, eq. 8) | naive (Q = V + A).",
                                  choices=("mean", "max", "naive"))
    prioritized_replay: bool = _f(False, "Proportional prioritized replay (Schaul et al. 2016).")
    alpha: float = _f(0.6, "PER: priority exponent.", lo=0, hi=1)
    beta_initial: float = _f(0.4, "PER: importance-sampling exponent at env step 0, annealed linearly to 1 at total_timesteps.", lo=0, hi=1)
    priority_epsilon: float = _f(1e-6, "PER: added to |TD| before exponentiation.", lo=0, lo_open=True)
    priority_clip: float | None = _f(None, "PER: clip |TD| (C51: the per-sample loss) to this before it becomes a priority; "
                                           "Schaul et al.'s Atari agent used 1. null = no clip. Bounds priority outliers "
                                           "when rewards are not clipped.", lo=0, lo_open=True)
    per_round_sampling: bool = _f(False, "PER: draw a whole training round's batches at once, from the priorities at "
                                         "the start of the round (one sum-tree descent), instead of each batch after "
                                         "the previous batch's priority update; every step's priorities are written, in "
                                         "one call at the round's end. A deviation from Schaul et al. 2016, for speed.")
    n_step: int = _f(1, "Multi-step return length in env steps (computed at sample time).", lo=1)
    noisy: bool = _f(False, "Factorised NoisyLinear layers in the head (Fortunato et al. 2018); turns epsilon-greedy off.")
    noisy_sigma0: float = _f(0.5, "NoisyNet: initial sigma_0 of the factorised noise.", lo=0)
    distributional: bool = _f(False, "C51 categorical value distribution (Bellemare et al. 2017).")
    n_atoms: int = _f(51, "C51: number of support atoms.", lo=1)
    v_min: float = _f(-10.0, "C51: lowest support value.")
    v_max: float = _f(10.0, "C51: highest support value.")
    # --- pixels and Atari preprocessing (Machado et al. 2018 protocol names) -------------
    torso: str = _f("auto", "Feature extractor: auto (nature_cnn for image observations, else mlp) | mlp | nature_cnn.", choices=("auto", "mlp", "nature_cnn"))
    frame_stack: int = _f(1, "Frames stacked into one observation (Atari: 4); replay stores each frame once.", lo=1)
    noop_max: int = _f(30, "Atari: up to this many no-op actions after reset (Mnih et al. 2015).", lo=0)
    frame_skip: int = _f(4, "Atari: emulator frames per agent step, max-pooled over the last two.", lo=1)
    screen_size: int = _f(84, "Atari: observations resized to screen_size x screen_size grayscale.", lo=1)
    terminal_on_life_loss: bool = _f(True, "Atari: a lost life ends the bootstrap for learning (reported returns span the game).")
    clip_rewards: bool = _f(True, "Atari: learn from sign(reward); reported returns stay unclipped.")
    fire_reset: bool = _f(True, "Atari: press FIRE after reset in games that need it.")
    sticky_action_prob: float = _f(0.25, "Atari: probability the previous action repeats (ALE v5 default 0.25; Nature 0).", lo=0, hi=1)
    max_episode_frames: int = _f(108_000, "Atari: episode truncated after this many emulator frames (30 min of play).", lo=1)
    # --- evaluation, logging, checkpoints ------------------------------------------------
    eval_freq: int = _f(10_000, "Env steps between greedy evaluations (0 disables periodic evaluation).", lo=0)
    eval_episodes: int = _f(10, "Episodes per greedy evaluation.", lo=1)
    checkpoint_freq: int = _f(25_000, "Env steps between checkpoints (0 = only at the end).", lo=0)
    keep_checkpoints: int = _f(3, "Keep this many latest step checkpoints (plus best and last).", lo=1)
    log_interval: int = _f(100, "Gradient updates between rows of updates.csv.", lo=1)
    save_replay: bool = _f(False, "Include the replay buffer in checkpoints (exact resume).")
    video_every: int = _f(0, "Env steps between videos of one greedy episode in run/videos (0 = none; needs the video extra).", lo=0)
    tensorboard: bool = _f(True, "Write TensorBoard event files into the run folder.")
    # --- distributed acting (Ape-X, Horgan et al. 2018; dqnkit.distributed) -----------------
    distributed: str = _f("none", "none (one process) | ray: Ape-X actors on Ray Core feed a sharded replay and "
                                  "the learner in this process (needs the ray extra).", choices=("none", "ray"))
    actors: int = _f(2, "ray: number of actors, each with num_envs envs and one replay shard.", lo=1)
    apex_eps_base: float = _f(0.4, "ray: actor i explores with epsilon base ** (1 + alpha * i / (actors - 1)) "
                                   "(Horgan et al. 2018: 0.4).", lo=0, hi=1)
    apex_eps_alpha: float = _f(7.0, "ray: the alpha of the actors' epsilons (Horgan et al. 2018: 7).", lo=0)
    apex_chunk_steps: int = _f(50, "ray: vector steps per chunk an actor sends (chunk = this x num_envs env steps).", lo=1)
    weight_sync_interval: int = _f(100, "ray: gradient updates between weight publications to the actors.", lo=1)
    ray_address: str | None = _f(None, "ray: an existing cluster ('auto' or HOST:PORT); null starts a local one.")
    apex_sync: bool = _f(False, "ray: gather one chunk from every actor per round, in actor order: deterministic "
                                "and exactly resumable, slower.")

    # ------------------------------------------------------------------------------------
    def validate(self) -> "Config":
        """Check types, bounds and choices; raise ConfigError naming the field and the fix."""
        hints = _type_hints()
        for f in fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, value, hints[f.name])
            if value is not None:
                _check_rule(f.name, value, f.metadata)
        if self.gradient_steps == 0 or self.gradient_steps < -1:
            raise ConfigError(f"gradient_steps must be >= 1, or -1 for one per env step, got {self.gradient_steps}")
        if not (0 <= self.learning_rate_final <= self.learning_rate):
            raise ConfigError(f"learning_rate_final must be in [0, learning_rate], got {self.learning_rate_final}")
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size ({self.batch_size}) is larger than buffer_size ({self.buffer_size}); "
                              "lower batch_size or raise buffer_size")
        if self.distributional and (self.n_atoms < 2 or not self.v_min < self.v_max):
            raise ConfigError(f"C51 needs n_atoms >= 2 and v_min < v_max, got n_atoms={self.n_atoms}, "
                              f"v_min={self.v_min}, v_max={self.v_max}")
        for entry in self.env_wrapper:
            ok = isinstance(entry, str) or (isinstance(entry, dict) and len(entry) == 1
                                            and all(isinstance(k, str) and isinstance(v, dict) for k, v in entry.items()))
            if not ok:
                raise ConfigError(f"env_wrapper entry {entry!r} must be an import path 'module.Class' or a mapping "
                                  "{'module.Class': {kwargs}}")
        if self.noisy and self.exploration != "epsilon":
            raise ConfigError(f"noisy=true explores by its noise; exploration={self.exploration} would explore twice: "
                              "set exploration=epsilon (the default) or noisy=false")
        _check_policy_kwargs(self.policy_kwargs)
        _check_q_network(self)
        return self

    # --- conversions ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def net_arch(self) -> list[int]:
        return list(self.policy_kwargs.get("net_arch", [64, 64]))

    @property
    def layer_norm(self) -> bool:
        return bool(self.policy_kwargs.get("layer_norm", False))

    def learning_rate_at(self, env_step: int) -> float:
        """The step size at ``env_step`` (absolute env steps, like the epsilon schedule)."""
        if self.learning_rate_schedule == "constant":
            return self.learning_rate
        frac = min(1.0, env_step / max(1, self.total_timesteps))
        return self.learning_rate + frac * (self.learning_rate_final - self.learning_rate)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """A validated config from the defaults updated with ``values`` (field names; numbers as numbers or
        as YAML strings such as ``"5e4"``). rl-zoo spellings go through :func:`dqnkit.presets.zoo.normalise`."""
        unknown = [k for k in values if k not in FIELD_NAMES]
        if unknown:
            close = difflib.get_close_matches(unknown[0], FIELD_NAMES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; run `dqnkit train --help-config` for the list"
            raise ConfigError(f"unknown config key '{unknown[0]}'{hint}")
        data = cls().to_dict()
        data.update({k: coerce(k, v) for k, v in values.items()})
        return cls(**data).validate()

    @classmethod
    def docs(cls) -> dict[str, str]:
        return {f.name: f.metadata["doc"] for f in fields(cls)}


FIELD_NAMES = [f.name for f in fields(Config)]
POLICY_KWARGS = {"net_arch": None, "normalize_images": True, "layer_norm": False}  # key -> default


@functools.lru_cache(maxsize=1)
def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def _allowed_types(tp: Any) -> tuple[type, ...]:
    """``int | None`` -> (int, NoneType); ``float`` also admits int (not bool)."""
    parts = typing.get_args(tp) if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union else (tp,)
    out: list[type] = []
    for part in parts:
        part = typing.get_origin(part) or part
        out.append(part)
        if part is float:
            out.append(int)
    return tuple(out)


def _check_type(name: str, value: Any, tp: Any) -> None:
    allowed = _allowed_types(tp)
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok:
        wanted = " | ".join("None" if t is type(None) else t.__name__ for t in allowed if not (t is int and float in allowed))
        raise ConfigError(f"{name} must be of type {wanted}, got {value!r} ({type(value).__name__})")


def _check_rule(name: str, value: Any, meta: Any) -> None:
    choices = meta.get("choices")
    if choices is not None:
        if value in choices or (meta.get("prefix_ok") and any(value.startswith(c + ":") for c in choices)):
            return
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got '{value}'")
    lo, hi, lo_open = meta.get("lo"), meta.get("hi"), meta.get("lo_open")
    if lo is None and hi is None:
        return
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and value > hi
    if below or above or (isinstance(value, float) and not math.isfinite(value)):
        if meta.get("rule"):
            rule = meta["rule"]
        elif hi is None:
            rule = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            rule = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
        nullable = type(None) in _allowed_types(_type_hints()[name])
        raise ConfigError(f"{name} must be {rule}{' or null' if nullable else ''}, got {value}")


def _check_policy_kwargs(kwargs: dict) -> None:
    unknown = set(kwargs) - set(POLICY_KWARGS)
    if unknown:
        raise ConfigError(f"unknown policy_kwargs key(s) {sorted(unknown)}; dqnkit supports "
                          f"{', '.join(POLICY_KWARGS)}")
    net_arch = kwargs.get("net_arch", [64, 64])
    if not (isinstance(net_arch, (list, tuple)) and all(isinstance(h, int) and h > 0 for h in net_arch)):
        raise ConfigError(f"policy_kwargs.net_arch must be a list of positive ints, got {net_arch!r}")
    for key, default in POLICY_KWARGS.items():
        if isinstance(default, bool) and not isinstance(kwargs.get(key, default), bool):
            raise ConfigError(f"policy_kwargs.{key} must be true or false, got {kwargs[key]!r}")


def _check_q_network(cfg: Config) -> None:
    if cfg.q_network is None:
        if cfg.q_network_kwargs or cfg.features_dim is not None:
            raise ConfigError("q_network_kwargs and features_dim configure a custom q_network; set "
                              "q_network='package.module:Factory' or drop them")
        return
    if not is_import_path(cfg.q_network):
        raise ConfigError(f"q_network {cfg.q_network!r} is not an import path; write it as 'package.module:Factory'")
    try:
        json.dumps(cfg.q_network_kwargs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"q_network_kwargs must hold JSON values only (numbers, strings, lists, dicts), as they "
                          f"are stored in the run's files: {exc}") from None
    if cfg.q_network_role == "q_network":
        heads = [name for name in ("dueling", "noisy", "distributional") if getattr(cfg, name)]
        if heads:
            raise ConfigError(f"q_network_role=q_network makes {cfg.q_network} the whole Q-network, which leaves no "
                              f"head for {', '.join(heads)}; use q_network_role=torso (dqnkit's heads over your "
                              f"network) or turn {', '.join(heads)} off")
        if cfg.features_dim is not None:
            raise ConfigError("features_dim is the output size of a q_network torso; with q_network_role=q_network "
                              "the output size is n_actions: drop features_dim")


def coerce(key: str, value: Any) -> Any:
    """Accept YAML/CLI spellings: '5e4' or 5e4 for an int field, 'true' for a bool, 'null' for None."""
    allowed = _allowed_types(_type_hints()[key])
    if isinstance(value, str) and str not in allowed:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{key}: cannot parse {value!r}: {exc}") from None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
    if int in allowed and float not in allowed and isinstance(value, float) and value.is_integer():
        value = int(value)
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value
