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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from dqnkit.analysis.compare import (EPISODE_WINDOW, comparison_markdown, few_seeds_warnings, summarize_groups,
                                     write_comparison_csv)
from dqnkit.analysis.groups import group_runs
from dqnkit.analysis.runs import Run, add_note, load_run
from dqnkit.analysis.stats import aggregate_curves, moving_average

__all__ = ["plot_runs", "compare_runs", "PlotResult", "FIGSIZE_IN", "DPI"]

FIGSIZE_IN = (8.0, 4.5)
DPI = 100  # PNGs are 800 x 450 pixels


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
            add_note(notes, f"{who}: {note}")
    return runs


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


def _hold_to_common_end(smoothed: list[tuple[np.ndarray, np.ndarray, str]]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Seeds of one setting stop at different env steps, each at the end of its last episode. A seed that ends
    within one of its episodes of the group's last env step holds its last value up to there, so the mean curve
    ends at the mean of the seeds' last values (the comparison table's figure), not at the longest seed alone."""
    end = max(float(x[-1]) for x, _, _ in smoothed)
    out = []
    for x, ys, how in smoothed:
        gap = end - float(x[-1])
        if gap > 0 and x.size > 1 and gap <= float(np.max(np.diff(x))):
            x, ys = np.append(x, end), np.append(ys, ys[-1])
        out.append((x, ys, how))
    return out


def _draw_group(
    ax: Any,
    label: str | None,
    color: str,
    curves: list[tuple[np.ndarray, np.ndarray]],
    metric: _Metric,
    std_curves: list[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One group: a single run as raw + smoothed line, several as mean + 95% bootstrap band. Returns the main
    line (x, y): the smoothed curve of one run, the mean curve of several."""
    smoothed = [(x, *_smooth(y, metric.smooth)) for x, y in curves]
    if len(curves) == 1:
        (x, y), (_, ys, how) = curves[0], smoothed[0]
        if how:
            if not label:  # beside other groups the raw curve is clutter
                ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8, label="raw")
            ax.plot(x, ys, color=color, linewidth=1.8, label=f"{label} (1 seed, {how})" if label else how)
            return x, ys
        marker = "o" if metric.table == "eval" and len(x) <= 60 else None
        ax.plot(x, y, color=color, linewidth=1.8, marker=marker, markersize=3,
                label=f"{label} (1 seed)" if label else
                (metric.ylabel if metric.table != "eval" else "mean over eval episodes"))
        # the std band only when alone: beside other groups' CI bands it would read as one
        std = std_curves[0] if std_curves and not label else None
        if std is not None:
            ax.fill_between(x, y - std, y + std, color=color, alpha=0.2, linewidth=0,
                            label=None if label else "+/- 1 std over eval episodes")
        return x, y
    if metric.smooth == "episodes":
        smoothed = _hold_to_common_end(smoothed)
    agg = aggregate_curves([(x, ys) for x, ys, _ in smoothed])
    how = smoothed[0][2]
    text = f"mean of {len(curves)} seeds, 95% CI" + (f" ({how})" if how else "")
    ax.plot(agg.x, agg.mean, color=color, linewidth=1.8, label=f"{label}: {text}" if label else text)
    ax.fill_between(agg.x, agg.ci_low, agg.ci_high, color=color, alpha=0.2, linewidth=0)
    return agg.x, agg.mean


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
    lines: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path | None:
    """Draw one metric of every group into ``out_path``; the main line of each group goes into ``lines``."""
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
            add_note(notes, f"{out_path.name} not written: '{metric.column}' in {metric.table}.csv has no finite value")
        return None
    if metric.only_if_varies:
        values = np.concatenate([y for _, curves, _ in per_group for _, y in curves])
        if np.ptp(values) == 0:
            return None

    fig, ax = _new_figure()
    many = len(groups) > 1
    for i, (label, curves, stds) in enumerate(per_group):
        line = _draw_group(ax, label if many else None, f"C{i % 10}", curves, metric, stds)
        if lines is not None:
            lines[label] = line
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

    A group with fewer than :data:`dqnkit.analysis.compare.MIN_SEEDS` seeds gets a warning (in
    ``comparison.md`` and ``"warnings"``): its IQM and CI are then no real statistics. A seed that ends
    within one episode of its group's last env step holds its last moving average up to there, so the
    training-return curve ends at the table's training return.

    Returns ``{"groups": {label: {...}}, "plots": [Path], "curves": {png name: {label: (x, y)}},
    "markdown": str, "table_md": Path, "table_csv": Path, "notes": [str], "warnings": [str]}``.
    """
    notes: list[str] = []
    runs = _as_runs(run_paths, notes)
    groups = group_runs(runs, group_by=group_by)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    plots: list[Path] = []
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    eval_metric = _Metric("compare_eval_return.png", "eval", "mean_return",
                          "Greedy evaluation return", "mean return", "none")
    train_metric = _Metric("compare_train_return.png", "episodes", "return",
                           f"Training return ({EPISODE_WINDOW}-episode moving average)", "episode return", "episodes")
    for metric in (eval_metric, train_metric):
        path = _plot_metric(metric, groups, out / metric.filename, notes, lines=curves.setdefault(metric.filename, {}))
        if path is not None:
            plots.append(path)

    summary = summarize_groups(groups, notes, confidence=confidence, n_boot=n_boot, seed=seed)
    warnings = few_seeds_warnings(summary, confidence)
    markdown = comparison_markdown(summary, notes, warnings, confidence=confidence, n_boot=n_boot, seed=seed)
    table_md = out / "comparison.md"
    table_md.write_text(markdown, encoding="utf-8")
    table_csv = write_comparison_csv(summary, out / "comparison.csv")
    return {
        "groups": summary,
        "plots": plots,
        "curves": curves,
        "markdown": markdown,
        "table_md": table_md,
        "table_csv": table_csv,
        "notes": notes,
        "warnings": warnings,
    }
