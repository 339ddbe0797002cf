"""What a run folder holds, and how files get into it. Torch-free: the tabular learner and the analysis
code use it too.

A run folder (``dqnkit train``, ``dqnkit tabular``)::

    config.yaml      the resolved config
    episodes.csv     EPISODE_COLUMNS, one row per finished training episode
    updates.csv      UPDATE_COLUMNS, one row every log_interval gradient updates (DQN runs)
    eval.csv         EVAL_COLUMNS, one row per greedy evaluation
    run.json         status, counters, versions (DQN runs)
    actors.csv       ACTOR_COLUMNS, Ape-X runs only (--distributed ray): per-actor rates, restarts, weight lag
    checkpoints/     DQN checkpoints (dqnkit.training.checkpoint)
    qtable.safetensors, tabular.json   a tabular run's Q-table and state (dqnkit.tabular.learner)

Every file that must never be seen half-written goes through :func:`atomic_write`: a temporary file in
the same folder, flushed and fsync'd, renamed over the target, then the folder fsync'd. NumPy generator
states go to JSON through :func:`generator_state`, which writes the 128-bit integers as strings (safe for
any JSON reader) and reads back both that and the plain-integer form older run folders hold.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "config.yaml"
EPISODES_FILE, UPDATES_FILE, EVAL_FILE = "episodes.csv", "updates.csv", "eval.csv"
RUN_INFO_FILE = "run.json"
CHECKPOINTS_DIR = "checkpoints"
QTABLE_FILE, QTABLE_KEY, TABULAR_FILE = "qtable.safetensors", "q_table", "tabular.json"
PLOTS_DIR, VIDEOS_DIR, REPORT_FILE = "plots", "videos", "report.html"

EPISODE_COLUMNS = ("env_step", "episode", "return", "length", "epsilon")
UPDATE_COLUMNS = ("update", "env_step", "loss", "mean_q", "td_abs_mean", "grad_norm", "learning_rate", "sps")
EVAL_COLUMNS = ("env_step", "mean_return", "std_return")
ACTORS_FILE = "actors.csv"  # Ape-X runs (dqnkit.distributed): one row per actor every few seconds
ACTOR_COLUMNS = ("env_step", "wall_s", "actor", "epsilon", "env_steps", "env_steps_per_s", "episodes", "chunks",
                 "dropped_chunks", "restarts", "weight_lag", "alive")
CSV_COLUMNS = {EPISODES_FILE: EPISODE_COLUMNS, UPDATES_FILE: UPDATE_COLUMNS, EVAL_FILE: EVAL_COLUMNS}


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask_mode(path: str | os.PathLike, base: int = 0o666) -> None:
    """Give ``path`` the mode the umask gives a new file (``base`` 0o666) or folder (0o777), as ``open`` and
    ``mkdir`` would; for files made by ``tempfile`` (0o600, 0o700) or by libraries that choose their own mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, base & ~umask)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text as UTF-8) so that a crash leaves the old file or the new one.

    The file gets the permissions the umask gives a new file, like ``open(path, "w")``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        umask_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write(path, json.dumps(data, indent=1) + "\n")


def truncate_csv(path: Path, max_env_step: int) -> None:
    """Drop the rows logged after ``max_env_step`` (those after the checkpoint a run resumes from)."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    col = header.index("env_step")
    kept = [r for r in body if r and int(float(r[col])) <= max_env_step]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(kept)
    atomic_write(path, buf.getvalue())


def generator_state(rng: np.random.Generator) -> dict:
    """The JSON-able state of a NumPy generator: its bit generator's state with every integer that does not
    fit a JSON double exactly (PCG64's 128-bit words) written as a decimal string."""
    return _encode(rng.bit_generator.state)


def set_generator_state(rng: np.random.Generator, state: dict) -> None:
    """Inverse of :func:`generator_state`; also takes the raw ``bit_generator.state`` dict."""
    rng.bit_generator.state = _decode(state)


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and abs(int(value)) >= 2**53:
        return str(int(value))
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value
