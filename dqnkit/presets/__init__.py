"""Tuned configs, one YAML file per preset, in rl-baselines3-zoo's format (env id -> hyperparameters)."""
from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from dqnkit.presets.zoo import select_zoo_entry
from dqnkit.errors import ConfigError

PRESET_DIR = Path(__file__).parent


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name, list_presets(), n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"unknown preset '{name}'{hint} (see `dqnkit presets`)")
    return path


def load_preset(name: str) -> dict:
    """The preset's hyperparameters as a flat dict (env_id included)."""
    data = yaml.safe_load(preset_path(name).read_text())
    return select_zoo_entry(data, None, source=f"preset {name}")


def preset_text(name: str) -> str:
    return preset_path(name).read_text()
