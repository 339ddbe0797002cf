"""Where the states of a discrete environment sit on a grid, and how to reopen a tabular run.

:class:`GridLayout` describes a grid environment; :func:`grid_layout` builds one from
dqnkit's GridWorld-v0 (attributes ``grid_shape, start, goal, obstacles, to_state,
to_pos``), Gymnasium's FrozenLake-v1 (``desc`` map: S start, G goal, H holes) and Taxi
(v3/v4: arrows per taxi position for one fixed passenger location and destination; pickup
and dropoff drawn as "P" and "D"). :func:`load_qtable` and :func:`make_tabular_env` read
a tabular run's Q-table and rebuild its environment. Drawing lives in
:mod:`dqnkit.analysis.policy`; this module imports no torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dqnkit.errors import CheckpointError, EnvError
from dqnkit.runfolder import QTABLE_FILE, QTABLE_KEY, TABULAR_FILE

__all__ = [
    "GridLayout",
    "Pos",
    "as_pos",
    "as_positions",
    "row_major",
    "grid_layout",
    "load_qtable",
    "make_tabular_env",
    "GRIDWORLD_ARROWS",
    "GRIDWORLD_NAMES",
    "GRIDWORLD_MOVES",
]

Pos = tuple[int, int]

# dqnkit GridWorld-v0 action order: 0 up, 1 right, 2 down, 3 left.
GRIDWORLD_ARROWS = ("↑", "→", "↓", "←")
GRIDWORLD_NAMES = ("up", "right", "down", "left")
GRIDWORLD_MOVES: tuple[Pos, ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))


@dataclass
class GridLayout:
    """Where the states of a discrete environment sit on a grid.

    ``to_state((row, col)) -> state index`` and ``to_pos(state) -> (row, col)``.
    ``action_moves[a]`` is the intended (row, col) displacement of action ``a`` or None
    for an action that does not move (Taxi's pickup/dropoff). ``obstacles`` are cells the
    agent cannot stand on when ``obstacle_kind == "wall"`` (moves into them leave it in
    place) or terminal cells when ``"hole"`` (FrozenLake). ``walls`` are blocked edges
    between two neighbouring cells (Taxi). ``labels`` are extra letters drawn in cells.
    """

    grid_shape: Pos
    start: Pos | None
    goals: tuple[Pos, ...]
    obstacles: tuple[Pos, ...]
    to_state: Callable[[Pos], int]
    to_pos: Callable[[int], Pos]
    action_arrows: tuple[str, ...] = GRIDWORLD_ARROWS
    action_names: tuple[str, ...] = GRIDWORLD_NAMES
    action_moves: tuple[Pos | None, ...] = GRIDWORLD_MOVES
    obstacle_kind: str = "wall"  # "wall" | "hole"
    goal_is_terminal: bool = True
    walls: frozenset[frozenset[Pos]] = field(default_factory=frozenset)
    labels: dict[Pos, str] = field(default_factory=dict)
    obstacle_label: str = "obstacle"
    name: str = "grid"
    note: str = ""

    @property
    def terminal_cells(self) -> set[Pos]:
        cells = set(self.goals) if self.goal_is_terminal else set()
        if self.obstacle_kind == "hole":
            cells |= set(self.obstacles)
        return cells

    def intended_move(self, pos: Pos, action: int) -> Pos:
        """The cell an action aims for: off-grid, into a wall or a blocking obstacle -> stay."""
        move = self.action_moves[action] if action < len(self.action_moves) else None
        if move is None:
            return pos
        nxt = (pos[0] + move[0], pos[1] + move[1])
        rows, cols = self.grid_shape
        if not (0 <= nxt[0] < rows and 0 <= nxt[1] < cols):
            return pos
        if frozenset((pos, nxt)) in self.walls:
            return pos
        if self.obstacle_kind == "wall" and nxt in self.obstacles:
            return pos
        return nxt


def row_major(cols: int) -> tuple[Callable[[Pos], int], Callable[[int], Pos]]:
    """``(to_state, to_pos)`` of a grid numbered row by row with ``cols`` columns."""
    def to_state(pos: Pos) -> int:
        return int(pos[0]) * cols + int(pos[1])

    def to_pos(state: int) -> Pos:
        return (int(state) // cols, int(state) % cols)

    return to_state, to_pos


def as_pos(value: Any) -> Pos:
    """A (row, col) pair of ints from any two-element sequence."""
    return (int(value[0]), int(value[1]))


def as_positions(value: Any) -> tuple[Pos, ...]:
    """A tuple of (row, col) cells from one cell, several, or None."""
    if value is None:
        return ()
    arr = np.asarray(value)
    if arr.ndim == 1 and arr.size == 2:
        return (as_pos(arr),)
    return tuple(as_pos(v) for v in value)


def _first_attr(obj: Any, *names: str) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _env_name(env: Any, unwrapped: Any) -> str:
    spec = getattr(env, "spec", None) or getattr(unwrapped, "spec", None)
    return getattr(spec, "id", None) or type(unwrapped).__name__


def _stochastic(model: Any) -> bool:
    """True when a toy-text transition table ``P[s][a]`` has more than one outcome somewhere."""
    if not model:
        return False
    rows = model.values() if isinstance(model, Mapping) else model
    for moves in rows:
        for outcomes in (moves.values() if isinstance(moves, Mapping) else moves):
            if len(outcomes) > 1:
                return True
    return False


def grid_layout(env: Any, *, passenger: int = 0, destination: int = 3) -> GridLayout:
    """Describe ``env`` (wrapped or not) as a :class:`GridLayout`.

    - dqnkit GridWorld (any env exposing ``grid_shape`` plus ``to_state``/``to_pos``):
      ``start``, ``goal`` (or ``goals``), ``obstacles`` (or ``obstacle``) from its attributes;
      actions 0 up, 1 right, 2 down, 3 left unless it has ``action_names``; obstacles block.
    - FrozenLake: the ``desc`` map; holes are terminal; actions 0 left, 1 down, 2 right, 3 up.
    - Taxi (v3/v4): the 5x5 taxi positions for one slice of the state space, passenger at
      ``passenger`` (0 R, 1 G, 2 Y, 3 B; 4 = in the taxi) going to ``destination`` (0-3);
      actions 0 south, 1 north, 2 east, 3 west, 4 pickup "P", 5 dropoff "D"; the map's
      ``|`` walls are kept. No cell is terminal in a slice (only a dropoff ends an episode).
    """
    u = getattr(env, "unwrapped", env)
    if hasattr(u, "grid_shape") and hasattr(u, "to_state") and hasattr(u, "to_pos"):
        rows, cols = as_pos(u.grid_shape)
        goals = as_positions(_first_attr(u, "goals", "goal"))
        obstacles = as_positions(_first_attr(u, "obstacles", "obstacle"))
        names = tuple(getattr(u, "action_names", GRIDWORLD_NAMES))
        arrows = tuple(getattr(u, "action_arrows", GRIDWORLD_ARROWS))
        is_terminal = getattr(u, "is_terminal", None)
        terminal_obstacles = bool(obstacles) and callable(is_terminal) and all(is_terminal(o) for o in obstacles)
        start = getattr(u, "start", None)
        return GridLayout(
            grid_shape=(rows, cols),
            start=as_pos(start) if start is not None else None,
            goals=goals,
            obstacles=obstacles,
            to_state=lambda p: int(u.to_state(as_pos(p))),
            to_pos=lambda s: as_pos(u.to_pos(int(s))),
            action_arrows=arrows,
            action_names=names,
            obstacle_kind="hole" if terminal_obstacles else "wall",
            name=_env_name(env, u),
            note="slippery: moves are intended directions" if _stochastic(getattr(u, "P", None)) else "",
        )
    if hasattr(u, "locs") and hasattr(u, "encode") and hasattr(u, "desc"):
        if not (0 <= passenger <= 4 and 0 <= destination <= 3):
            raise ValueError(f"Taxi: passenger must be 0-4 and destination 0-3, got {passenger}, {destination}")
        desc = np.asarray(u.desc).astype(str)
        walls = set()
        for r in range(5):
            for c in range(4):
                if desc[r + 1, 2 * c + 2] == "|":
                    walls.add(frozenset(((r, c), (r, c + 1))))
        locs = [as_pos(p) for p in u.locs]
        letters = "RGYB"
        labels = {loc: letters[i] for i, loc in enumerate(locs)}
        note = (f"passenger {'in taxi' if passenger == 4 else 'at ' + letters[passenger]}, "
                f"destination {letters[destination]}")
        return GridLayout(
            grid_shape=(5, 5),
            start=None,
            goals=(locs[destination],),
            obstacles=(),
            to_state=lambda p: int(u.encode(int(p[0]), int(p[1]), passenger, destination)),
            to_pos=lambda s: as_pos(list(u.decode(int(s)))[:2]),
            action_arrows=("↓", "↑", "→", "←", "P", "D"),
            action_names=("south", "north", "east", "west", "pickup", "dropoff"),
            action_moves=((1, 0), (-1, 0), (0, 1), (0, -1), None, None),
            goal_is_terminal=False,
            walls=frozenset(walls),
            labels=labels,
            name=_env_name(env, u),
            note=note,
        )
    if hasattr(u, "desc") and hasattr(u, "nrow") and hasattr(u, "ncol"):
        desc = np.asarray(u.desc).astype(str)
        rows, cols = int(u.nrow), int(u.ncol)
        to_state, to_pos = row_major(cols)

        def cells(letter: str) -> tuple[Pos, ...]:
            return tuple((int(r), int(c)) for r, c in zip(*np.nonzero(desc == letter)))

        starts = cells("S")
        slippery = _stochastic(getattr(u, "P", None))
        return GridLayout(
            grid_shape=(rows, cols),
            start=starts[0] if starts else None,
            goals=cells("G"),
            obstacles=cells("H"),
            to_state=to_state,
            to_pos=to_pos,
            action_arrows=("←", "↓", "→", "↑"),
            action_names=("left", "down", "right", "up"),
            action_moves=((0, -1), (1, 0), (0, 1), (-1, 0)),
            obstacle_kind="hole",
            obstacle_label="hole",
            name=_env_name(env, u),
            note="slippery: moves are intended directions" if slippery else "",
        )
    raise EnvError(
        f"cannot lay out {type(u).__name__} on a grid: it has no grid_shape/to_state/to_pos "
        "(dqnkit GridWorld), desc map (FrozenLake) or Taxi encoding; use key_states_table instead"
    )


# --------------------------------------------------------------------------- tabular runs


def load_qtable(run_path: str | Path) -> np.ndarray:
    """The Q-table of a tabular run (``qtable.safetensors``, as :meth:`dqnkit.tabular.TabularQ.save` writes it)."""
    from safetensors.numpy import load_file

    file = Path(run_path) / QTABLE_FILE
    if not file.is_file():
        raise CheckpointError(f"{file} not found; only tabular runs (algo: tabular) save a Q-table")
    try:
        tensors = load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{file} could not be read ({exc}); retrain or restore the file") from exc
    if QTABLE_KEY not in tensors:
        raise CheckpointError(f"{file} has no {QTABLE_KEY!r} tensor (keys: {sorted(tensors)}); was it written by dqnkit?")
    return np.asarray(tensors[QTABLE_KEY])


def make_tabular_env(run_path: str | Path) -> Any:
    """Rebuild the environment of a tabular run from its ``tabular.json`` (env_id, env_kwargs)."""
    import gymnasium as gym

    file = Path(run_path) / TABULAR_FILE
    if not file.is_file():
        raise CheckpointError(f"{file} not found; pass the folder of a tabular run")
    info = json.loads(file.read_text(encoding="utf-8"))
    env_id, kwargs = info.get("env_id"), dict(info.get("env_kwargs") or {})
    if not env_id:
        raise CheckpointError(f"{file} has no env_id")
    if env_id not in gym.registry and "GridWorld" in env_id:
        try:  # dqnkit's own grid registers itself on import
            import dqnkit.envs.gridworld  # noqa: F401
        except ImportError:
            pass
    try:
        return gym.make(env_id, **kwargs)
    except Exception as exc:
        raise EnvError(f"cannot make {env_id!r} with {kwargs} ({exc})") from exc
