"""The Q-table of a discretised 2-D state (``dqnkit tabular --bins``) as two maps over the state plane.

Left: the greedy action of every cell, one colour per action (grey: cells never updated, where every Q-value is
still equal). Right: ``max_a Q(s, a)`` as a heatmap (grey where never updated). The axes are the two observation dimensions over the bounds
the run cut (position and velocity on MountainCar-v0). Reads the run folder only (``tabular.json`` for the bins
and bounds, ``qtable.safetensors``); imports no torch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dqnkit.errors import CheckpointError, DqnkitError
from dqnkit.runfolder import TABULAR_FILE

# Names of the observation dimensions and actions of the classic-control envs (Gymnasium's docs).
DIMENSIONS = {"MountainCar": ("position", "velocity"), "Acrobot": None, "CartPole": None}
ACTIONS = {"MountainCar": ("push left", "no push", "push right"), "CartPole": ("push left", "push right"),
           "Acrobot": ("torque -1", "torque 0", "torque +1")}
UNVISITED = "#d9d9d9"


def discretisation(run: str | Path) -> dict[str, Any] | None:
    """``{"bins", "bounds", "env_id"}`` of a tabular run that cut a Box observation into cells, else None."""
    file = Path(run) / TABULAR_FILE
    if not file.is_file():
        return None
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file} is not valid JSON ({exc})") from None
    config = meta.get("config") or {}
    if config.get("bins") is None:
        return None
    return {"bins": list(config["bins"]), "bounds": [list(b) for b in config["bounds"]], "env_id": meta.get("env_id")}


def _family(env_id: str | None) -> str:
    return (env_id or "").split("-")[0]


def state_maps(q_table: np.ndarray, bins: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(greedy action, max Q) per cell, each of shape ``(bins[1], bins[0])`` (rows: dimension 1, for imshow);
    the greedy action is -1 where the row was never updated (all Q-values equal)."""
    q = np.asarray(q_table, dtype=np.float64)
    if len(bins) != 2 or q.shape[0] != bins[0] * bins[1]:
        raise DqnkitError(f"a state map needs 2-D states; this Q-table has {q.shape[0]} rows for bins {bins}")
    cells = q.reshape(bins[0], bins[1], q.shape[1])  # row s = (i0, i1), i1 fastest (ravel_multi_index)
    greedy = np.where(np.ptp(cells, axis=-1) > 0, cells.argmax(-1), -1)
    return greedy.T, cells.max(-1).T


def draw_qmap(q_table: np.ndarray, info: dict[str, Any], out_png: str | Path, *, learner: str | None = None,
              vmin: float | None = None, vmax: float | None = None) -> tuple[Path, str]:
    """Write the two maps to ``out_png``; returns (the PNG's path, a Markdown summary)."""
    bins, bounds, env_id = info["bins"], info["bounds"], info.get("env_id")
    if len(bins) != 2:
        raise DqnkitError(f"dqnkit policy draws a map for 2-D states; {env_id} was cut into {len(bins)} dimensions "
                          f"(bins {bins}): look at its Q-table with dqnkit.analysis.grid_layout.load_qtable")
    greedy, best = state_maps(q_table, bins)
    n_actions = int(np.asarray(q_table).shape[1])
    names = ACTIONS.get(_family(env_id)) or tuple(f"action {a}" for a in range(n_actions))
    names = names if len(names) == n_actions else tuple(f"action {a}" for a in range(n_actions))
    dims = DIMENSIONS.get(_family(env_id)) or ("obs[0]", "obs[1]")
    extent = [bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1]]
    fig = Figure(figsize=(11, 4.4))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    palette = ListedColormap([UNVISITED] + [f"C{a}" for a in range(n_actions)])
    left.imshow(greedy + 1, origin="lower", extent=extent, aspect="auto", cmap=palette, vmin=-0.5,
                vmax=n_actions + 0.5, interpolation="nearest")
    left.legend(handles=[Patch(color=f"C{a}", label=name) for a, name in enumerate(names)]
                + [Patch(color=UNVISITED, label="never updated")], loc="upper left", fontsize=8, framealpha=0.8)
    left.set_title("greedy action")
    heat = matplotlib.colormaps["viridis"].with_extremes(bad=UNVISITED)  # cells never updated: grey, not Q = 0
    image = right.imshow(np.where(greedy >= 0, best, np.nan), origin="lower", extent=extent, aspect="auto",
                         cmap=heat, vmin=vmin, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=right, label="max_a Q(s, a)")
    right.set_title("max Q")
    for ax in (left, right):
        ax.set_xlabel(dims[0])
        ax.set_ylabel(dims[1])
    heading = f"Greedy policy of {learner or 'Tabular Q-learning'} - {env_id} ({bins[0]} x {bins[1]} cells)"
    fig.suptitle(heading)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    visited = greedy >= 0
    shares = ", ".join(f"{name} {np.mean(greedy[visited] == a):.0%}" for a, name in enumerate(names)) \
        if visited.any() else "no cell updated"
    summary = (f"## {heading}\n\n{visited.mean():.0%} of the cells were updated; greedy action there: {shares}. "
               f"max Q from {best[visited].min() if visited.any() else 0:.4g} to "
               f"{best[visited].max() if visited.any() else 0:.4g}.\n")
    return out, summary
