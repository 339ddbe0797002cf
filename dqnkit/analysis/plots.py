"""Training curves and run comparisons as PNG files, drawn from the run folders' CSV files.

No torch and no pyplot: figures are ``matplotlib.figure.Figure`` objects printed by the Agg
canvas (``FigureCanvasAgg``), so this works headless, leaves the caller's matplotlib
backend alone, and keeps no global figure state.

- :func:`plot_runs`: one PNG per metric against env steps (episode return with its
  100-episode moving average, greedy evaluation return, loss, mean Q, epsilon, env-steps/s,
  ...). Seeds of one config are drawn as their mean with a 95% bootstrap band.
- :func:`compare_runs`: groups of runs overlaid (evaluation return, training return
  moving average) plus ``comparison.md`` / ``comparison.csv`` with the final greedy
  return per group (mean, IQM, 95% bootstrap CI, number of seeds).
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from dqnkit.analysis.groups import group_runs, variant_name
from dqnkit.analysis.runs import Run, format_value, last_finite, load_run
from dqnkit.analysis.stats import aggregate_curves, bootstrap_ci, iqm, moving_average

__all__ = ["plot_runs", "compare_runs", "PlotResult", "FIGSIZE_IN", "DPI"]

log = logging.getLogger(__name__)

FIGSIZE_IN = (8.0, 4.5)
DPI = 100  # PNGs are 800 x 450 pixels
EPISODE_WINDOW = 100


class PlotResult(list):
    """The written PNG paths (a ``list[Path]``), with ``.notes``: what was skipped and why."""

    def __init__(self, paths: Iterable[Path] = (), notes: Iterable[str] = ()):
        super().__init__(paths)
        self.notes: list[str] = list(notes)


@dataclass(frozen=True)
class _Metric:
    filename: str
    table: str  # "episodes" | "updates" | "eval"
    column: str
    title: str
    ylabel: str
    smooth: str  # "episodes": 100-episode MA; "points": MA over log rows; "none"
    optional: bool = False  # no note even when the column holds no finite value
    only_if_varies: bool = False


METRICS: tuple[_Metric, ...] = (
    _Metric("return.png", "episodes", "return", "Training episode return", "episode return", "episodes"),
    _Metric("eval_return.png", "eval", "mean_return", "Greedy evaluation return", "mean return", "none"),
    _Metric("length.png", "episodes", "length", "Episode length", "env steps per episode", "episodes", True),
    _Metric("loss.png", "updates", "loss", "TD loss", "loss", "points"),
    _Metric("mean_q.png", "updates", "mean_q", "Mean Q-value of sampled actions", "Q", "points"),
    _Metric("td_abs.png", "updates", "td_abs_mean", "Mean |TD error|", "|TD error|", "points", True),
    _Metric("grad_norm.png", "updates", "grad_norm", "Gradient norm (before clipping)", "norm", "points", True),
    _Metric("epsilon.png", "episodes", "epsilon", "Exploration rate epsilon", "epsilon", "none"),
    _Metric("learning_rate.png", "updates", "learning_rate", "Learning rate", "learning rate", "none", True, True),
    _Metric("sps.png", "updates", "sps", "Throughput", "env steps / s", "points"),
)


# --------------------------------------------------------------------------- helpers


def _as_runs(run_paths: Any, notes: list[str]) -> list[Run]:
    if isinstance(run_paths, (str, Path, Run)):
        run_paths = [run_paths]
    runs = [p if isinstance(p, Run) else load_run(p) for p in run_paths]
    if not runs:
        raise ValueError("no run folders given")
    names = [r.name for r in runs]
    for run in runs:
        # Two folders may share a name (runs/a/seed1, runs/b/seed1): then say more.
        who = run.name if names.count(run.name) == 1 else str(run.path)
        for note in run.notes:
            _note(notes, f"{who}: {note}")
    return runs


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)
        log.info("%s", text)


def _new_figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=DPI, format="png")
    tmp.replace(path)
    return path


def _style_axes(ax: Any, title: str, ylabel: str, runs: Sequence[Run]) -> None:
    envs = sorted({r.env_id for r in runs if r.config.get("env_id")})
    ax.set_title(f"{title} - {envs[0]}" if len(envs) == 1 else title)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(True, alpha=0.3)


def _smooth(y: np.ndarray, how: str) -> tuple[np.ndarray, str]:
    if how == "episodes":
        return moving_average(y, EPISODE_WINDOW), f"{EPISODE_WINDOW}-episode moving average"
    if how == "points":
        window = max(1, min(50, len(y) // 20))
        if window > 1:
            return moving_average(y, window), f"moving average of {window} log rows"
    return y, ""


def _draw_group(
    ax: Any,
    label: str | None,
    color: str,
    curves: list[tuple[np.ndarray, np.ndarray]],
    metric: _Metric,
    std_curves: list[np.ndarray | None] | None = None,
) -> None:
    """One group: a single run as raw + smoothed line, several as mean + 95% bootstrap band."""
    smoothed = [(x, *_smooth(y, metric.smooth)) for x, y in curves]
    if len(curves) == 1:
        (x, y), (_, ys, how) = curves[0], smoothed[0]
        if how:
            if not label:  # beside other groups the raw curve is clutter
                ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8, label="raw")
            ax.plot(x, ys, color=color, linewidth=1.8, label=f"{label} (1 seed, {how})" if label else how)
        else:
            marker = "o" if metric.table == "eval" and len(x) <= 60 else None
            ax.plot(x, y, color=color, linewidth=1.8, marker=marker, markersize=3,
                    label=f"{label} (1 seed)" if label else
                    (metric.ylabel if metric.table != "eval" else "mean over eval episodes"))
            # the std band only when alone: beside other groups' CI bands it would read as one
            std = std_curves[0] if std_curves and not label else None
            if std is not None:
                ax.fill_between(x, y - std, y + std, color=color, alpha=0.2, linewidth=0,
                                label=None if label else "+/- 1 std over eval episodes")
        return
    agg = aggregate_curves([(x, ys) for x, ys, _ in smoothed])
    how = smoothed[0][2]
    text = f"mean of {len(curves)} seeds, 95% CI" + (f" ({how})" if how else "")
    ax.plot(agg.x, agg.mean, color=color, linewidth=1.8, label=f"{label}: {text}" if label else text)
    ax.fill_between(agg.x, agg.ci_low, agg.ci_high, color=color, alpha=0.2, linewidth=0)


def _maybe_log_scale(ax: Any, curves: list[tuple[np.ndarray, np.ndarray]]) -> None:
    values = np.concatenate([y for _, y in curves])
    if values.size and values.min() > 0 and values.max() / values.min() > 100:
        ax.set_yscale("log")


def _plot_metric(
    metric: _Metric,
    groups: dict[str, list[Run]],
    out_path: Path,
    notes: list[str],
    title: str | None = None,
) -> Path | None:
    all_runs = [r for members in groups.values() for r in members]
    per_group: list[tuple[str, list[tuple[np.ndarray, np.ndarray]], list[np.ndarray | None]]] = []
    for label, members in groups.items():
        curves, stds = [], []
        for run in members:
            curve = run.curve(metric.table, metric.column)
            if curve is None:
                continue
            curves.append(curve)
            std = None
            if metric.table == "eval":
                x, y = run.column("eval", "env_step"), run.column("eval", "std_return")
                if x is not None and y is not None:
                    keep = np.isfinite(x) & np.isfinite(run.column("eval", metric.column))
                    std = np.nan_to_num(y[keep])
            stds.append(std)
        if curves:
            per_group.append((label, curves, stds))
    if not per_group:
        # A missing file or column was noted by load_run; say more only when the column
        # is there but holds no finite value (e.g. NaN losses before learning started).
        has_column = any(r.column(metric.table, metric.column) is not None for r in all_runs)
        if has_column and not metric.optional:
            _note(notes, f"{out_path.name} not written: '{metric.column}' in {metric.table}.csv has no finite value")
        return None
    if metric.only_if_varies:
        values = np.concatenate([y for _, curves, _ in per_group for _, y in curves])
        if np.ptp(values) == 0:
            return None

    fig, ax = _new_figure()
    many = len(groups) > 1
    for i, (label, curves, stds) in enumerate(per_group):
        _draw_group(ax, label if many else None, f"C{i % 10}", curves, metric, stds)
    if metric.column in {"loss", "td_abs_mean", "grad_norm"}:
        _maybe_log_scale(ax, [c for _, curves, _ in per_group for c in curves])
    _style_axes(ax, title or metric.title, metric.ylabel, all_runs)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return _save(fig, out_path)


# --------------------------------------------------------------------------- public API


def plot_runs(run_paths: str | Path | Run | Sequence[str | Path | Run], out_dir: str | Path) -> PlotResult:
    """Write one PNG per training metric of the given run(s) into ``out_dir``.

    ``run_paths`` is a run folder or a list of them (``Run`` objects are accepted too).
    Runs of one config (seeds) are drawn as mean and 95% bootstrap band; different
    configs (grouped by :func:`dqnkit.analysis.runs.group_runs`) as one line each. All curves
    are against env steps. A metric that no run logged is skipped with a note.

    Returns the PNG paths (a list) with ``.notes``. Raises ``CheckpointError`` for a folder
    that is not a run or has no finished episode yet.
    """
    notes: list[str] = []
    runs = _as_runs(run_paths, notes)
    groups = group_runs(runs)
    out = Path(out_dir)
    written = PlotResult(notes=notes)
    for metric in METRICS:
        path = _plot_metric(metric, groups, out / metric.filename, notes)
        if path is not None:
            written.append(path)
    written.notes = notes
    return written


def compare_runs(
    run_paths: Sequence[str | Path | Run],
    group_by: str | None = None,
    *,
    out_dir: str | Path,
    confidence: float = 0.95,
    n_boot: int = 10000,
    seed: int = 0,
) -> dict[str, Any]:
    """Overlay groups of runs and tabulate their final greedy return.

    Groups come from :func:`dqnkit.analysis.runs.group_runs` (by config without seed/out keys, or
    by one config key with ``group_by="double_q"``). Writes into ``out_dir``:
    ``compare_eval_return.png`` and ``compare_train_return.png`` (mean and 95% bootstrap
    band per group), ``comparison.md`` and ``comparison.csv``.

    The final greedy return of a run is the ``mean_return`` of its last ``eval.csv`` row;
    per group the table gives their mean, IQM (:func:`dqnkit.analysis.stats.iqm`), percentile
    bootstrap CI of the mean, and the number of seeds with an eval row. Runs without
    ``eval.csv`` (e.g. a tabular run that never evaluated) still appear with their final
    training return (mean of the last 100 episode returns) and a note.

    Returns ``{"groups": {label: {...}}, "plots": [Path], "markdown": str,
    "table_md": Path, "table_csv": Path, "notes": [str]}``.
    """
    notes: list[str] = []
    runs = _as_runs(run_paths, notes)
    groups = group_runs(runs, group_by=group_by)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    plots: list[Path] = []
    eval_metric = _Metric("compare_eval_return.png", "eval", "mean_return",
                          "Greedy evaluation return", "mean return", "none")
    train_metric = _Metric("compare_train_return.png", "episodes", "return",
                           f"Training return ({EPISODE_WINDOW}-episode moving average)", "episode return", "episodes")
    for metric in (eval_metric, train_metric):
        path = _plot_metric(metric, groups, out / metric.filename, notes)
        if path is not None:
            plots.append(path)

    summary: dict[str, dict[str, Any]] = {}
    for label, members in groups.items():
        finals, train_finals, steps = [], [], []
        for run in members:
            final = last_finite(run.column("eval", "mean_return"))
            if final is None:
                _note(notes, f"{run.name}: no eval row, left out of the final greedy return of '{label}'")
            else:
                finals.append(final)
            returns = run.column("episodes", "return")
            if returns is not None and np.isfinite(returns).any():
                train_finals.append(float(np.mean(returns[np.isfinite(returns)][-EPISODE_WINDOW:])))
            last = [last_finite(run.column(t, "env_step")) for t in ("episodes", "updates", "eval")]
            if any(v is not None for v in last):
                steps.append(max(v for v in last if v is not None))
        low, high = bootstrap_ci(finals, confidence=confidence, n_boot=n_boot, seed=seed)
        summary[label] = {
            "runs": [str(r.path) for r in members],
            "variant": variant_name(members[0].config),
            "n_seeds": len(finals),
            "final_returns": finals,
            "mean": float(np.mean(finals)) if finals else float("nan"),
            "iqm": iqm(finals),
            "ci_low": low,
            "ci_high": high,
            "final_train_return": float(np.mean(train_finals)) if train_finals else float("nan"),
            "env_steps": max(steps) if steps else float("nan"),
        }

    pct = f"{confidence * 100:g}%"
    header = ["group", "seeds", "final greedy return (mean)", "IQM", f"{pct} CI",
              f"training return (last {EPISODE_WINDOW} ep.)", "env steps"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, s in summary.items():
        ci = "n/a" if s["n_seeds"] == 0 else f"[{format_value(s['ci_low'], '.2f')}, {format_value(s['ci_high'], '.2f')}]"
        steps = "n/a" if not np.isfinite(s["env_steps"]) else f"{int(s['env_steps'])}"
        cells = [label.replace("|", "\\|"), str(s["n_seeds"]), format_value(s["mean"], ".2f"), format_value(s["iqm"], ".2f"), ci,
                 format_value(s["final_train_return"], ".2f"), steps]
        lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(
        [
            "# Comparison",
            "",
            *lines,
            "",
            f"Final greedy return: `mean_return` of the last `eval.csv` row of each run. "
            f"IQM: interquartile mean over seeds. CI: {pct} percentile bootstrap of the mean over "
            f"seeds ({n_boot} resamples, seed {seed}).",
        ]
        + (["", "## Notes", "", *[f"- {n}" for n in notes]] if notes else [])
    ) + "\n"
    table_md = out / "comparison.md"
    table_md.write_text(markdown, encoding="utf-8")

    table_csv = out / "comparison.csv"
    with table_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["group", "variant", "n_seeds", "final_return_mean", "final_return_iqm",
                         "ci_low", "ci_high", "final_train_return", "env_steps", "final_returns"])
        for label, s in summary.items():
            writer.writerow([label, s["variant"], s["n_seeds"], repr(s["mean"]), repr(s["iqm"]),
                             repr(s["ci_low"]), repr(s["ci_high"]), repr(s["final_train_return"]),
                             repr(s["env_steps"]), " ".join(repr(v) for v in s["final_returns"])])

    return {
        "groups": summary,
        "plots": plots,
        "markdown": markdown,
        "table_md": table_md,
        "table_csv": table_csv,
        "notes": notes,
    }
