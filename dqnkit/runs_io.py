"""Read a run folder written by ``dqnkit train`` (CSV + YAML + JSON only; no torch).

A run folder holds ``config.yaml`` (resolved config), ``episodes.csv``, ``updates.csv``,
``eval.csv`` and optionally ``run.json``, checkpoints, TensorBoard events and videos.
Runs written by older versions may lack files or columns: :func:`load_run` records what
is missing in ``Run.notes`` and carries on, so plots and reports skip what they cannot draw.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import yaml

from dqnkit.errors import CheckpointError

__all__ = [
    "Run",
    "load_run",
    "group_runs",
    "flat_config",
    "variant_name",
    "EPISODE_COLUMNS",
    "UPDATE_COLUMNS",
    "EVAL_COLUMNS",
]

EPISODE_COLUMNS = ("env_step", "episode", "return", "length", "epsilon")
UPDATE_COLUMNS = ("update", "env_step", "loss", "mean_q", "td_abs_mean", "grad_norm", "learning_rate", "sps")
EVAL_COLUMNS = ("env_step", "mean_return", "std_return")

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
_IDENTITY_KEYS = {
    "out", "out_dir", "output", "output_dir", "run_dir", "runs_dir", "log_dir", "logdir",
    "run_name", "name", "exp_name", "experiment", "run_id", "tag", "tags", "notes",
    "device", "resume", "resume_from", "track", "wandb_project", "wandb_entity",
    "capture_video", "video", "save_video", "progress", "verbose", "verbosity",
    # bookkeeping that does not change what is learned
    "torch_threads", "tensorboard", "log_interval", "checkpoint_freq", "keep_checkpoints", "save_replay",
}


def _is_identity_key(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1].lower()
    return (
        leaf in _IDENTITY_KEYS
        or leaf == "seed"
        or leaf.endswith("_seed")
        or leaf.endswith("_dir")
        or leaf.endswith("_path")
        or "run_name" in leaf
    )


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts -> one level with dotted keys (``{"a": {"b": 1}} -> {"a.b": 1}``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _lookup(flat: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    if key in flat:
        return True, flat[key]
    for name, value in flat.items():  # "double_q" also finds "agent.double_q"
        if name.rsplit(".", 1)[-1] == key:
            return True, value
    return False, None


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def variant_name(config: Mapping[str, Any]) -> str:
    """A readable algorithm name from the config flags: "DQN", "Double+Dueling DQN", "Rainbow", ..."""
    flat = flat_config(config)
    if str(_lookup(flat, "algo")[1] or "").lower() == "tabular":
        return "Tabular Q-learning"

    def on(key: str) -> bool:
        return bool(_lookup(flat, key)[1])

    n_step = _lookup(flat, "n_step")[1]
    parts = []
    if on("double_q"):
        parts.append("Double")
    if on("dueling"):
        parts.append("Dueling")
    if on("prioritized_replay"):
        parts.append("PER")
    if isinstance(n_step, (int, float)) and n_step > 1:
        parts.append(f"{int(n_step)}-step")
    if on("noisy"):
        parts.append("Noisy")
    if on("distributional"):
        parts.append("C51")
    if len(parts) == 6:
        return "Rainbow"
    return " ".join(["+".join(parts), "DQN"]) if parts else "DQN"


def group_runs(runs: Iterable[Run], group_by: str | None = None) -> dict[str, list[Run]]:
    """Group runs (seeds of one setting) and label each group readably.

    ``group_by=None``: runs whose configs are equal once identity keys are removed (seed,
    out dir, run name, device, ...) form one group, labelled by its algorithm variant
    (:func:`variant_name`) plus, where that is not enough to tell groups apart, the config
    keys that differ (``"DQN (learning_rate=0.001)"``). ``group_by="double_q"``: one group
    per value of that config key (a dotted or leaf key), labelled ``"double_q=True"``; runs
    without the key go to ``"double_q=n/a"``. Groups keep the order of first appearance.
    """
    runs = list(runs)
    if group_by is not None:
        groups: dict[str, list[Run]] = {}
        for run in runs:
            found, value = _lookup(flat_config(run.config), group_by)
            label = f"{group_by}={_fmt(value) if found else 'n/a'}"
            groups.setdefault(label, []).append(run)
        return groups

    keyed: dict[Any, list[Run]] = {}
    flats: dict[Any, dict[str, Any]] = {}
    for run in runs:
        flat = {k: v for k, v in flat_config(run.config).items() if not _is_identity_key(k)}
        key = tuple(sorted((k, _hashable(v)) for k, v in flat.items()))
        keyed.setdefault(key, []).append(run)
        flats.setdefault(key, flat)

    names = {key: variant_name(members[0].config) for key, members in keyed.items()}
    all_keys = sorted({k for flat in flats.values() for k in flat})
    differing = [
        k for k in all_keys if len({_hashable(flat.get(k, "<missing>")) for flat in flats.values()}) > 1
    ]
    flag_keys = {"algo", "double_q", "dueling", "prioritized_replay", "n_step", "noisy", "distributional"}
    labels: dict[str, list[Run]] = {}
    for key, members in keyed.items():
        label = names[key]
        clash = sum(1 for other in names.values() if other == label) > 1
        if clash:
            flat = flats[key]
            extra = [
                f"{k}={_fmt(flat[k]) if k in flat else 'n/a'}"
                for k in differing
                if k.rsplit(".", 1)[-1] not in flag_keys
            ]
            if extra:
                label = f"{label} ({', '.join(extra[:4])}{', ...' if len(extra) > 4 else ''})"
        base, i = label, 2
        while label in labels:
            label, i = f"{base} #{i}", i + 1
        labels[label] = members
    return labels
