"""dqnkit.analysis.policy on hand-made optimal Q-tables (value iteration in the test)."""
from __future__ import annotations

import warnings

import gymnasium as gym
import matplotlib.image as mpimg
import numpy as np
import pytest

from dqnkit.errors import CheckpointError, EnvError
from dqnkit.analysis.grid_layout import GridLayout, grid_layout, load_qtable
from dqnkit.analysis.policy import draw_policy, greedy_path, key_states_table, policy_report, shared_scale

GAMMA = 0.9


class SeedGrid:
    """The seeds' 5x5 grid as a plain object with GridWorld-v0's attributes (no P model):
    actions 0 up 1 right 2 down 3 left, start (0, 0), goal (4, 4), obstacle (1, 2) that blocks."""

    grid_shape = (5, 5)
    start = (0, 0)
    goal = (4, 4)
    obstacles = [(1, 2)]

    def to_state(self, pos):
        return pos[0] * 5 + pos[1]

    def to_pos(self, state):
        return divmod(int(state), 5)


def value_iteration(layout: GridLayout, n_states: int, n_actions: int = 4) -> np.ndarray:
    """Q* of the deterministic grid: -1 per move, +10 on reaching the goal (terminal)."""
    q = np.zeros((n_states, n_actions))
    for _ in range(200):
        v = q.max(axis=1)
        new = np.zeros_like(q)
        for s in range(n_states):
            pos = layout.to_pos(s)
            if pos in layout.terminal_cells or pos in layout.obstacles:
                continue
            for a in range(n_actions):
                nxt = layout.intended_move(pos, a)
                reward = 10.0 if nxt in layout.goals else -1.0
                new[s, a] = reward + (0.0 if nxt in layout.terminal_cells else GAMMA * v[layout.to_state(nxt)])
        if np.allclose(new, q):
            break
        q = new
    return q


def value_iteration_from_model(P, n_states: int, n_actions: int) -> np.ndarray:
    q = np.zeros((n_states, n_actions))
    for _ in range(300):
        v = q.max(axis=1)
        q = np.array(
            [[sum(p * (r + (0.0 if t else GAMMA * v[n])) for p, n, r, t in P[s][a]) for a in range(n_actions)]
             for s in range(n_states)]
        )
    return q


@pytest.fixture(scope="module")
def seed_grid():
    env = SeedGrid()
    layout = grid_layout(env)
    return env, layout, value_iteration(layout, 25)


def test_grid_layout_of_gridworld_attributes(seed_grid):
    _, layout, _ = seed_grid
    assert layout.grid_shape == (5, 5)
    assert layout.start == (0, 0) and layout.goals == ((4, 4),) and layout.obstacles == ((1, 2),)
    assert layout.to_state((2, 3)) == 13 and layout.to_pos(13) == (2, 3)
    assert layout.action_arrows[1] == "→"  # action 1 is right
    assert layout.intended_move((0, 2), 2) == (0, 2)  # down into the obstacle: blocked
    assert layout.intended_move((0, 0), 0) == (0, 0)  # off the grid: stay


def test_draw_policy_writes_png_of_optimal_table(seed_grid, tmp_path):
    _, layout, q = seed_grid
    out = draw_policy(q, (5, 5), (0, 0), (4, 4), [(1, 2)], tmp_path / "policy.png",
                      action_arrows=("↑", "→", "↓", "←"), title="Q* on the 5x5 grid")
    assert out == tmp_path / "policy.png" and out.is_file()
    image = mpimg.imread(out)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_greedy_path_reaches_goal_in_shortest_number_of_steps(seed_grid):
    env, layout, q = seed_grid
    path = greedy_path(q, env, (0, 0), max_steps=50)
    assert path.reached_goal and path.stop_reason == "goal"
    assert path.positions[0] == (0, 0) and path.positions[-1] == (4, 4)
    assert len(path.positions) - 1 == 8  # Manhattan distance: the obstacle costs no detour
    assert (1, 2) not in path.positions
    # the same walk through a plain transition function on state indices
    def step(state, action):
        nxt = layout.intended_move(layout.to_pos(state), action)
        return layout.to_state(nxt), nxt == (4, 4)

    by_fn = greedy_path(q, step, 0)
    assert by_fn.reached_goal and by_fn.positions == [layout.to_state(p) for p in path.positions]


def test_greedy_path_detects_loop_and_step_limit(seed_grid):
    env, _, _ = seed_grid
    q = np.zeros((25, 4))
    q[:, 0] = 1.0  # always "up": stuck at the top wall
    path = greedy_path(q, env, (2, 0))
    assert not path.reached_goal and path.stop_reason == "loop"
    assert path.positions == [(2, 0), (1, 0), (0, 0), (0, 0)]


def test_key_states_table_marks_best_action(seed_grid):
    _, layout, q = seed_grid
    text = key_states_table(
        q, {"Start": (0, 0), "Center": (2, 2), "Goal": (4, 4), "by index": 23},
        ["up", "right", "down", "left"], to_state=layout.to_state, terminal_states=[(4, 4)],
    )
    lines = text.strip().splitlines()
    assert lines[0] == "| state | index | up | right | down | left | best action |"
    assert len(lines) == 2 + 4
    start = next(line for line in lines if line.startswith("| Start"))
    # from (0, 0) right and down are equally good (8 steps either way)
    assert f"**{q[0, 1]:.3f}**" in start and f"**{q[0, 2]:.3f}**" in start
    assert start.rstrip(" |").endswith("right / down")
    assert "terminal" in next(line for line in lines if line.startswith("| Goal"))
    by_index = next(line for line in lines if line.startswith("| by index"))
    assert by_index.rstrip(" |").endswith("right") and "**10.000**" in by_index  # (4, 3) -> goal


