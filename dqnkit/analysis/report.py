"""One self-contained HTML page per run: ``<run>/report.html``.

Config table, final metrics, every PNG of ``<run>/plots/`` (written here by
:func:`dqnkit.analysis.plots.plot_runs`), the greedy-policy view of a tabular run on a grid, and the
latest video in ``<run>/videos/``, all embedded as base64 ``data:`` URIs. The page loads
nothing from anywhere (no CDN, no web fonts, no scripts), so it opens from disk, offline,
and can be mailed as one file. No torch needed.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from dqnkit.analysis.plots import METRICS, plot_runs
from dqnkit.analysis.groups import flat_config, variant_name
from dqnkit.analysis.runs import Run, format_value, last_finite, load_run
from dqnkit.runfolder import QTABLE_FILE

__all__ = ["write_report", "summary_metrics", "render_report"]

VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".gif": "image/gif"}
MAX_VIDEO_MB = 25.0

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1700px; padding: 1.2rem 2rem; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.6rem; margin: 0.2rem 0; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
.sub { color: #555; margin: 0 0 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; background: #fff; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f0f0f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cols { display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1rem; }
figure { margin: 0; background: #fff; border: 1px solid #e3e3e3; padding: .4rem; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: .8rem; color: #555; padding-top: .2rem; }
video, img.video { max-width: 640px; width: 100%; border: 1px solid #ddd; }
.notes li { color: #7a4b00; }
code { font-size: .85rem; }
"""


def _cell(value: Any) -> str:
    return format_value(value, ".4g")


# run.json's counters are the run's own; the CSV files only hold rows logged at finished episodes and
# every log_interval updates, so their last rows can lag behind. Each figure comes from one place.
RUN_INFO_COUNTERS = {"episodes": "episodes", "env_step": "env steps", "updates": "gradient updates",
                     "env_steps_per_s": "env steps / s"}
SHOWN_ELSEWHERE = (*RUN_INFO_COUNTERS, "last_eval")  # last_eval: eval.csv's last row, in "final greedy return"


def summary_metrics(run: Run) -> list[tuple[str, str]]:
    """(name, value) rows for the "final metrics" table; rows whose data is absent are left out.

    The counters (episodes, env steps, gradient updates, env steps / s) come from run.json when the run has
    one and is not running, else from the CSV files (and say so); returns and epsilon from episodes.csv, greedy returns from
    eval.csv, loss and mean Q from updates.csv. The "run info" table leaves these out (SHOWN_ELSEWHERE)."""
    rows: list[tuple[str, str]] = []
    # a running run's run.json holds the counters of when it (re)started: the CSV files are newer then
    meta = run.meta if run.meta.get("status") != "running" else {}
    returns = run.column("episodes", "return")
    finite = returns[np.isfinite(returns)] if returns is not None else None

    def counter(key: str, csv_value: float | None, where: str) -> None:
        value = meta.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((RUN_INFO_COUNTERS[key], f"{value:,.1f}" if key == "env_steps_per_s" else f"{int(value):,}"))
        elif csv_value is not None:
            rows.append((f"{RUN_INFO_COUNTERS[key]} ({where})", f"{int(csv_value):,}" if key != "env_steps_per_s"
                         else _cell(csv_value)))

    counter("episodes", float(finite.size) if finite is not None else None, "episodes.csv rows")
    counter("env_step", last_finite(run.column("episodes", "env_step")), "at the last finished episode")
    counter("updates", last_finite(run.column("updates", "update")), "at the last updates.csv row")
    if finite is not None and finite.size:
        tail = finite[-100:]
        rows.append((f"training return, last {tail.size} episodes (mean)", _cell(float(tail.mean()))))
        rows.append(("training return, best episode", _cell(float(finite.max()))))
    eval_steps, eval_mean = run.column("eval", "env_step"), run.column("eval", "mean_return")
    if eval_mean is not None and np.isfinite(eval_mean).any():
        i = int(np.flatnonzero(np.isfinite(eval_mean))[-1])
        std = run.column("eval", "std_return")
        text = _cell(float(eval_mean[i]))
        if std is not None and np.isfinite(std[i]):
            text += f" ± {_cell(float(std[i]))}"
        if eval_steps is not None and np.isfinite(eval_steps[i]):
            text += f" (at {int(eval_steps[i]):,} env steps)"
        rows.append(("final greedy return", text))
        best = int(np.nanargmax(eval_mean))
        where = f" (at {int(eval_steps[best]):,} env steps)" if eval_steps is not None and np.isfinite(eval_steps[best]) else ""
        rows.append(("best greedy return", _cell(float(eval_mean[best])) + where))
    eps = last_finite(run.column("episodes", "epsilon"))
    if eps is not None:
        rows.append(("final epsilon", _cell(eps)))
    for column, name in (("loss", "last logged loss"), ("mean_q", "last logged mean Q")):
        value = last_finite(run.column("updates", column))
        if value is not None:
            rows.append((name, _cell(value)))
    sps = run.column("updates", "sps")
    counter("env_steps_per_s", float(np.nanmedian(sps)) if sps is not None and np.isfinite(sps).any() else None,
            "median of updates.csv rows")
    return rows


