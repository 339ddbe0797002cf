"""Read a run folder written by ``dqnkit train`` (CSV + YAML + JSON only; no torch).

A run folder holds ``config.yaml`` (resolved config), ``episodes.csv``, ``updates.csv``,
``eval.csv`` and optionally ``run.json``, checkpoints, TensorBoard events and videos.
Runs written by older versions may lack files or columns: :func:`load_run` records what
is missing in ``Run.notes`` and carries on, so plots and reports skip what they cannot draw.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from dqnkit.errors import CheckpointError
from dqnkit.runfolder import EPISODE_COLUMNS, EVAL_COLUMNS, UPDATE_COLUMNS

__all__ = [
    "Run",
    "load_run",
    "format_value",
    "last_finite",
    "add_note",
]


log = logging.getLogger(__name__)

Table = dict[str, np.ndarray]

_FIX = "pass the folder that `dqnkit train` created under runs/"


@dataclass
class Run:
    """One run folder, read into memory.

    ``episodes``, ``updates`` and ``eval`` map column name -> 1-D NumPy array (float64 for
    numeric columns, str for a column that is not numeric); a table is ``None`` when its
    file is absent. ``notes`` lists what was missing or skipped, one short sentence each.
    """

    path: Path
    config: dict[str, Any]
    episodes: Table | None
    updates: Table | None
    eval: Table | None  # noqa: A003 (eval.csv)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # run.json, when present

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_tabular(self) -> bool:
        return str(self.config.get("algo", "")).lower() == "tabular"

    @property
    def env_id(self) -> str:
        return str(self.config.get("env_id", "?"))

    def column(self, table: str, name: str) -> np.ndarray | None:
        """``episodes``/``updates``/``eval`` column as float64, or None when absent or not numeric."""
        data = getattr(self, table)
        if data is None or name not in data or data[name].dtype.kind not in "fiub":
            return None
        return data[name].astype(np.float64, copy=False)


    def curve(self, table: str, column: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(env_step, values) of one column, finite points only; None if absent.

        Several rows at one env step (updates logged in bursts, e.g. train_freq > 1 with many gradient
        steps) become one point: the mean of those rows."""
        x = self.column(table, "env_step")
        y = self.column(table, column)
        if x is None or y is None:
            return None
        keep = np.isfinite(x) & np.isfinite(y)
        if not keep.any():
            return None
        x, y = x[keep], y[keep]
        if table == "updates" and np.unique(x).size < x.size:
            steps, inverse = np.unique(x, return_inverse=True)
            y = np.bincount(inverse, weights=y) / np.bincount(inverse)
            x = steps
        return x, y


def _not_a_run(folder: Path, why: str) -> CheckpointError:
    hint = ""
    if folder.is_dir():
        children = sorted(p.name for p in folder.iterdir() if p.is_dir() and _looks_like_run(p))
        if children:
            shown = ", ".join(children[:3]) + (", ..." if len(children) > 3 else "")
            hint = f" (it contains run folders: {shown}; pass one of them)"
    return CheckpointError(f"{folder} is not a dqnkit run folder ({why}); {_FIX}{hint}")