def test_policy_report_on_real_gridworld_if_present(tmp_path):
    import dqnkit.envs  # noqa: F401  (registers GridWorld-v0)

    env = gym.make("GridWorld-v0")
    u = env.unwrapped
    q = value_iteration_from_model(u.P, u.observation_space.n, u.action_space.n)
    png, markdown = policy_report(q, env, tmp_path)
    assert png.is_file() and mpimg.imread(png).ndim == 3
    assert "reaches the goal in 8 steps" in markdown
    assert greedy_path(q, env, u.start).reached_goal


def test_frozenlake_layout_and_greedy_path(tmp_path):
    env = gym.make("FrozenLake-v1", is_slippery=False)
    layout = grid_layout(env)
    assert layout.grid_shape == (4, 4) and layout.start == (0, 0) and layout.goals == ((3, 3),)
    assert set(layout.obstacles) == {(1, 1), (1, 3), (2, 3), (3, 0)}
    assert layout.terminal_cells >= set(layout.obstacles)
    u = env.unwrapped
    q = value_iteration_from_model(u.P, 16, 4)
    path = greedy_path(q, env, (0, 0))
    assert path.reached_goal and len(path.positions) - 1 == 6
    assert not set(path.positions) & set(layout.obstacles)
    png, markdown = policy_report(q, env, tmp_path)
    assert png.is_file() and "reaches the goal in 6 steps" in markdown
    # walking into a hole ends the walk without reaching the goal
    q_hole = np.zeros((16, 4))
    q_hole[:, 1] = 1.0  # always down: (0,0) -> (1,0) -> (2,0) -> (3,0) hole
    hole = greedy_path(q_hole, env, (0, 0))
    assert not hole.reached_goal and hole.stop_reason == "terminal" and hole.positions[-1] == (3, 0)


def test_taxi_layout_slice_and_report(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env_id = "Taxi-v4" if "Taxi-v4" in gym.registry else "Taxi-v3"
        env = gym.make(env_id)
    layout = grid_layout(env, passenger=0, destination=3)
    u = env.unwrapped
    for state in (0, 17, 263):
        taxi_row, taxi_col, _, _ = u.decode(state)
        assert layout.to_pos(state) == (taxi_row, taxi_col)
    assert layout.to_state((2, 1)) == u.encode(2, 1, 0, 3)
    assert layout.goals == ((4, 3),) and not layout.terminal_cells
    assert frozenset({(0, 1), (0, 2)}) in layout.walls  # the wall right of R
    q = np.random.default_rng(0).random((500, 6))
    png, markdown = policy_report(q, env, tmp_path)
    assert png.is_file() and "no fixed start state" in markdown
    _, with_start = policy_report(q, env, tmp_path, start=(2, 2))
    assert "Greedy path from (2, 2)" in with_start


def test_errors_for_unknown_env_and_missing_qtable(tmp_path):
    with pytest.raises(EnvError, match="cannot lay out"):
        grid_layout(object())
    with pytest.raises(CheckpointError, match="qtable.safetensors"):
        load_qtable(tmp_path)


def test_key_states_say_obstacle_and_the_title_names_the_learner(tmp_path):
    import dqnkit.envs  # noqa: F401  (registers GridWorld-v0)

    env = gym.make("GridWorld-v0")
    u = env.unwrapped
    q = value_iteration_from_model(u.P, u.observation_space.n, u.action_space.n)
    _, markdown = policy_report(q, env, tmp_path, learner="DQN")
    assert markdown.startswith("## Greedy policy of DQN - GridWorld-v0\n")
    lines = markdown.splitlines()
    obstacle = next(line for line in lines if line.startswith("| Obstacle (1, 2)"))
    assert obstacle.rstrip(" |").endswith("| obstacle") and "terminal" not in obstacle
    assert next(line for line in lines if line.startswith("| Goal")).rstrip(" |").endswith("terminal")
    _, tabular = policy_report(q, env, tmp_path, learner="Tabular Q-learning")
    assert tabular.startswith("## Greedy policy of Tabular Q-learning - GridWorld-v0\n")


def test_shared_scale_is_one_colour_scale_for_several_pictures(tmp_path):
    import dqnkit.envs  # noqa: F401

    env = gym.make("GridWorld-v0")
    layout = grid_layout(env)
    q_a = np.random.default_rng(0).random((25, 4))
    q_b = 3 * q_a - 1
    q_b[24] = 100.0  # the goal's row is never coloured (terminal), so it must not stretch the scale
    coloured = [layout.to_state((r, c)) for r in range(5) for c in range(5)
                if (r, c) not in layout.terminal_cells and (r, c) not in layout.obstacles]
    low = min(q_a[coloured].max(axis=1).min(), q_b[coloured].max(axis=1).min())
    high = max(q_a[coloured].max(axis=1).max(), q_b[coloured].max(axis=1).max())
    assert shared_scale([(q_a, layout), (q_b, layout)]) == pytest.approx((low, high))
    # drawn on one scale, the colour bars (the right-hand strip) are the same picture; on their own, they differ
    images = {}
    for name, q, scale in (("a", q_a, (low, high)), ("b", q_b, (low, high)), ("b_alone", q_b, (None, None))):
        png, _ = policy_report(q, env, tmp_path / name, title="same title", vmin=scale[0], vmax=scale[1])
        images[name] = mpimg.imread(png)[:, -100:]
    assert np.array_equal(images["a"], images["b"])
    assert not np.array_equal(images["a"], images["b_alone"])
