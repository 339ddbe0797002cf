"""One typed, validated config per run.

Hyperparameter names follow Stable-Baselines3's DQN wherever it has one, so that an
rl-baselines3-zoo ``dqn.yml`` entry loads unchanged. Every field carries a one-line doc
(shown by ``dqnkit train --help-config``) that states its unit: env steps (transitions
summed over all vector envs), episodes, or gradient updates.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dqnkit.errors import ConfigError


def _f(default: Any, doc: str, **kw: Any) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc, **kw})
    return field(default=default, metadata={"doc": doc, **kw})


@dataclass
class Config:
    # --- environment and run -------------------------------------------------------------
    env_id: str = _f("CartPole-v1", "Gymnasium environment id (Discrete action space).")
    env_kwargs: dict = _f({}, "Keyword arguments passed to gymnasium.make.")
    env_wrapper: list = _f([], "Wrappers applied to each env, innermost first (rl-zoo's env_wrapper): import paths "
                               "'module.Class' or 'module:Class', or {path: {kwargs}}, e.g. "
                               "minigrid.wrappers.ImgObsWrapper.")
    total_timesteps: int = _f(50_000, "Training budget in env steps (summed over all vector envs).")
    num_envs: int = _f(1, "Number of environments stepped in lockstep (SyncVectorEnv).")
    seed: int = _f(0, "Seed for envs, networks, replay sampling and exploration.")
    device: str = _f("auto", "Torch device: auto | cpu | cuda | mps (auto picks cuda, then mps, then cpu).")
    torch_threads: int = _f(1, "Torch intra-op threads on CPU (1 is fastest for small nets on 2 cores; 0 = torch default).")
    # --- replay --------------------------------------------------------------------------
    buffer_size: int = _f(1_000_000, "Replay capacity in transitions.")
    learning_starts: int = _f(100, "Env steps of random actions before learning; the first training round "
                                   "comes at the first train_freq multiple past it (as in SB3).")
    batch_size: int = _f(32, "Transitions per gradient update.")
    # --- learner -------------------------------------------------------------------------
    learning_rate: float = _f(1e-4, "Optimizer step size (at env step 0 when learning_rate_schedule is linear; "
                                    "rl-zoo's 'lin_2.3e-3' sets both).")
    learning_rate_schedule: str = _f("constant", "constant | linear: decays to learning_rate_final at "
                                                  "total_timesteps (env steps, so resuming keeps it).")
    learning_rate_final: float = _f(0.0, "linear schedule: step size at total_timesteps.")
    gamma: float = _f(0.99, "Discount factor per env step.")
    train_freq: int = _f(4, "Env steps between training rounds (SB3's train_freq in steps; [n, 'step'] accepted).")
    gradient_steps: int = _f(1, "Gradient updates per training round; -1 = one per env step collected in the round.")
    target_update_interval: int = _f(10_000, "Env steps between target-network syncs.")
    tau: float = _f(1.0, "Target sync coefficient: 1.0 = hard copy, <1 = Polyak average target <- tau*online + (1-tau)*target.")
    loss: str = _f("huber", "TD loss: huber (smooth L1, delta 1) | mse.")
    optimizer: str = _f("adam", "Optimizer: adam | adamw | rmsprop.")
    amsgrad: bool = _f(False, "Use the AMSGrad variant (adam/adamw).")
    adam_eps: float = _f(1e-8, "Epsilon of Adam/AdamW/RMSprop denominators.")
    weight_decay: float = _f(0.0, "Weight decay (decoupled for adamw).")
    max_grad_norm: float | None = _f(10.0, "Clip the global gradient L2 norm to this (null disables).")
    grad_clip_value: float | None = _f(None, "Clip each gradient element to [-v, v] (null disables).")
    policy_kwargs: dict = _f({"net_arch": [64, 64]}, "Network options: net_arch = hidden layer sizes of the MLP torso; "
                                                      "normalize_images (default true) = scale uint8 [0, 255] "
                                                      "observations to [0, 1] before the MLP; layer_norm (default "
                                                      "false) = LayerNorm after each hidden layer (PQN).")
    # --- exploration ---------------------------------------------------------------------
    exploration_schedule: str = _f("linear", "Epsilon schedule: linear | exponential | multiplicative.")
    exploration_fraction: float = _f(0.1, "linear: fraction of total_timesteps over which epsilon decays.")
    exploration_initial_eps: float = _f(1.0, "Epsilon at env step 0.")
    exploration_final_eps: float = _f(0.05, "Epsilon floor.")
    exploration_decay_env_steps: float = _f(1000.0, "exponential: eps = final + (initial-final) * exp(-env_step / this).")
    exploration_episode_decay: float = _f(0.995, "multiplicative: eps <- max(final, eps * this) after each episode.")
    # --- Rainbow-family options (defaults give plain DQN) --------------------------------
    double_q: bool = _f(False, "Double DQN: online net picks argmax at s', target net evaluates it (van Hasselt 2016).")
    dueling: bool = _f(False, "Dueling head: Q = V + A - mean(A) (Wang et al. 2016).")
    prioritized_replay: bool = _f(False, "Proportional prioritized replay (Schaul et al. 2016).")
    alpha: float = _f(0.6, "PER: priority exponent.")
    beta_initial: float = _f(0.4, "PER: importance-sampling exponent at env step 0, annealed linearly to 1 at total_timesteps.")
    priority_epsilon: float = _f(1e-6, "PER: added to |TD| before exponentiation.")
    priority_clip: float | None = _f(None, "PER: clip |TD| (C51: the per-sample loss) to this before it becomes a priority; "
                                           "Schaul et al.'s Atari agent used 1. null = no clip. Bounds priority outliers "
                                           "when rewards are not clipped.")
    n_step: int = _f(1, "Multi-step return length in env steps (computed at sample time).")
    noisy: bool = _f(False, "Factorised NoisyLinear layers in the head (Fortunato et al. 2018); turns epsilon-greedy off.")
    noisy_sigma0: float = _f(0.5, "NoisyNet: initial sigma_0 of the factorised noise.")
    distributional: bool = _f(False, "C51 categorical value distribution (Bellemare et al. 2017).")
    n_atoms: int = _f(51, "C51: number of support atoms.")
    v_min: float = _f(-10.0, "C51: lowest support value.")
    v_max: float = _f(10.0, "C51: highest support value.")
    # --- pixels and Atari preprocessing (Machado et al. 2018 protocol names) -------------
    torso: str = _f("auto", "Feature extractor: auto (nature_cnn for image observations, else mlp) | mlp | nature_cnn.")
    frame_stack: int = _f(1, "Frames stacked into one observation (Atari: 4); replay stores each frame once.")
    noop_max: int = _f(30, "Atari: up to this many no-op actions after reset (Mnih et al. 2015).")
    frame_skip: int = _f(4, "Atari: emulator frames per agent step, max-pooled over the last two.")
    screen_size: int = _f(84, "Atari: observations resized to screen_size x screen_size grayscale.")
    terminal_on_life_loss: bool = _f(True, "Atari: a lost life ends the bootstrap for learning (reported returns span the game).")
    clip_rewards: bool = _f(True, "Atari: learn from sign(reward); reported returns stay unclipped.")
    fire_reset: bool = _f(True, "Atari: press FIRE after reset in games that need it.")
    sticky_action_prob: float = _f(0.25, "Atari: probability the previous action repeats (ALE v5 default 0.25; Nature 0).")
    max_episode_frames: int = _f(108_000, "Atari: episode truncated after this many emulator frames (30 min of play).")
    # --- evaluation, logging, checkpoints ------------------------------------------------
    eval_freq: int = _f(10_000, "Env steps between greedy evaluations (0 disables periodic evaluation).")
    eval_episodes: int = _f(10, "Episodes per greedy evaluation.")
    checkpoint_freq: int = _f(25_000, "Env steps between checkpoints (0 = only at the end).")
    keep_checkpoints: int = _f(3, "Keep this many latest step checkpoints (plus best and last).")
    log_interval: int = _f(100, "Gradient updates between rows of updates.csv.")
    save_replay: bool = _f(False, "Include the replay buffer in checkpoints (exact resume).")
    video_every: int = _f(0, "Env steps between videos of one greedy episode in run/videos (0 = none; needs the video extra).")
    tensorboard: bool = _f(True, "Write TensorBoard event files into the run folder.")

    # ------------------------------------------------------------------------------------
    def validate(self) -> "Config":
        """Check types and ranges; raise ConfigError naming the field and the fix."""
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        positive_ints = ["total_timesteps", "num_envs", "buffer_size", "batch_size", "train_freq",
                         "target_update_interval", "eval_episodes", "n_step", "n_atoms", "log_interval",
                         "keep_checkpoints"]
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ["learning_starts", "eval_freq", "checkpoint_freq", "torch_threads", "video_every"]:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not (0 <= self.learning_rate_final <= self.learning_rate):
            raise ConfigError(f"learning_rate_final must be in [0, learning_rate], got {self.learning_rate_final}")
        if self.gradient_steps == 0 or self.gradient_steps < -1:
            raise ConfigError(f"gradient_steps must be >= 1, or -1 for one per env step, got {self.gradient_steps}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"tau must be in (0, 1] (1 = hard copy), got {self.tau}")
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size ({self.batch_size}) is larger than buffer_size ({self.buffer_size}); "
                              "lower batch_size or raise buffer_size")
        for name in ["exploration_initial_eps", "exploration_final_eps"]:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.exploration_fraction <= 1.0:
            raise ConfigError(f"exploration_fraction must be in (0, 1], got {self.exploration_fraction}")
        if self.exploration_decay_env_steps <= 0:
            raise ConfigError(f"exploration_decay_env_steps must be > 0, got {self.exploration_decay_env_steps}")
        if not 0.0 < self.exploration_episode_decay <= 1.0:
            raise ConfigError(f"exploration_episode_decay must be in (0, 1], got {self.exploration_episode_decay}")
        _check_choice("loss", self.loss, ["huber", "mse"])
        _check_choice("learning_rate_schedule", self.learning_rate_schedule, ["constant", "linear"])
        _check_choice("optimizer", self.optimizer, ["adam", "adamw", "rmsprop"])
        _check_choice("exploration_schedule", self.exploration_schedule, ["linear", "exponential", "multiplicative"])
        _check_choice("device", self.device, ["auto", "cpu", "cuda", "mps"], prefix_ok=True)
        _check_choice("torso", self.torso, ["auto", "mlp", "nature_cnn"])
        for name in ["frame_stack", "frame_skip", "screen_size", "max_episode_frames"]:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.noop_max < 0:
            raise ConfigError(f"noop_max must be >= 0, got {self.noop_max}")
        if not 0.0 <= self.sticky_action_prob <= 1.0:
            raise ConfigError(f"sticky_action_prob must be in [0, 1], got {self.sticky_action_prob}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm must be > 0 or null, got {self.max_grad_norm}")
        if self.grad_clip_value is not None and self.grad_clip_value <= 0:
            raise ConfigError(f"grad_clip_value must be > 0 or null, got {self.grad_clip_value}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.beta_initial <= 1.0:
            raise ConfigError(f"beta_initial must be in [0, 1], got {self.beta_initial}")
        if self.priority_epsilon <= 0:
            raise ConfigError(f"priority_epsilon must be > 0, got {self.priority_epsilon}")
        if self.priority_clip is not None and self.priority_clip <= 0:
            raise ConfigError(f"priority_clip must be > 0 or null, got {self.priority_clip}")
        if self.noisy_sigma0 < 0:
            raise ConfigError(f"noisy_sigma0 must be >= 0, got {self.noisy_sigma0}")
        if self.distributional and (self.n_atoms < 2 or not self.v_min < self.v_max):
            raise ConfigError(f"C51 needs n_atoms >= 2 and v_min < v_max, got n_atoms={self.n_atoms}, "
                              f"v_min={self.v_min}, v_max={self.v_max}")
        if _normalise_wrappers(self.env_wrapper) != self.env_wrapper:
            raise ConfigError(f"env_wrapper must be a list of import paths or {{path: kwargs}} mappings, "
                              f"got {self.env_wrapper!r}")
        net_arch = self.policy_kwargs.get("net_arch", [64, 64])
        unknown = set(self.policy_kwargs) - {"net_arch", "normalize_images", "layer_norm"}
        if unknown:
            raise ConfigError(f"unknown policy_kwargs key(s) {sorted(unknown)}; dqnkit supports net_arch, "
                              "normalize_images and layer_norm")
        for key, default in (("normalize_images", True), ("layer_norm", False)):
            if not isinstance(self.policy_kwargs.get(key, default), bool):
                raise ConfigError(f"policy_kwargs.{key} must be true or false, got {self.policy_kwargs[key]!r}")
        if not (isinstance(net_arch, (list, tuple)) and all(isinstance(h, int) and h > 0 for h in net_arch)):
            raise ConfigError(f"policy_kwargs.net_arch must be a list of positive ints, got {net_arch!r}")
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
    def from_dict(cls, values: dict, base: "Config | None" = None) -> "Config":
        """Build a validated config from ``base`` (defaults if None) updated with ``values``."""
        data = (base or cls()).to_dict()
        data.update(_normalise_keys(values))
        return cls(**data).validate()

    @classmethod
    def docs(cls) -> dict[str, str]:
        return {f.name: f.metadata["doc"] for f in fields(cls)}


FIELD_NAMES = [f.name for f in fields(Config)]

# rl-baselines3-zoo keys with a different name here, and zoo keys that carry no meaning for us.
_ZOO_RENAMES = {"n_timesteps": "total_timesteps", "n_envs": "num_envs", "env": "env_id"}
_ZOO_IGNORED = {"policy", "optimize_memory_usage", "replay_buffer_class", "replay_buffer_kwargs"}
# The zoo's AtariWrapper is what dqnkit applies to every ALE/ env anyway.
_ZOO_ATARI_WRAPPERS = {"stable_baselines3.common.atari_wrappers.AtariWrapper"}


def _normalise_keys(values: dict) -> dict:
    out: dict = {}
    for key, value in values.items():
        key = _ZOO_RENAMES.get(key, key)
        if key in _ZOO_IGNORED:
            continue
        if key not in FIELD_NAMES:
            close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; run `dqnkit train --help-config` for the list"
            raise ConfigError(f"unknown config key '{key}'{hint}")
        if key == "policy_kwargs" and isinstance(value, str):
            value = _parse_policy_kwargs(value)
        if key == "env_wrapper":
            value = _normalise_wrappers(value)
        if key == "learning_rate" and isinstance(value, str) and value.startswith("lin_"):
            # rl-zoo / SB3: "lin_X" = linear decay from X to 0 over the run
            out["learning_rate_schedule"], out["learning_rate_final"] = "linear", 0.0
            value = value[len("lin_"):]
        if key == "train_freq" and isinstance(value, (list, tuple)):
            if len(value) != 2 or value[1] != "step":
                raise ConfigError(f"train_freq {value!r} is not supported; use an int or [n, 'step'] (env steps)")
            value = value[0]
        out[key] = _coerce(key, value)
    return out


def _normalise_wrappers(value: Any) -> list:
    """rl-zoo spells env_wrapper as one path, a list of paths, or a list of {path: kwargs}."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list = []
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            (path, kwargs), = item.items()
            if isinstance(path, str) and isinstance(kwargs, (dict, type(None))):
                if path not in _ZOO_ATARI_WRAPPERS:
                    out.append({path: dict(kwargs or {})})
                continue
        elif isinstance(item, str):
            if item not in _ZOO_ATARI_WRAPPERS:
                out.append(item)
            continue
        raise ConfigError(f"env_wrapper entry {item!r} must be an import path 'module.Class' or a mapping "
                          "{'module.Class': {kwargs}}")
    return out


