"""Reading a population folder: ``population.json`` and its member run folders. Torch-free."""
from __future__ import annotations

import json
from pathlib import Path

from dqnkit.errors import CheckpointError

POPULATION_FILE = "population.json"
FORMAT, VERSION = "dqnkit.population", 1


def is_population(path: str | Path) -> bool:
    return (Path(path) / POPULATION_FILE).is_file()


def member_folders(path: str | Path) -> list[Path]:
    """The member run folders of a population folder, in training order."""
    info = read_population(path)
    return [Path(path) / name for group in info["groups"] for name in group["members"]]


def read_population(path: str | Path) -> dict:
    file = Path(path) / POPULATION_FILE
    try:
        info = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file} cannot be read ({exc}); pass a folder written by `dqnkit train --seeds`") from None
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise CheckpointError(f"{file} is not a dqnkit population file of version {VERSION}")
    return info


def expand_runs(paths: list[Path]) -> list[Path]:
    """Population folders replaced by their member run folders (for compare and plot)."""
    out: list[Path] = []
    for path in paths:
        out += member_folders(path) if is_population(path) else [Path(path)]
    return out
