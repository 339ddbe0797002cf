"""Metric logging for a run: CSV files (the source of truth for plots), TensorBoard, progress.

CSV files are opened in append mode and flushed after each row, so an interrupted run
keeps every row it logged; on resume they are cut back to the checkpoint's env step so
the resumed run's files read exactly as an uninterrupted run's would.
"""
from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

import torch

from dqnkit.runfolder import (EPISODE_COLUMNS, EPISODES_FILE, EVAL_COLUMNS, EVAL_FILE, UPDATE_COLUMNS,
                              UPDATES_FILE)


class CsvLog:
    def __init__(self, path: Path | None, fields: tuple[str, ...]):
        self.path, self.fields = path, fields
        self.rows: list[dict] = []  # kept in memory too, for the Python API
        self._fh = None
        if path is not None:
            new = not path.exists() or path.stat().st_size == 0
            self._fh = open(path, "a", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=fields)
            if new:
                self._writer.writeheader()
                self._fh.flush()

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if self._fh is not None:
            self._writer.writerow(row)
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class UpdateLog:
    """When to write a row of updates.csv, and what goes in it: every ``log_interval`` gradient updates, the
    mean loss since the previous row and the newest update's statistics. Its two fields are checkpointed
    (``log_at`` and the losses not yet written), so a resumed run writes the same rows."""

    def __init__(self, log_interval: int):
        self.log_interval = int(log_interval)
        self.log_at = self.log_interval
        self.pending: list[torch.Tensor] = []  # loss tensors: read on the host only when a row is written

    def add(self, metrics: dict[str, torch.Tensor], updates: int) -> bool:
        """Record one update's loss; True when a row is due (``updates`` = updates done so far)."""
        self.pending.append(metrics["loss"])
        return updates >= self.log_at

    def row(self, metrics: dict[str, torch.Tensor], updates: int, env_step: int, learning_rate: float,
            sps: float) -> dict:
        self.log_at += self.log_interval
        loss = float(torch.stack(self.pending).mean())
        self.pending = []
        return {"update": updates, "env_step": env_step, "loss": loss, "mean_q": float(metrics["q_sa"].mean()),
                "td_abs_mean": float(metrics["td_abs"].mean()), "grad_norm": float(metrics["grad_norm"]),
                "learning_rate": learning_rate, "sps": round(sps, 1)}

    def last_loss_finite(self) -> bool:
        return not self.pending or bool(torch.isfinite(self.pending[-1]).all())

    @staticmethod
    def finite(row: dict) -> bool:
        return math.isfinite(row["loss"])

    def state(self) -> tuple[int, list[float]]:
        return self.log_at, [float(x) for x in self.pending]

    def load(self, log_at: int, pending: list[float]) -> None:
        self.log_at = int(log_at)
        self.pending = [torch.tensor(x) for x in pending]


class RunLogger:
    """Writes episodes.csv, updates.csv, eval.csv (+ TensorBoard) and shows progress."""

    def __init__(self, run_dir: Path | None, *, total_env_steps: int, verbosity: str = "auto",
                 tensorboard: bool = True, start_env_step: int = 0):
        self.run_dir = run_dir
        f = (lambda name: run_dir / name) if run_dir is not None else (lambda name: None)
        self.episodes = CsvLog(f(EPISODES_FILE), EPISODE_COLUMNS)
        self.updates = CsvLog(f(UPDATES_FILE), UPDATE_COLUMNS)
        self.evals = CsvLog(f(EVAL_FILE), EVAL_COLUMNS)
        self.tb = None
        if run_dir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(log_dir=str(run_dir), flush_secs=30)
            except ImportError:
                print("note: tensorboard is not installed; no event files (pip install tensorboard)", file=sys.stderr)
        self.progress = make_progress(verbosity, total_env_steps, start_env_step)
        self.recent_returns: list[float] = []

    def episode(self, env_step: int, episode: int, ret: float, length: int, epsilon: float) -> None:
        self.episodes.write({"env_step": env_step, "episode": episode, "return": round(float(ret), 6),
                             "length": int(length), "epsilon": round(float(epsilon), 6)})
        self.recent_returns.append(float(ret))
        del self.recent_returns[:-100]
        if self.tb is not None:
            self.tb.add_scalar("rollout/return", ret, env_step)
            self.tb.add_scalar("rollout/length", length, env_step)
            self.tb.add_scalar("rollout/epsilon", epsilon, env_step)

    def update(self, row: dict) -> None:
        self.updates.write(row)
        if self.tb is not None:
            for key in ("loss", "mean_q", "td_abs_mean", "grad_norm", "sps"):
                self.tb.add_scalar(f"train/{key}", row[key], row["env_step"])

    def evaluation(self, env_step: int, mean_return: float, std_return: float) -> None:
        self.evals.write({"env_step": env_step, "mean_return": round(mean_return, 6),
                          "std_return": round(std_return, 6)})
        if self.tb is not None:
            self.tb.add_scalar("eval/mean_return", mean_return, env_step)
        self.progress.message(f"eval @ {env_step}: {mean_return:.1f} +/- {std_return:.1f}")

    def tick(self, env_step: int, epsilon: float, sps: float) -> None:
        recent = sum(self.recent_returns) / len(self.recent_returns) if self.recent_returns else float("nan")
        self.progress.update(env_step, recent, epsilon, sps)

    def close(self) -> None:
        self.progress.close()
        for log in (self.episodes, self.updates, self.evals):
            log.close()
        if self.tb is not None:
            self.tb.close()


