"""``GridWorld-v0``: the 5x5 grid world of the DQN tutorials, as a Gymnasium environment.

The grid world of the "Deep Q-Networks (DQN)" tutorial notebook: the agent
starts in the top-left corner, the goal is the bottom-right corner, and one
obstacle sits in the way. Every move costs -1; reaching the goal pays +10 and
ends the episode; stepping into an obstacle pays -10 and ends the episode.
Moves off the grid leave the agent where it is (and still cost -1).
``gymnasium.make("GridWorld-v0")`` truncates episodes after 100 steps.

Layout of the default grid (``S`` start, ``X`` obstacle, ``G`` goal)::

        col 0 1 2 3 4
    row 0   S . . . .
    row 1   . . X . .
    row 2   . . . . .
    row 3   . . . . .
    row 4   . . . . G

Positions are ``(row, col)`` with row 0 at the top. The observation is the
integer state ``row * n_cols + col`` in ``Discrete(n_rows * n_cols)``, as in
FrozenLake; ``dqnkit.envs.make_env`` one-hot encodes it for the networks.

Actions (``Discrete(4)``): 0 up (row - 1), 1 right (col + 1), 2 down (row + 1),
3 left (col - 1). ``action_names`` and ``action_arrows`` name them for plots.

With ``slippery=True`` the move goes in the intended direction with probability
1/3 and in each perpendicular direction with probability 1/3, as in FrozenLake.

Like Gymnasium's toy-text environments, the env exposes its model ``P``
(``P[s][a]`` is a list of ``(prob, next_state, reward, terminated)``) and its
current state ``s``.

Deviation from the notebook: it gives the agent a ``(row, col)``
vector; here the observation is the state index (see above).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnkit.errors import ConfigError

Pos = tuple[int, int]

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
_MOVES: tuple[Pos, ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))

# Colours of the rgb_array render (RGB, uint8).
_COLOURS = {
    "empty": (245, 245, 245),
    "line": (90, 90, 90),
    "start": (173, 216, 230),
    "goal": (60, 179, 113),
    "obstacle": (178, 34, 34),
    "agent": (30, 60, 200),
}


class GridWorldEnv(gym.Env[int, int]):
    """The tutorial's grid world: reach the goal, avoid the obstacles, pay -1 per move.

    Args:
        render_mode: ``None``, ``"rgb_array"`` (an (H, W, 3) uint8 image) or ``"ansi"`` (text).
        size: grid size, an int for a square grid or ``(n_rows, n_cols)``.
        start: start position ``(row, col)``.
        goal: goal position ``(row, col)``; reaching it terminates the episode.
        obstacles: obstacle positions; stepping into one terminates the episode.
        slippery: if True, each move goes sideways with probability 2/3 (see module docstring).
        step_reward: reward of a move that neither reaches the goal nor hits an obstacle.
        goal_reward: reward of the move that reaches the goal (instead of ``step_reward``).
        obstacle_reward: reward of the move into an obstacle (instead of ``step_reward``).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    action_names: tuple[str, ...] = ("up", "right", "down", "left")
    action_arrows: tuple[str, ...] = ("\u2191", "\u2192", "\u2193", "\u2190")

    def __init__(
        self,
        render_mode: str | None = None,
        size: int | Sequence[int] = 5,
        start: Sequence[int] = (0, 0),
        goal: Sequence[int] = (4, 4),
        obstacles: Sequence[Sequence[int]] = ((1, 2),),
        slippery: bool = False,
        step_reward: float = -1.0,
        goal_reward: float = 10.0,
        obstacle_reward: float = -10.0,
        cell_px: int = 32,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"GridWorld render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None."
            )
        if isinstance(size, (int, np.integer)):
            shape = (int(size), int(size))
        else:
            shape = tuple(int(x) for x in size)
        if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] < 2:
            raise ConfigError(
                f"GridWorld size={size!r} is not a grid of at least 2 cells; pass an int "
                "or (n_rows, n_cols) with positive sides."
            )
        self.grid_shape: Pos = (shape[0], shape[1])
        self.start: Pos = self._check_pos(start, "start")
        self.goal: Pos = self._check_pos(goal, "goal")
        self.obstacles: list[Pos] = [self._check_pos(o, "obstacle") for o in obstacles]
        if self.start == self.goal:
            raise ConfigError(f"GridWorld start and goal are both {self.start}; put them in different cells.")
        for name, pos in (("start", self.start), ("goal", self.goal)):
            if pos in self.obstacles:
                raise ConfigError(
                    f"GridWorld {name} {pos} is also an obstacle; remove it from obstacles or move the {name}."
                )
        self.slippery = bool(slippery)
        self.step_reward = float(step_reward)
        self.goal_reward = float(goal_reward)
        self.obstacle_reward = float(obstacle_reward)
        self.cell_px = int(cell_px)
        self.render_mode = render_mode

        n_states = self.grid_shape[0] * self.grid_shape[1]
        self.observation_space = spaces.Discrete(n_states)
        self.action_space = spaces.Discrete(4)
        # The tutorial notebook inspects these states by name when it prints Q-values.
        self.key_states: dict[str, Pos] = {
            "start": self.start,
            "goal": self.goal,
            "center": (self.grid_shape[0] // 2, self.grid_shape[1] // 2),
        }
        if self.grid_shape[0] > 1:
            self.key_states["near_start"] = (1, 0)
        if self.obstacles:
            self.key_states["obstacle"] = self.obstacles[0]
        self.P = self._build_model()
        self.s: int = self.to_state(self.start)
        self.last_action: int | None = None

    # ---------------------------------------------------------------- helpers
    def _check_pos(self, pos: Sequence[int], what: str) -> Pos:
        try:
            r, c = (int(x) for x in pos)
        except (TypeError, ValueError):
            raise ConfigError(f"GridWorld {what} {pos!r} is not a (row, col) pair; pass two ints.") from None
        if not (0 <= r < self.grid_shape[0] and 0 <= c < self.grid_shape[1]):
            raise ConfigError(
                f"GridWorld {what} {(r, c)} is outside the {self.grid_shape[0]}x{self.grid_shape[1]} grid; "
                f"use 0 <= row < {self.grid_shape[0]} and 0 <= col < {self.grid_shape[1]}."
            )
        return (r, c)

    def to_state(self, pos: Sequence[int]) -> int:
        """The state index of position ``(row, col)``: ``row * n_cols + col``."""
        r, c = pos
        return int(r) * self.grid_shape[1] + int(c)

    def to_pos(self, state: int) -> Pos:
        """The position ``(row, col)`` of state index ``state``."""
        r, c = divmod(int(state), self.grid_shape[1])
        return (r, c)

    def is_terminal(self, pos_or_state: int | Sequence[int]) -> bool:
        """True for the goal and the obstacles (episodes end on entering them)."""
        pos = self.to_pos(pos_or_state) if isinstance(pos_or_state, (int, np.integer)) else tuple(pos_or_state)
        return pos == self.goal or pos in self.obstacles

    def _move(self, pos: Pos, action: int) -> Pos:
        dr, dc = _MOVES[action]
        r, c = pos[0] + dr, pos[1] + dc
        if 0 <= r < self.grid_shape[0] and 0 <= c < self.grid_shape[1]:
            return (r, c)
        return pos  # off the grid: stay

    def _build_model(self) -> list[list[list[tuple[float, int, float, bool]]]]:
        """``P[s][a]``: list of ``(prob, next_state, reward, terminated)``, as in FrozenLake."""
        n_states = self.observation_space.n
        P: list[list[list[tuple[float, int, float, bool]]]] = []
        for s in range(n_states):
            pos = self.to_pos(s)
            row = []
            for a in range(4):
                if self.is_terminal(pos):
                    row.append([(1.0, s, 0.0, True)])
                    continue
                directions = [(a - 1) % 4, a, (a + 1) % 4] if self.slippery else [a]
                outcomes = []
                for d in directions:
                    nxt = self._move(pos, d)
                    if nxt == self.goal:
                        reward, terminated = self.goal_reward, True
                    elif nxt in self.obstacles:
                        reward, terminated = self.obstacle_reward, True
                    else:
                        reward, terminated = self.step_reward, False
                    outcomes.append((1.0 / len(directions), self.to_state(nxt), reward, terminated))
                row.append(outcomes)
            P.append(row)
        return P

    # -------------------------------------------------------------- Gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        """Start an episode at ``start``; ``options={"start": (row, col) or state}`` starts elsewhere."""
        super().reset(seed=seed)
        start = self.start
        if options and options.get("start") is not None:
            value = options["start"]
            start = self.to_pos(value) if isinstance(value, (int, np.integer)) else self._check_pos(value, "start")
            if not (0 <= start[0] < self.grid_shape[0] and 0 <= start[1] < self.grid_shape[1]):
                raise ConfigError(f"GridWorld reset start state {value!r} is outside the grid; pick a cell on it.")
            if self.is_terminal(start):
                raise ConfigError(
                    f"GridWorld reset start {start} is the goal or an obstacle; start from a non-terminal cell."
                )
        self.s = self.to_state(start)
        self.last_action = None
        return int(self.s), {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        outcomes = self.P[self.s][int(action)]
        if len(outcomes) == 1:
            _, s_next, reward, terminated = outcomes[0]
        else:
            i = int(self.np_random.integers(len(outcomes)))  # outcomes are equally likely
            _, s_next, reward, terminated = outcomes[i]
        self.s = s_next
        self.last_action = int(action)
        return int(s_next), float(reward), bool(terminated), False, {}

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "GridWorld.render() called without a render_mode; make the env with "
                'render_mode="rgb_array" or "ansi".'
            )
            return None
        if self.render_mode == "ansi":
            return self._render_text()
        return self._render_rgb()

    def _render_text(self) -> str:
        agent = self.to_pos(self.s)
        lines = []
        if self.last_action is not None:
            lines.append(f"  ({self.action_names[self.last_action].capitalize()})")
        for r in range(self.grid_shape[0]):
            cells = []
            for c in range(self.grid_shape[1]):
                pos = (r, c)
                if pos == agent:
                    cells.append("A")
                elif pos == self.goal:
                    cells.append("G")
                elif pos in self.obstacles:
                    cells.append("X")
                elif pos == self.start:
                    cells.append("S")
                else:
                    cells.append(".")
            lines.append(" ".join(cells))
        return "\n".join(lines) + "\n"

    def _render_rgb(self) -> np.ndarray:
        px = self.cell_px
        n_rows, n_cols = self.grid_shape
        img = np.empty((n_rows * px, n_cols * px, 3), dtype=np.uint8)
        img[:] = _COLOURS["empty"]

        def fill(pos: Pos, colour: tuple[int, int, int]) -> None:
            img[pos[0] * px : (pos[0] + 1) * px, pos[1] * px : (pos[1] + 1) * px] = colour

        fill(self.start, _COLOURS["start"])
        fill(self.goal, _COLOURS["goal"])
        for o in self.obstacles:
            fill(o, _COLOURS["obstacle"])
        # Grid lines on the top/left edge of every cell, plus the outer bottom/right border.
        img[::px, :] = _COLOURS["line"]
        img[:, ::px] = _COLOURS["line"]
        img[-1, :] = _COLOURS["line"]
        img[:, -1] = _COLOURS["line"]
        # The agent: a filled disc in its cell.
        r, c = self.to_pos(self.s)
        yy, xx = np.mgrid[0:px, 0:px]
        centre = (px - 1) / 2.0
        disc = (yy - centre) ** 2 + (xx - centre) ** 2 <= (0.3 * px) ** 2
        img[r * px : (r + 1) * px, c * px : (c + 1) * px][disc] = _COLOURS["agent"]
        return img