def _parse_policy_kwargs(text: str) -> dict:
    """Parse the zoo's ``"dict(net_arch=[256, 256])"`` safely (literals only, no eval)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
            return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        value = ast.literal_eval(node)
        if isinstance(value, dict):
            return value
    except (SyntaxError, ValueError):
        pass
    raise ConfigError(f"policy_kwargs {text!r} must be a mapping like dict(net_arch=[256, 256]) with literal values")


def _coerce(key: str, value: Any) -> Any:
    """Accept YAML/CLI spellings: '5e4' or 5e4 for an int field, 'true' for a bool, 'null' for None."""
    ftype = Config.__dataclass_fields__[key].type
    if isinstance(value, str) and ftype != "str":
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{key}: cannot parse {value!r}: {exc}") from None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
    if ftype == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if ftype.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def _check_type(name: str, value: Any, ftype: str) -> None:
    ok = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "float | None": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
    }[ftype](value)
    if not ok:
        raise ConfigError(f"{name} must be of type {ftype}, got {value!r} ({type(value).__name__})")


def _check_choice(name: str, value: str, choices: list[str], prefix_ok: bool = False) -> None:
    if value in choices or (prefix_ok and any(value.startswith(c + ":") for c in choices)):
        return
    raise ConfigError(f"{name} must be one of {', '.join(choices)}; got '{value}'")


def parse_overrides(pairs: list[str]) -> dict:
    """``["learning_rate=1e-3", "policy_kwargs.net_arch=[64,64]"]`` -> nested dict of YAML-parsed values."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        key, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string
                value = float(value)
            except ValueError:
                pass
        if "." in key:
            outer, inner = key.split(".", 1)
            out.setdefault(outer, {})[inner] = value
        else:
            out[key] = value
    return out


def read_config_file(path: str | Path, env_id: str | None = None) -> dict:
    """Read our flat config.yaml, or a zoo-style file keyed by env id (choose one with env_id)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass a path to a YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of config keys")
    return select_zoo_entry(data, env_id, source=str(path))


def select_zoo_entry(data: dict, env_id: str | None, source: str) -> dict:
    """A zoo file maps env ids to hyperparameters; a flat file maps config keys to values."""
    nested = {k: v for k, v in data.items() if isinstance(v, dict) and k not in FIELD_NAMES}
    if not nested:
        return dict(data)
    if env_id is not None and env_id in nested:
        chosen = env_id
    elif len(nested) == 1 and env_id is None:
        chosen = next(iter(nested))
    else:
        raise ConfigError(f"{source} has entries for {sorted(nested)}; choose one with --env ID")
    entry = dict(nested[chosen])
    if chosen != "atari":
        entry.setdefault("env_id", chosen)
    return entry