def progress_text(recent: float, eps: float, sps: float) -> str:
    return f"return(100) {recent:.1f}  eps {eps:.3f}  {sps:.0f} steps/s"


class _Quiet:
    def update(self, *a) -> None: ...
    def show(self, step: int, info: str) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class _Plain:
    """Plain lines for logs and pipes: one every 10% of the run or 30 s, whichever comes first."""

    def __init__(self, total: int):
        self.total, self.last_t, self.last_step = total, time.monotonic(), 0

    def update(self, step: int, recent: float, eps: float, sps: float) -> None:
        self.show(step, progress_text(recent, eps, sps))

    def show(self, step: int, info: str) -> None:
        now = time.monotonic()
        if step - self.last_step >= self.total / 10 or now - self.last_t >= 30 or step >= self.total:
            self.last_t, self.last_step = now, step
            print(f"env_step {step}/{self.total}  {info}", flush=True)

    def message(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None: ...


class _Rich:
    def __init__(self, total: int, start: int):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        self.p = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
        self.task = self.p.add_task("train", total=total, completed=start, info="")
        self.p.start()
        self.last, self.total = 0.0, total

    def update(self, step: int, recent: float, eps: float, sps: float) -> None:
        self.show(step, progress_text(recent, eps, sps))

    def show(self, step: int, info: str) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and step < self.total:  # the last update always shows: the bar ends full
            return
        self.last = now
        self.p.update(self.task, completed=step, info=info)

    def message(self, text: str) -> None:
        self.p.console.print(text)

    def close(self) -> None:
        self.p.stop()


class _Notebook:
    """A text bar updated in place in a Jupyter cell, through IPython's display handles (no widgets needed)."""

    WIDTH = 30

    def __init__(self, total: int, start: int):
        from IPython.display import Pretty, display
        self.pretty, self.total, self.t0, self.last, self.step = Pretty, total, time.monotonic(), 0.0, start
        self.handle = display(Pretty(self._text(start, "")), display_id=True)

    def _text(self, step: int, info: str) -> str:
        done = int(self.WIDTH * min(1.0, step / self.total)) if self.total > 0 else self.WIDTH
        elapsed = int(time.monotonic() - self.t0)
        return (f"train [{'#' * done}{'.' * (self.WIDTH - done)}] {step}/{self.total}  {info}  "
                f"{elapsed // 60}:{elapsed % 60:02d}")

    def update(self, step: int, recent: float, eps: float, sps: float) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and step < self.total:
            return
        self.last, self.step = now, step
        self.handle.update(self.pretty(self._text(step, f"return(100) {recent:.1f}  eps {eps:.3f}  {sps:.0f} steps/s")))

    def message(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None: ...


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) cell, where stdout is no TTY but output shows as it comes."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def make_progress(verbosity: str, total: int, start: int = 0):
    """"quiet" | "plain" (a line every 10%) | "rich" (a bar) | "auto" (a bar in a terminal or a notebook, lines
    otherwise: ``dqnkit train``) | "interactive" (a bar in a terminal or a notebook, nothing otherwise: ``DQN``)."""
    interactive = verbosity in ("auto", "interactive")
    if interactive and in_notebook():
        return _Notebook(total, start)
    if verbosity == "rich" or (interactive and sys.stdout.isatty()):
        return _Rich(total, start)
    if verbosity in ("quiet", "interactive"):
        return _Quiet()
    return _Plain(total)
