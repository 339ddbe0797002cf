"""Hooks into training: ``learn(callback=...)`` takes one object or a list of them.

A callback has any of ``on_step``, ``on_episode_end``, ``on_eval`` and ``on_checkpoint``; each is called
with a :class:`TrainingView` (read-only counters and the last metrics) and may return ``False`` to stop
training. A stopped run ends as an interrupted one does: a final evaluation (when the last one is not at
this env step), a checkpoint, and run.json's status ``stopped``, so ``dqnkit resume`` continues it.

``on_step`` is called once per vector step (``num_envs`` env steps); when no callback defines it the
trainer does not call anything (:attr:`Callbacks.on_step` is None), so the loop pays nothing.

Built in (keras-rl's callbacks and Stable-Baselines3's ``StopTrainingOnRewardThreshold`` /
``StopTrainingOnNoModelImprovement`` are the models):

- :class:`StopAtReturn`: stop when a greedy evaluation's mean return reaches a threshold (``--stop-at-return``);
- :class:`StopWithoutImprovement`: stop after K evaluations in a row without a new best
  (``--stop-after-evals-without-improvement K``);
- :class:`TimeLimit`: stop after a wall-clock budget (``--time-limit 10m``; :func:`parse_duration`).
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable

from dqnkit.errors import ConfigError

HOOKS = ("on_step", "on_episode_end", "on_eval", "on_checkpoint")


class TrainingView:
    """What a callback sees of the trainer: counters and the last metrics, read-only (no setters).

    Built once per ``learn`` call; every attribute is read from the trainer when asked for, so the view
    costs nothing per step.
    """

    __slots__ = ("_trainer", "_start")

    def __init__(self, trainer: Any):
        object.__setattr__(self, "_trainer", trainer)
        object.__setattr__(self, "_start", time.perf_counter())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"TrainingView is read-only; {name} cannot be set")

    @property
    def env_step(self) -> int:
        """Env steps so far (transitions summed over the vector envs)."""
        return self._trainer.env_step

    @property
    def updates(self) -> int:
        """Gradient updates so far."""
        return self._trainer.agent.updates

    @property
    def episodes(self) -> int:
        """Finished training episodes so far."""
        return self._trainer.episodes

    @property
    def epsilon(self) -> float:
        return self._trainer.epsilon()

    @property
    def elapsed_s(self) -> float:
        """Wall-clock seconds since this ``learn`` call began."""
        return time.perf_counter() - self._start

    @property
    def metrics(self) -> dict:
        """The last metrics: ``episode_return``/``episode_length`` (the last finished episode), ``eval``
        (the last evaluation's mean_return, std_return, env_step), ``update`` (the last updates.csv row:
        loss, mean_q, ...) and ``checkpoint`` (the last checkpoint's path); None where there is none yet."""
        t = self._trainer
        ev = t.last_eval
        return {"episode_return": t.last_episode[0], "episode_length": t.last_episode[1],
                "eval": None if ev is None else {k: ev[k] for k in ("mean_return", "std_return", "env_step")},
                "update": dict(t.last_update_row) if t.last_update_row else None,
                "checkpoint": t.last_checkpoint}


class Callbacks:
    """The callbacks of one ``learn`` call, grouped by hook; a hook no callback defines is None."""

    def __init__(self, callback: Any = None):
        if callback is None:
            items: list = []
        elif isinstance(callback, (list, tuple)):
            items = list(callback)
        else:
            items = [callback]
        for cb in items:
            if not any(callable(getattr(cb, hook, None)) for hook in HOOKS):
                raise ConfigError(f"callback {cb!r} has none of {', '.join(HOOKS)}; give it at least one of them")
        self.items = items
        self.stopped_by: str | None = None
        for hook in HOOKS:
            fns = [(type(cb).__name__, getattr(cb, hook)) for cb in items if callable(getattr(cb, hook, None))]
            setattr(self, hook, self._dispatch(fns) if fns else None)

    def _dispatch(self, fns: list[tuple[str, Callable]]) -> Callable[[TrainingView], bool]:
        """One function calling ``fns`` in order; False (and ``stopped_by`` set) when one of them returns False."""
        def call(view: TrainingView) -> bool:
            for name, fn in fns:
                if fn(view) is False:
                    reason = getattr(fn.__self__, "reason", None) if hasattr(fn, "__self__") else None
                    self.stopped_by = reason() if callable(reason) else f"{name} returned False"
                    return False
            return True
        return call


class StopAtReturn:
    """Stop when a greedy evaluation's mean return is at least ``threshold`` (SB3's StopTrainingOnRewardThreshold)."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self.seen: float | None = None

    def on_eval(self, view: TrainingView) -> bool:
        self.seen = view.metrics["eval"]["mean_return"]
        return self.seen < self.threshold

    def reason(self) -> str:
        return f"greedy return {self.seen:.2f} >= --stop-at-return {self.threshold:g}"


class StopWithoutImprovement:
    """Stop after ``evals`` evaluations in a row whose mean return is not above the best so far."""

    def __init__(self, evals: int):
        if int(evals) < 1:
            raise ConfigError(f"--stop-after-evals-without-improvement must be >= 1, got {evals}")
        self.evals = int(evals)
        self.best: float | None = None
        self.since_best = 0

    def on_eval(self, view: TrainingView) -> bool:
        ret = view.metrics["eval"]["mean_return"]
        if self.best is None or ret > self.best:
            self.best, self.since_best = ret, 0
        else:
            self.since_best += 1
        return self.since_best < self.evals

    def reason(self) -> str:
        return f"{self.since_best} evaluations without improving on {self.best:.2f}"


class TimeLimit:
    """Stop after ``seconds`` of wall-clock time in this ``learn`` call (checked once per vector step)."""

    def __init__(self, seconds: float | str):
        self.seconds = parse_duration(seconds) if isinstance(seconds, str) else float(seconds)
        if not self.seconds > 0:
            raise ConfigError(f"--time-limit must be positive, got {seconds!r}")

    def on_step(self, view: TrainingView) -> bool:
        return view.elapsed_s < self.seconds

    def reason(self) -> str:
        return f"--time-limit of {self.seconds:g} s reached"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"10m"``, ``"1h"``, ``"1.5h"``, ``"2d"`` or plain seconds (``"600"``) -> seconds."""
    match = _DURATION.match(str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--time-limit {text!r} is not a duration; write a positive number with s, m, h or d "
                          "(90s, 10m, 1h)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def builtin_callbacks(stop_at_return: float | None = None, evals_without_improvement: int | None = None,
                      time_limit: str | float | None = None) -> list:
    """The built-in callbacks the CLI flags ask for (none for flags left out)."""
    out: list = []
    if stop_at_return is not None:
        out.append(StopAtReturn(stop_at_return))
    if evals_without_improvement is not None:
        out.append(StopWithoutImprovement(evals_without_improvement))
    if time_limit is not None:
        out.append(TimeLimit(time_limit))
    return out

