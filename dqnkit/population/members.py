"""Who is in a population: seeds times a grid of settings, split into groups that can share tensors.

``--seeds 0-15`` and ``--grid learning_rate=1e-3,5e-4 --grid double_q=false,true`` give the cross product
of the grid's values times the seeds, one member each. Members of one group train in one batched network,
so they must agree on everything except :data:`MEMBER_KEYS` (settings with one value per member: learning
rate, gamma, exploration, tau, target interval, Double DQN, PER's alpha/beta, n-step, loss, clipping...).
Members that differ in any other setting (a shape such as ``net_arch``, ``dueling``, ``n_atoms``, or a
cadence such as ``train_freq``) go to separate groups, trained one after the other.
"""
from __future__ import annotations

import itertools
from typing import Any, NamedTuple, Sequence

import yaml

from dqnkit.config import FIELD_NAMES, Config
from dqnkit.errors import ConfigError
from dqnkit.presets.zoo import config_from_zoo

MEMBER_KEYS = frozenset({
    "seed", "learning_rate", "learning_rate_schedule", "learning_rate_final", "gamma", "exploration_schedule",
    "exploration_fraction", "exploration_initial_eps", "exploration_final_eps", "exploration_decay_env_steps",
    "exploration_episode_decay", "tau", "target_update_interval", "double_q", "alpha", "beta_initial",
    "priority_epsilon", "priority_clip", "n_step", "loss", "max_grad_norm", "grad_clip_value", "noisy_sigma0",
    "adam_eps", "weight_decay",
})


class Member(NamedTuple):
    name: str  # its run folder's name inside the population folder: "s3", or "double_q=true,learning_rate=0.001__s3"
    config: Config
    setting: dict  # the grid values that made it (empty without a grid)


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """``"0-15"``, ``"0,3,7"``, ``"0-3,10"`` or a sequence of ints -> a list of distinct seeds."""
    if not isinstance(text, str):
        seeds = [int(s) for s in text]
    else:
        seeds = []
        for part in text.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            try:
                seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
            except ValueError:
                raise ConfigError(f"--seeds {text!r}: write seeds like 0-15 or 0,3,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} must name at least one seed, each once")
    return seeds


def parse_grid(pairs: Sequence[str] | dict | None) -> dict[str, list]:
    """``["learning_rate=1e-3,5e-4", "double_q=false,true"]`` or a dict of lists -> {key: [values]}."""
    if not pairs:
        return {}
    if isinstance(pairs, dict):
        grid = {k: list(v) if isinstance(v, (list, tuple, range)) else [v] for k, v in pairs.items()}
    else:
        grid = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            if not sep or not raw:
                raise ConfigError(f"--grid expects key=value1,value2,..., got {pair!r}")
            values = []
            for text in _split_top_level(raw):
                try:
                    value = yaml.safe_load(text)
                except yaml.YAMLError:
                    raise ConfigError(f"--grid {key}: cannot read the value {text!r}; write values like "
                                      "1e-3,5e-4 or {net_arch: [64, 64]},{net_arch: [256]}") from None
                if isinstance(value, str):
                    try:  # YAML 1.1 reads "1e-3" as a string
                        value = float(value)
                    except ValueError:
                        pass
                values.append(value)
            grid[key] = values
    for key, values in grid.items():
        if key not in FIELD_NAMES:
            raise ConfigError(f"--grid key {key!r} is not a config field; run `dqnkit train --help-config`")
        if key == "seed":
            raise ConfigError("--grid seed=... is what --seeds does; use --seeds")
        if not values:
            raise ConfigError(f"--grid {key}= needs at least one value")
    return grid


def _split_top_level(text: str) -> list[str]:
    """Split on the commas that are not inside [...] or {...}."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def expand(base: dict, seeds: Sequence[int], grid: dict[str, list]) -> list[Member]:
    """One member per (grid setting, seed), each a validated config."""
    keys = sorted(grid)
    members = []
    for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        setting = dict(zip(keys, combo))
        label = ",".join(f"{k}={_fmt(v)}" for k, v in setting.items())
        for seed in seeds:
            cfg = config_from_zoo({**base, **setting, "seed": int(seed)})
            members.append(Member(f"{label}__s{seed}" if label else f"s{seed}", cfg, setting))
    return members


def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def group_key(cfg: Config) -> tuple:
    data = cfg.to_dict()
    return tuple((k, repr(data[k])) for k in FIELD_NAMES if k not in MEMBER_KEYS)


def split_groups(members: Sequence[Member]) -> list[list[Member]]:
    """Members in groups that agree on every setting outside :data:`MEMBER_KEYS` (order kept)."""
    groups: dict[tuple, list[Member]] = {}
    for member in members:
        groups.setdefault(group_key(member.config), []).append(member)
    return list(groups.values())


def describe_split(groups: Sequence[Sequence[Member]]) -> str:
    """One line per group: its size and the settings that set it apart from the others."""
    if len(groups) == 1:
        return f"one group of {len(groups[0])} members"
    dicts = [g[0].config.to_dict() for g in groups]
    differ = [k for k in FIELD_NAMES if k not in MEMBER_KEYS and len({repr(d[k]) for d in dicts}) > 1]
    lines = [f"{len(groups)} groups (members differ in {', '.join(differ)}, which change tensor shapes or "
             "cadences; each group trains as its own batch):"]
    for i, (g, d) in enumerate(zip(groups, dicts)):
        lines.append(f"  group {i + 1}: {len(g)} members, " + ", ".join(f"{k}={d[k]}" for k in differ))
    return "\n".join(lines)