def _looks_like_run(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() or (folder / "episodes.csv").is_file()


def _parse_float(text: str) -> float:
    text = text.strip()
    if text == "":
        return math.nan
    return float(text)


def _read_csv(path: Path, expected: Iterable[str], notes: list[str]) -> Table:
    """Read a numeric CSV with a header into columns; tolerate partial lines and odd values."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))
    expected = tuple(expected)
    if not rows:
        notes.append(f"{path.name} is empty (no header)")
        return {name: np.empty(0) for name in expected}
    header = [h.strip() for h in rows[0]]
    body = []
    short = 0
    for row in rows[1:]:
        if not row or all(not cell.strip() for cell in row):
            continue
        if [c.strip() for c in row] == header:  # header repeated by an appending resume
            continue
        if len(row) != len(header):
            short += 1
            continue
        body.append(row)
    if short:
        notes.append(f"{path.name}: skipped {short} row(s) with the wrong number of fields (partial write?)")
    table: Table = {}
    for j, name in enumerate(header):
        if not name or name in table:
            continue
        cells = [row[j] for row in body]
        bad = 0
        try:  # fast path: every cell is a number
            values = np.array(cells, dtype=np.float64)
        except ValueError:
            values = np.empty(len(cells), dtype=np.float64)
            for i, cell in enumerate(cells):
                try:
                    values[i] = _parse_float(cell)
                except ValueError:
                    values[i] = math.nan
                    bad += 1
        if cells and bad == len(cells):
            table[name] = np.array([c.strip() for c in cells], dtype=str)
            if name in expected:
                notes.append(f"{path.name}: column '{name}' is not numeric; plots that need it are skipped")
            continue
        if bad:
            notes.append(f"{path.name}: {bad} unreadable value(s) in column '{name}' read as NaN")
        table[name] = values
    missing = [name for name in expected if name not in table]
    if missing:
        notes.append(
            f"{path.name} has no {', '.join(repr(m) for m in missing)} column(s) "
            "(older dqnkit?); what needs them is skipped"
        )
    return table


def load_run(path: str | Path, *, require_episodes: bool = True) -> Run:
    """Read a run folder.

    Raises :class:`~dqnkit.errors.CheckpointError` when ``path`` is not a run folder (no
    ``config.yaml`` and no ``episodes.csv``), and, unless ``require_episodes=False``, when
    no episode has finished yet. Everything else that is missing becomes a note.
    """
    folder = Path(path).expanduser()
    if folder.is_file() and folder.name in {"config.yaml", "episodes.csv", "run.json", "report.html"}:
        folder = folder.parent
    if not folder.exists():
        raise CheckpointError(f"run folder {folder} does not exist; {_FIX}")
    if not folder.is_dir():
        raise _not_a_run(folder, "it is a file, not a folder")
    if not _looks_like_run(folder):
        raise _not_a_run(folder, "no config.yaml or episodes.csv")

    notes: list[str] = []
    config: dict[str, Any] = {}
    config_path = folder / "config.yaml"
    if config_path.is_file():
        try:
            loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            notes.append(f"config.yaml could not be parsed ({type(exc).__name__}); config shown as empty")
            loaded = {}
        if isinstance(loaded, dict):
            config = loaded
        elif loaded is not None:
            notes.append("config.yaml is not a mapping; config shown as empty")
    else:
        notes.append("no config.yaml; config shown as empty")
    tabular_json = folder / "tabular.json"
    if tabular_json.is_file():
        try:
            info = json.loads(tabular_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            notes.append("tabular.json could not be parsed")
            info = {}
        if isinstance(info, dict):
            config.setdefault("algo", "tabular")
            if "env_id" in info:
                config.setdefault("env_id", info["env_id"])

    meta: dict[str, Any] = {}
    run_json = folder / "run.json"
    if run_json.is_file():
        try:
            parsed = json.loads(run_json.read_text(encoding="utf-8"))
            meta = parsed if isinstance(parsed, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            notes.append("run.json could not be parsed")

    def table(filename: str, expected: tuple[str, ...], absent_note: str | None) -> Table | None:
        file = folder / filename
        if not file.is_file():
            if absent_note:
                notes.append(absent_note)
            return None
        return _read_csv(file, expected, notes)

    episodes = table("episodes.csv", EPISODE_COLUMNS, None)
    tabular = str(config.get("algo", "")).lower() == "tabular"
    updates = table(
        "updates.csv",
        UPDATE_COLUMNS,
        "no updates.csv (tabular run): no loss, Q or speed curves"
        if tabular
        else "no updates.csv: loss, mean Q, TD error, gradient norm and env-steps/s plots skipped",
    )
    eval_table = table("eval.csv", EVAL_COLUMNS, "no eval.csv: greedy evaluation return not available")

    if episodes is not None and "env_step" not in episodes and "length" in episodes:
        episodes["env_step"] = np.cumsum(np.nan_to_num(episodes["length"]))
        notes.append("episodes.csv has no env_step column: env steps taken as the cumulative episode length")

    run = Run(folder, config, episodes, updates, eval_table, notes, meta)
    n_episodes = 0 if episodes is None else max((len(v) for v in episodes.values()), default=0)
    if require_episodes and n_episodes == 0:
        where = "episodes.csv is missing" if episodes is None else "episodes.csv has no rows"
        raise CheckpointError(
            f"{folder} has no finished episodes yet ({where}); "
            "train longer or wait for the first episode to end"
        )
    return run


# --------------------------------------------------------------------------- grouping

# Keys that name or place a run rather than change what it learns.


def format_value(value: Any, spec: str = "g") -> str:
    """A value for a table or a label: floats with ``spec`` ("n/a" when missing or not finite), others as str."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return format(float(value), spec)
    return str(value)


def add_note(notes: list[str], text: str) -> None:
    """Append ``text`` to ``notes`` once (and log it at INFO level)."""
    if text not in notes:
        notes.append(text)
        log.info("%s", text)


def last_finite(values: np.ndarray | None) -> float | None:
    """The last finite value of a column, or None."""
    if values is None:
        return None
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None
