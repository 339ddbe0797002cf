"""Look inside a Q-table: greedy-policy arrows on a grid, Q-values of key states, the greedy path.

Works on any ``(n_states, n_actions)`` NumPy array: a tabular run's ``qtable.safetensors``,
or a DQN's Q-values evaluated on every state by the caller (this module imports no torch).
Grid environments are described by a :class:`dqnkit.analysis.grid_layout.GridLayout`;
:func:`dqnkit.analysis.grid_layout.grid_layout` builds one from dqnkit's GridWorld-v0
(attributes ``grid_shape, start, goal, obstacles, to_state, to_pos``), Gymnasium's
FrozenLake-v1 (``desc`` map: S start, G goal, H holes) and Taxi (v3/v4: arrows per taxi
position for one fixed passenger location and destination; pickup and dropoff drawn as
"P" and "D").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from dqnkit.analysis.greedy_path import GreedyPath, greedy_path
from dqnkit.analysis.grid_layout import GRIDWORLD_ARROWS, GridLayout, Pos, as_pos, as_positions, grid_layout, row_major

__all__ = ["GreedyPath", "draw_policy", "heatmap_values", "shared_scale", "key_states_table", "greedy_path",
           "policy_report"]


# --------------------------------------------------------------------------- drawing


def _greedy(q_row: np.ndarray) -> int | None:
    """argmax of one row; None when all values are equal (an unvisited state)."""
    if not np.all(np.isfinite(q_row)) or np.ptp(q_row) == 0:
        return None
    return int(np.argmax(q_row))


def _cell_values(q: np.ndarray, rows: int, cols: int, to_state: Callable[[Pos], int], no_arrow: set[Pos]) -> np.ndarray:
    """max_a Q(s, a) per cell, NaN where no arrow is drawn (goal, obstacles, terminal cells)."""
    values = np.full((rows, cols), np.nan)
    for r in range(rows):
        for c in range(cols):
            if (r, c) not in no_arrow:
                values[r, c] = np.max(q[to_state((r, c))])
    return values


def heatmap_values(q_table: np.ndarray, layout: GridLayout) -> np.ndarray:
    """The values :func:`policy_report` colours: max_a Q(s, a) per cell of ``layout``, NaN where it draws no arrow."""
    no_arrow = (set(layout.goals) if layout.goal_is_terminal else set()) | set(layout.obstacles) | layout.terminal_cells
    rows, cols = layout.grid_shape
    return _cell_values(np.asarray(q_table, dtype=np.float64), rows, cols, layout.to_state, no_arrow)


def shared_scale(tables: Sequence[tuple[np.ndarray, GridLayout]]) -> tuple[float, float]:
    """(vmin, vmax) over every coloured cell of several ``(q_table, layout)`` pairs: one colour scale for pictures
    that are compared side by side (the same colour is then the same value in each)."""
    values = np.concatenate([heatmap_values(q, layout).ravel() for q, layout in tables])
    values = values[np.isfinite(values)]
    if not values.size:
        return (0.0, 1.0)
    return (float(values.min()), float(values.max()))


def draw_policy(
    q_table: np.ndarray,
    grid_shape: Sequence[int],
    start: Sequence[int] | None,
    goal: Sequence[int] | Sequence[Sequence[int]] | None,
    obstacles: Sequence[Sequence[int]] = (),
    out_path: str | Path = "policy.png",
    action_arrows: Sequence[str] = GRIDWORLD_ARROWS,
    title: str = "Greedy policy",
    *,
    to_state: Callable[[Pos], int] | None = None,
    terminal: Sequence[Sequence[int]] | None = None,
    walls: frozenset[frozenset[Pos]] | None = None,
    labels: Mapping[Pos, str] | None = None,
    path: Sequence[Sequence[int]] | None = None,
    obstacle_label: str = "obstacle",
    goal_terminal: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Path:
    """Draw the greedy action of every non-terminal cell over a heatmap of max_a Q(s, a).

    ``to_state`` maps (row, col) to the Q-table row (default: row-major ``row * cols + col``).
    Goal cells (unless ``goal_terminal=False``, as in Taxi where the destination is an
    ordinary cell) and ``terminal`` cells get no arrow and no colour (their Q is never
    bootstrapped from); ``obstacles`` are greyed out. A cell
    whose Q-values are all equal (never updated) shows a dot instead of an arrow. ``path``,
    if given, is drawn as a line through the cell centres. ``vmin``/``vmax`` fix the colour scale (default:
    this table's smallest and largest value; pass :func:`shared_scale` to compare several). Returns ``out_path``.
    """
    q = np.asarray(q_table, dtype=np.float64)
    if q.ndim != 2:
        raise ValueError(f"q_table must be (n_states, n_actions), got shape {q.shape}")
    rows, cols = int(grid_shape[0]), int(grid_shape[1])
    if to_state is None:
        to_state = row_major(cols)[0]
        if q.shape[0] < rows * cols:
            raise ValueError(f"q_table has {q.shape[0]} states, fewer than the {rows}x{cols} grid")
    goals = set(as_positions(goal))
    blocked = set(as_positions(obstacles) if len(obstacles) else ())
    no_arrow = (goals if goal_terminal else set()) | blocked
    no_arrow |= set(as_positions(terminal) if terminal is not None and len(terminal) else ())
    start_pos = as_pos(start) if start is not None else None

    values = _cell_values(q, rows, cols, to_state, no_arrow)

    cell_in = 0.9 if max(rows, cols) <= 10 else 0.5
    fig = Figure(figsize=(max(4.0, cols * cell_in + 1.5), max(3.5, rows * cell_in + 0.8)), dpi=100,
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap="viridis", origin="upper", vmin=vmin, vmax=vmax)
    fig.colorbar(image, ax=ax, label="max Q(s, a)", shrink=0.85)
    low, high = image.norm.vmin, image.norm.vmax  # the colour scale's ends: text is white on its darker half
    mid = (low + high) / 2 if low is not None and high is not None else 0.0
    fontsize = 18 if max(rows, cols) <= 8 else 10

    for r in range(rows):
        for c in range(cols):
            pos = (r, c)
            if pos in blocked:
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="0.35", hatch="//", edgecolor="0.15"))
                ax.text(c, r, obstacle_label, ha="center", va="center", color="white", fontsize=7, fontweight="bold")
                continue
            color = "white" if np.isfinite(values[r, c]) and values[r, c] < mid else "black"
            if pos in goals:
                ax.add_patch(Rectangle((c - 0.46, r - 0.46), 0.92, 0.92, fill=False, edgecolor="gold", linewidth=3))
                if goal_terminal:
                    ax.text(c, r, "GOAL", ha="center", va="center", color=color, fontsize=9, fontweight="bold")
                    continue
                ax.text(c - 0.42, r + 0.42, "GOAL", ha="left", va="bottom", color=color, fontsize=6)
            if pos in no_arrow:
                ax.text(c, r, "end", ha="center", va="center", color=color, fontsize=8)
                continue
            action = _greedy(q[to_state(pos)])
            glyph = "·" if action is None else (action_arrows[action] if action < len(action_arrows) else str(action))
            ax.text(c, r, glyph, ha="center", va="center", color=color, fontsize=fontsize, fontweight="bold")
            if labels and pos in labels and not (goal_terminal and pos in goals):
                ax.text(c + 0.42, r - 0.42, labels[pos], ha="right", va="top", color=color, fontsize=8)
            if pos == start_pos:
                ax.add_patch(Rectangle((c - 0.46, r - 0.46), 0.92, 0.92, fill=False, edgecolor="red", linewidth=2.5))
                ax.text(c - 0.42, r - 0.42, "START", ha="left", va="top", color=color, fontsize=6)
    for edge in walls or ():
        (r1, c1), (r2, c2) = sorted(edge)
        if r1 == r2:  # vertical wall between horizontally adjacent cells
            ax.plot([c1 + 0.5, c1 + 0.5], [r1 - 0.5, r1 + 0.5], color="white", linewidth=4)
        else:
            ax.plot([c1 - 0.5, c1 + 0.5], [r1 + 0.5, r1 + 0.5], color="white", linewidth=4)
    if path is not None and len(path) > 1:
        pts = np.array([as_pos(p) for p in path], dtype=float)
        ax.plot(pts[:, 1], pts[:, 0], color="red", linewidth=1.5, alpha=0.6)

    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="black", linewidth=1)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, format="png")
    return out


def key_states_table(
    q_table: np.ndarray,
    named_states: Mapping[str, Any],
    action_names: Sequence[str],
    *,
    to_state: Callable[[Pos], int] | None = None,
    terminal_states: Sequence[Any] = (),
    state_labels: Mapping[Any, str] | None = None,
    decimals: int = 3,
) -> str:
    """Markdown table of Q(s, a) for a few named states, the best action in bold.

    ``named_states`` maps a name to a state index, or to a (row, col) position when
    ``to_state`` is given. States listed in ``terminal_states`` (same form) are shown as
    terminal (their Q is never bootstrapped from), or with their word in ``state_labels`` (same keys:
    ``{(1, 2): "obstacle"}``). Ties: every maximal value is bold.
    """
    q = np.asarray(q_table, dtype=np.float64)
    names = list(action_names)
    if len(names) < q.shape[1]:
        names += [f"a{i}" for i in range(len(names), q.shape[1])]
    terminal = {_key(t) for t in terminal_states}
    words = {_key(k): str(v) for k, v in (state_labels or {}).items()}
    header = ["state", "index", *names[: q.shape[1]], "best action"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, state in named_states.items():
        index = int(to_state(as_pos(state))) if to_state is not None and not np.isscalar(state) else int(state)
        where = f"{name} {tuple(int(v) for v in state)}" if not np.isscalar(state) else str(name)
        if _key(state) in terminal or _key(state) in words:
            word = words.get(_key(state), "terminal")
            lines.append("| " + " | ".join([where, str(index), *["—"] * q.shape[1], word]) + " |")
            continue
        row = q[index]
        best = row.max()
        cells = [f"**{v:.{decimals}f}**" if v == best else f"{v:.{decimals}f}" for v in row]
        best_actions = [names[i] for i in np.flatnonzero(row == best)]
        best_text = "tie" if len(best_actions) == len(row) else " / ".join(best_actions)
        lines.append("| " + " | ".join([where, str(index), *cells, best_text]) + " |")
    return "\n".join(lines) + "\n"


def _key(state: Any) -> Any:
    return int(state) if np.isscalar(state) else as_pos(state)


# --------------------------------------------------------------------------- report


def _neighbours(pos: Pos, shape: Pos) -> list[Pos]:
    out = []
    for dr, dc in ((-1, 0), (0, -1), (1, 0), (0, 1)):
        r, c = pos[0] + dr, pos[1] + dc
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            out.append((r, c))
    return out


def _key_states(layout: GridLayout) -> dict[str, Pos]:
    """Start, a cell next to the goal, a cell next to the first obstacle, and the centre."""
    named: dict[str, Pos] = {}
    special = set(layout.goals) | set(layout.obstacles)
    if layout.start is not None:
        named["Start"] = layout.start
    goal_name = "goal" if layout.goal_is_terminal else "destination"
    for name, anchors in ((f"Next to {goal_name}", layout.goals), ("Next to obstacle", layout.obstacles[:1])):
        for anchor in anchors:
            free = [p for p in _neighbours(anchor, layout.grid_shape) if p not in special and p not in named.values()]
            if free:
                named[name] = free[0]
                break
    centre = (layout.grid_shape[0] // 2, layout.grid_shape[1] // 2)
    if centre not in special and centre not in named.values():
        named["Centre"] = centre
    for goal in layout.goals[:1]:
        named[goal_name.capitalize()] = goal
    return named


def policy_report(
    q_table: np.ndarray,
    env: Any,
    out_dir: str | Path,
    *,
    title: str | None = None,
    start: Pos | None = None,
    max_steps: int = 100,
    layout: GridLayout | None = None,
    learner: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> tuple[Path, str]:
    """``policy.png`` in ``out_dir`` plus a Markdown section: key-state Q-values and the greedy path.

    ``env`` is any env :func:`grid_layout` understands (or pass ``layout``). ``start``
    overrides the layout's start (Taxi has none: the path is then left out, with a line
    saying so). ``learner`` ("DQN", "Tabular Q-learning") goes into the title, so that pictures of
    different learners can be told apart; ``vmin``/``vmax`` fix the colour scale (:func:`shared_scale`).
    """
    layout = layout or grid_layout(env)
    q = np.asarray(q_table, dtype=np.float64)
    n_states = max(layout.to_state((r, c)) for r in range(layout.grid_shape[0]) for c in range(layout.grid_shape[1])) + 1
    if q.ndim != 2 or q.shape[0] < n_states or q.shape[1] < len(layout.action_names):
        raise ValueError(
            f"Q-table of shape {q.shape} does not fit {layout.name}: need >= {n_states} states "
            f"and {len(layout.action_names)} actions"
        )
    begin = start if start is not None else layout.start
    path = greedy_path(q, env, begin, max_steps, layout=layout) if begin is not None else None
    heading = title or (f"Greedy policy of {learner} - " if learner else "Greedy policy - ") + layout.name \
        + (f" ({layout.note})" if layout.note else "")
    png = draw_policy(
        q, layout.grid_shape, begin, layout.goals, layout.obstacles, Path(out_dir) / "policy.png",
        layout.action_arrows, heading, to_state=layout.to_state, terminal=sorted(layout.terminal_cells),
        walls=layout.walls, labels=layout.labels, path=path.positions if path else None,
        obstacle_label=layout.obstacle_label,
        goal_terminal=layout.goal_is_terminal, vmin=vmin, vmax=vmax,
    )
    named = _key_states(layout)
    env_named = getattr(getattr(env, "unwrapped", env), "key_states", None)
    if isinstance(env_named, Mapping) and env_named:  # the env's own names (GridWorld: the tutorial's)
        named = {str(k).replace("_", " ").capitalize(): as_pos(v) for k, v in env_named.items()}
    table = key_states_table(
        q, named, layout.action_names, to_state=layout.to_state,
        terminal_states=[p for p in named.values() if p in layout.terminal_cells],
        state_labels={p: layout.obstacle_label for p in named.values() if p in layout.obstacles},
    )
    lines = [f"## {heading}", "", table]
    if path is None:
        lines.append("Greedy path: no fixed start state in this environment; pass `start=(row, col)`.")
    else:
        cells = " → ".join(str(tuple(p)) for p in path.positions)
        steps = len(path.positions) - 1
        plural = "step" if steps == 1 else "steps"
        verdict = {
            "goal": f"reaches the goal in {steps} {plural}",
            "terminal": f"ends in a terminal cell that is not the goal after {steps} {plural}",
            "loop": f"loops (a state repeats after {steps} {plural}) and never reaches the goal",
            "max_steps": f"does not reach the goal within {max_steps} steps",
        }[path.stop_reason]
        lines.append(f"Greedy path from {tuple(begin)}: {cells}. The greedy policy {verdict}.")
    return png, "\n".join(lines) + "\n"
