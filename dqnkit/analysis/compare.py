"""The tables of ``dqnkit compare``: final greedy return per group of runs (mean, IQM, bootstrap CI, seeds),
as ``comparison.md`` and ``comparison.csv``, with a warning where a group has too few seeds for IQM and CI
to mean anything. :func:`dqnkit.analysis.plots.compare_runs` draws the curves and calls these.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from dqnkit.analysis.groups import variant_name
from dqnkit.analysis.runs import Run, add_note, format_value, last_finite
from dqnkit.analysis.stats import bootstrap_ci, iqm

__all__ = ["MIN_SEEDS", "EPISODE_WINDOW", "summarize_groups", "few_seeds_warnings", "comparison_markdown",
           "write_comparison_csv"]

MIN_SEEDS = 5  # below this, an IQM trims (almost) nothing and a bootstrap CI is about [min, max] of the seeds
EPISODE_WINDOW = 100  # the training return of a run: the mean of its last 100 episode returns


def summarize_groups(groups: dict[str, list[Run]], notes: list[str], *, confidence: float = 0.95,
                     n_boot: int = 10000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per group: its runs, variant, the final greedy return of each seed (``mean_return`` of the last eval.csv
    row), their mean, IQM and bootstrap CI, the final training return (mean over seeds of the mean of each
    run's last 100 episode returns) and the largest env step logged. Runs without an eval row get a note."""
    summary: dict[str, dict[str, Any]] = {}
    for label, members in groups.items():
        finals, train_finals, steps = [], [], []
        for run in members:
            final = last_finite(run.column("eval", "mean_return"))
            if final is None:
                add_note(notes, f"{run.name}: no eval row, left out of the final greedy return of '{label}'")
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
    return summary


def few_seeds_warnings(summary: dict[str, dict[str, Any]], confidence: float = 0.95) -> list[str]:
    """One line per group with between 1 and MIN_SEEDS - 1 seeds: its IQM and CI are no real statistics."""
    pct = f"{confidence * 100:g}%"
    out = []
    for label, s in summary.items():
        n = s["n_seeds"]
        if 0 < n < MIN_SEEDS:
            out.append(f"'{label}' has {n} seed{'' if n == 1 else 's'}: below {MIN_SEEDS} seeds the IQM and the "
                       f"{pct} CI are not meaningful (under 4 seeds the IQM is the plain mean, and the CI spans "
                       f"about the seeds' [min, max]); train at least {MIN_SEEDS} seeds per group (--seed)")
    return out


def comparison_markdown(summary: dict[str, dict[str, Any]], notes: list[str], warnings: list[str], *,
                        confidence: float = 0.95, n_boot: int = 10000, seed: int = 0) -> str:
    """``comparison.md``: the table, what its columns are, the few-seeds warnings, then the notes."""
    pct = f"{confidence * 100:g}%"
    header = ["group", "seeds", "final greedy return (mean)", "IQM", f"{pct} CI",
              f"training return (last {EPISODE_WINDOW} ep.)", "env steps"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, s in summary.items():
        ci = "n/a" if s["n_seeds"] == 0 else f"[{format_value(s['ci_low'], '.2f')}, {format_value(s['ci_high'], '.2f')}]"
        steps = "n/a" if not np.isfinite(s["env_steps"]) else f"{int(s['env_steps'])}"
        cells = [label.replace("|", "\\|"), str(s["n_seeds"]), format_value(s["mean"], ".2f"),
                 format_value(s["iqm"], ".2f"), ci, format_value(s["final_train_return"], ".2f"), steps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(
        ["# Comparison", "", *lines, "",
         f"Final greedy return: `mean_return` of the last `eval.csv` row of each run. "
         f"IQM: interquartile mean over seeds. CI: {pct} percentile bootstrap of the mean over "
         f"seeds ({n_boot} resamples, seed {seed}).",
         *([""] + [f"**Warning:** {w}." for w in warnings] if warnings else []),
         *(["", "## Notes", "", *[f"- {n}" for n in notes]] if notes else [])]
    ) + "\n"


def write_comparison_csv(summary: dict[str, dict[str, Any]], path: Path) -> Path:
    """``comparison.csv``: one row per group, floats as ``repr`` (round-trip exact)."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["group", "variant", "n_seeds", "final_return_mean", "final_return_iqm",
                         "ci_low", "ci_high", "final_train_return", "env_steps", "final_returns"])
        for label, s in summary.items():
            writer.writerow([label, s["variant"], s["n_seeds"], repr(s["mean"]), repr(s["iqm"]),
                             repr(s["ci_low"]), repr(s["ci_high"]), repr(s["final_train_return"]),
                             repr(s["env_steps"]), " ".join(repr(v) for v in s["final_returns"])])
    return Path(path)