def _table(rows: Iterable[tuple[str, str]], header: tuple[str, str] | None = None, css: str = "") -> str:
    out = [f'<table class="{css}">' if css else "<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for key, value in rows:
        out.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _markdown_to_html(text: str) -> str:
    """The small Markdown subset policy_view writes: '## ' headings, pipe tables, paragraphs, **bold**."""

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, body = table[0], [r for r in table[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            for r in body:
                out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>")
            out.append("</table>")
            table.clear()

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        flush()
        if line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")) + 1)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line:
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def _latest_video(run: Run) -> Path | None:
    folder = run.path / "videos"
    if not folder.is_dir():
        return None
    videos = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_TYPES]
    return max(videos, key=lambda p: (p.stat().st_mtime, p.name)) if videos else None


def _policy_html(png: Path, markdown: str) -> str:
    img = f'<figure><img alt="greedy policy" src="{_data_uri(png, "image/png")}"><figcaption>{html.escape(png.name)}</figcaption></figure>'
    return f'<h2>Greedy policy</h2>\n<div class="cols"><div style="max-width:640px">{img}</div><div>{_markdown_to_html(markdown)}</div></div>'


def _policy_section(run: Run, plots_dir: Path, notes: list[str]) -> str:
    """Greedy-policy arrows and key-state Q-values of a tabular run, when its env is a grid."""
    if not (run.path / QTABLE_FILE).is_file():
        return ""
    try:
        from dqnkit.analysis.grid_layout import load_qtable, make_tabular_env
        from dqnkit.analysis.policy import policy_report

        q = load_qtable(run.path)
        env = make_tabular_env(run.path)
        try:
            png, markdown = policy_report(q, env, plots_dir, learner=variant_name(run.config))
        finally:
            env.close()
    except Exception as exc:  # a report must not fail because one optional view did
        notes.append(f"greedy-policy view skipped: {type(exc).__name__}: {exc}")
        return ""
    return _policy_html(png, markdown)


def render_report(run: Run, plot_paths: list[Path], notes: list[str], extra_html: str = "") -> str:
    """The report page as a string (no file access except reading the given PNGs and the video)."""
    title = f"dqnkit report - {run.name}"
    sub = [variant_name(run.config), run.env_id]
    if "status" in run.meta:
        sub.append(f"status: {run.meta['status']}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(" · ".join(sub))}<br><code>{html.escape(str(run.path))}</code></p>',
    ]
    metrics = summary_metrics(run)
    parts.append('<div class="cols"><div><h2>Final metrics</h2>')
    parts.append(_table(metrics) if metrics else "<p>No metrics logged yet.</p>")
    info = [(k, _cell(v)) for k, v in flat_config(run.meta).items() if k.split(".")[0] not in SHOWN_ELSEWHERE]
    if info:
        parts.append("<h2>Run info (run.json)</h2>" + _table(info))
    parts.append("</div><div><h2>Config</h2>")
    flat = flat_config(run.config)
    parts.append(_table(flat.items(), ("key", "value"), css="config") if flat else "<p>No config.yaml.</p>")
    parts.append("</div></div>")

    titles = {m.filename: m.title for m in METRICS}
    if plot_paths:
        parts.append('<h2>Training curves</h2><div class="grid">')
        for png in plot_paths:
            caption = titles.get(png.name, png.stem.replace("_", " "))
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(png, "image/png")}">'
                f"<figcaption>{html.escape(caption)} ({html.escape(png.name)})</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append(extra_html)

    video = _latest_video(run)
    if video is not None:
        size_mb = video.stat().st_size / 2**20
        if size_mb > MAX_VIDEO_MB:
            notes.append(f"video {video.name} not embedded: {size_mb:.1f} MB is over {MAX_VIDEO_MB:g} MB")
        else:
            mime = VIDEO_TYPES[video.suffix.lower()]
            uri = _data_uri(video, mime)
            parts.append(f"<h2>Latest video</h2><p><code>{html.escape(video.name)}</code></p>")
            if mime.startswith("video/"):
                parts.append(f'<video controls loop muted playsinline src="{uri}"></video>')
            else:
                parts.append(f'<img class="video" alt="{html.escape(video.name)}" src="{uri}">')

    if notes:
        parts.append('<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts.append(f'<p class="sub">Generated by dqnkit on {html.escape(stamp)} from the run folder\'s files.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    run_path: str | Path | Run,
    *,
    notes: list[str] | None = None,
    policy: tuple[str | Path, str] | None = None,
) -> Path:
    """Write ``<run>/report.html`` (plots regenerated into ``<run>/plots/``) and return its path.

    A tabular run with ``qtable.safetensors`` on a grid env gets a greedy-policy section
    built here. For a DQN run, a caller that has torch can evaluate the network on every
    state, call :func:`dqnkit.analysis.policy.policy_report` and pass its ``(png, markdown)``
    result as ``policy`` to get the same section.

    Raises ``CheckpointError`` when the folder is not a run or has no finished episode yet.
    Things that are missing (updates.csv, eval.csv, a video, ...) are listed in the page's
    Notes section and, when a ``notes`` list is passed, appended to it as well.
    """
    run = run_path if isinstance(run_path, Run) else load_run(run_path)
    plots_dir = run.path / "plots"
    written = plot_runs([run], plots_dir)
    page_notes = list(written.notes)
    ours = {p.resolve() for p in written}
    if policy is not None:
        extra = _policy_html(Path(policy[0]), policy[1])
    else:
        extra = _policy_section(run, plots_dir, page_notes)
    # Other PNGs someone put in plots/ are shown too; a metric PNG that was not rewritten
    # this time (its data is gone) or the policy view (shown in its own section) is not.
    skip = {m.filename for m in METRICS} | {"policy.png"}
    others = sorted(
        p for p in plots_dir.glob("*.png") if p.resolve() not in ours and p.name not in skip
    ) if plots_dir.is_dir() else []
    text = render_report(run, list(written) + others, page_notes, extra)
    out = run.path / "report.html"
    tmp = out.with_name(".report.html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    if notes is not None:
        notes.extend(page_notes)
    return out
