"""The greedy path of a Q-table on a grid: follow argmax_a Q(s, a) from the start until the goal, another
terminal cell, a loop or a step limit. Torch-free; the env's transition table ``P`` is used where it has one,
else the intended grid moves of its :class:`dqnkit.analysis.grid_layout.GridLayout`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from dqnkit.analysis.grid_layout import GridLayout, as_pos, grid_layout

__all__ = ["GreedyPath", "greedy_path"]


class GreedyPath(NamedTuple):
    """Cells visited by the greedy policy (start included), whether it ended at a goal, and why it stopped."""

    positions: list[Any]
    reached_goal: bool
    stop_reason: str  # "goal" | "terminal" | "loop" | "max_steps"


def _model_from_env(env: Any, layout: GridLayout) -> Callable[[int, int], tuple[int, bool]]:
    u = getattr(env, "unwrapped", env)
    table = getattr(u, "P", None)
    if isinstance(table, Mapping) or isinstance(table, list):
        def step(state: int, action: int) -> tuple[int, bool]:
            outcomes = table[state][action]
            probs = np.array([o[0] for o in outcomes])
            best = np.flatnonzero(probs == probs.max())
            if len(best) > 1:  # a slippery tie: follow the intended move when it is one of them
                aim = layout.to_state(layout.intended_move(layout.to_pos(state), action))
                for i in best:
                    if outcomes[i][1] == aim:
                        return int(outcomes[i][1]), bool(outcomes[i][3])
            o = outcomes[int(best[0])]
            return int(o[1]), bool(o[3])
        return step

    terminal = layout.terminal_cells

    def step(state: int, action: int) -> tuple[int, bool]:
        nxt = layout.intended_move(layout.to_pos(state), action)
        return layout.to_state(nxt), nxt in terminal

    return step


def greedy_path(
    q_table: np.ndarray,
    model: Any,
    start: Any,
    max_steps: int = 100,
    *,
    layout: GridLayout | None = None,
) -> GreedyPath:
    """Follow argmax_a Q(s, a) from ``start`` until a terminal state, a loop or ``max_steps``.

    ``model`` is either a Gymnasium toy-text-style env (its ``P[s][a]`` transition table
    is used, taking the most likely outcome, or, without ``P``, the intended grid move of
    :func:`grid_layout`), or a callable ``model(state, action) -> (next_state, terminated)``
    on state indices. ``start`` is a state index or a (row, col) cell (needs a layout,
    taken from the env when one is given). Positions are (row, col) cells when a layout
    is known, else state indices. ``reached_goal`` is True when the walk terminated on a
    goal cell (or, without a layout, terminated at all).
    """
    q = np.asarray(q_table, dtype=np.float64)
    if not callable(model) or hasattr(model, "step") or hasattr(model, "unwrapped"):
        layout = layout or grid_layout(model)
        step = _model_from_env(model, layout)
    else:
        step = model
    state = int(layout.to_state(as_pos(start))) if (layout is not None and not np.isscalar(start)) else int(start)

    def where(s: int) -> Any:
        return layout.to_pos(s) if layout is not None else s

    def at_goal(s: int) -> bool:
        return layout is None or not layout.goals or where(s) in layout.goals

    positions = [where(state)]
    if layout is not None and where(state) in layout.terminal_cells:
        return GreedyPath(positions, where(state) in layout.goals, "terminal")
    seen = {state}
    for _ in range(max_steps):
        action = int(np.argmax(q[state]))
        state, terminated = step(state, action)
        state = int(state)
        positions.append(where(state))
        if terminated:
            ok = at_goal(state) if layout is None or layout.goal_is_terminal else True
            return GreedyPath(positions, ok, "goal" if ok else "terminal")
        if state in seen:
            return GreedyPath(positions, False, "loop")
        seen.add(state)
    return GreedyPath(positions, False, "max_steps")
