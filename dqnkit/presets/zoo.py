"""rl-baselines3-zoo's spellings, config files and ``--set`` overrides -> dqnkit config values.

A zoo ``dqn.yml`` maps env ids to hyperparameters in Stable-Baselines3's names; :func:`normalise`
turns one entry into :class:`dqnkit.config.Config` field values: ``n_timesteps``/``n_envs``/``env``
renamed, keys with no meaning here dropped, ``policy_kwargs: "dict(net_arch=[256, 256])"`` parsed (with
``ast``, never evaluated), ``learning_rate: lin_X`` read as a linear schedule, ``train_freq: [n, 'step']``
read as n env steps, and ``env_wrapper`` in any of the zoo's forms. The presets in this folder are zoo
files, so everything that reads a preset, a config file or an override goes through here.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from dqnkit.config import FIELD_NAMES, Config
from dqnkit.errors import ConfigError

ZOO_RENAMES = {"n_timesteps": "total_timesteps", "n_envs": "num_envs", "env": "env_id"}
ZOO_IGNORED = {"policy", "optimize_memory_usage", "replay_buffer_class", "replay_buffer_kwargs"}
# The zoo's AtariWrapper is what dqnkit applies to every ALE/ env anyway.
ZOO_ATARI_WRAPPERS = {"stable_baselines3.common.atari_wrappers.AtariWrapper"}


def normalise(values: dict) -> dict:
    """Config field values from a zoo entry (or from values already in dqnkit's spelling, unchanged)."""
    out: dict = {}
    for key, value in values.items():
        key = ZOO_RENAMES.get(key, key)
        if key in ZOO_IGNORED:
            continue  # unknown keys are left for Config.from_dict to name
        if key == "policy_kwargs" and isinstance(value, str):
            value = parse_policy_kwargs(value)
        if key == "env_wrapper":
            value = normalise_wrappers(value)
        if key == "learning_rate" and isinstance(value, str) and value.startswith("lin_"):
            # rl-zoo / SB3: "lin_X" = linear decay from X to 0 over the run
            out["learning_rate_schedule"], out["learning_rate_final"] = "linear", 0.0
            value = value[len("lin_"):]
        if key == "train_freq" and isinstance(value, (list, tuple)):
            if len(value) != 2 or value[1] != "step":
                raise ConfigError(f"train_freq {value!r} is not supported; use an int or [n, 'step'] (env steps)")
            value = value[0]
        out[key] = value
    return out


def config_from_zoo(values: dict) -> Config:
    """A validated :class:`Config` from a zoo entry, a preset, or plain field values."""
    return Config.from_dict(normalise(values))


def normalise_wrappers(value: Any) -> list:
    """rl-zoo spells env_wrapper as one path, a list of paths, or a list of {path: kwargs}."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list = []
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            (path, kwargs), = item.items()
            if isinstance(path, str) and isinstance(kwargs, (dict, type(None))):
                if path not in ZOO_ATARI_WRAPPERS:
                    out.append({path: dict(kwargs or {})})
                continue
        elif isinstance(item, str):
            if item not in ZOO_ATARI_WRAPPERS:
                out.append(item)
            continue
        raise ConfigError(f"env_wrapper entry {item!r} must be an import path 'module.Class' or a mapping "
                          "{'module.Class': {kwargs}}")
    return out


def parse_policy_kwargs(text: str) -> dict:
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
