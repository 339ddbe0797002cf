"""Tabular Q-learning on Box observations: the cells (against np.digitize), the one-line errors, a 2-D plane the
learner solves, exact resume with the saved bins, and the CLI (tabular --bins, eval, policy's state map)."""
import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from dqnkit.analysis.qmap import state_maps
from dqnkit.cli import main
from dqnkit.envs.discretize import DiscretizeObservation, Discretizer, parse_bins, parse_bounds
from dqnkit.errors import ConfigError
from dqnkit.tabular import TabularQ, train_tabular


class Plane(gym.Env):
    """A point in the unit square starts near (0, 0) and moves 0.1 per step (left, right, down, up); reaching
    x, y >= 0.9 ends the episode. Reward -1 per step: the best return is -18, a random walk's about -50."""

    def __init__(self):
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(4)
        self.moves = np.array([[-0.1, 0], [0.1, 0], [0, -0.1], [0, 0.1]])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(0.0, 0.1, size=2)
        return self.pos.astype(np.float32), {}

    def step(self, action):
        self.pos = np.clip(self.pos + self.moves[int(action)], 0.0, 1.0)
        done = bool((self.pos >= 0.9 - 1e-9).all())
        return self.pos.astype(np.float32), -1.0, done, False, {}


def make_plane():
    return gym.wrappers.TimeLimit(Plane(), max_episode_steps=50)


PLANE = dict(bins=10, learning_rate=0.5, gamma=0.99, exploration_initial_eps=1.0, exploration_final_eps=0.05,
             exploration_episode_decay=0.98, seed=0)


def test_cells_match_np_digitize_and_ravel_multi_index():
    space = spaces.Box(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), dtype=np.float64)
    cut = Discretizer(space, [20, 7])
    rng = np.random.default_rng(0)
    obs = rng.uniform([-1.5, -0.1], [0.9, 0.1], size=(500, 2))  # some outside the bounds: the end bins
    for d, b in enumerate([20, 7]):
        edges = np.linspace(space.low[d], space.high[d], b + 1)[1:-1]
        np.testing.assert_array_equal(cut.cells(obs)[:, d], np.digitize(obs[:, d], edges))
    expected = np.ravel_multi_index(tuple(cut.cells(obs).T), (20, 7))
    assert [cut.index(o) for o in obs] == expected.tolist()
    assert cut.n == 140 and cut.describe()["bins"] == [20, 7]


def test_bins_and_bounds_parse_and_bad_input_is_one_line():
    assert parse_bins("20") == [20] and parse_bins("20,10") == [20, 10]
    assert parse_bounds("-2.4:2.4,,-3:3") == [[-2.4, 2.4], None, [-3.0, 3.0]]
    with pytest.raises(ConfigError, match="one lo:hi range per dimension"):
        parse_bounds("-3..3")
    env = gym.make("CartPole-v1")
    with pytest.raises(ConfigError, match=r"CartPole-v1's observation dimension 1 is unbounded \(\[-inf, inf\]\), "
                                          r"so --bins cannot cut it; give its range with --bounds") as info:
        DiscretizeObservation(env, 6)
    assert "\n" not in str(info.value)
    wrapped = DiscretizeObservation(env, 6, [None, [-3, 3], None, [-3.5, 3.5]])
    assert wrapped.observation_space == spaces.Discrete(6 ** 4)
    with pytest.raises(ConfigError, match="4 dimensions"):
        DiscretizeObservation(env, [6, 6])


def test_the_learner_solves_a_2d_plane_and_resumes_exactly(tmp_path):
    learner = TabularQ(make_plane, **PLANE)
    assert learner.n_states == 100 and learner.config.bounds == [[0.0, 1.0], [0.0, 1.0]]
    untrained = learner.evaluate(20)["mean_return"]
    learner.learn(150)
    learner.save(tmp_path / "half")
    learner.learn(150)
    result = learner.evaluate(20)
    assert untrained == -50.0 and result["mean_return"] >= -20, result  # the best possible is -18
    resumed = TabularQ.load(tmp_path / "half", env=make_plane)
    assert resumed.config.bins == [10, 10]
    resumed.learn(150)
    np.testing.assert_array_equal(resumed.q_table, learner.q_table)


def test_state_maps_put_each_cell_where_its_state_is():
    q = np.zeros((3 * 4, 2))
    q[np.ravel_multi_index((2, 1), (3, 4)), 1] = 5.0  # dimension-0 bin 2, dimension-1 bin 1: action 1
    q[np.ravel_multi_index((0, 3), (3, 4)), 0] = 2.0
    greedy, best = state_maps(q, [3, 4])
    assert greedy.shape == (4, 3)  # rows: dimension 1 (the picture's y axis)
    assert greedy[1, 2] == 1 and best[1, 2] == 5.0 and greedy[3, 0] == 0 and best[3, 0] == 2.0
    assert (greedy == -1).sum() == 10  # never updated


def test_the_cli_trains_mountaincar_on_bins_then_evals_and_draws_the_map(tmp_path, capsys):
    run = tmp_path / "mc"
    assert main(["tabular", "--env", "MountainCar-v0", "--bins", "8,6", "--episodes", "10", "--eval-episodes", "1",
                 "--set", "exploration_initial_eps=0.5", "--out", str(run), "--quiet"]) == 0
    config = json.loads((run / "tabular.json").read_text())["config"]
    assert config["bins"] == [8, 6] and config["exploration_initial_eps"] == 0.5
    assert config["bounds"][1] == pytest.approx([-0.07, 0.07])
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["returns"] == [-200.0]
    assert main(["policy", str(run)]) == 0
    out = capsys.readouterr().out
    assert "8 x 6 cells" in out and (run / "plots" / "policy.png").stat().st_size > 10_000
    assert main(["tabular", "--env", "CartPole-v1", "--bins", "6", "--episodes", "1", "--out",
                 str(tmp_path / "cp"), "--quiet"]) == 2
    assert "unbounded" in capsys.readouterr().err


def test_train_tabular_keeps_bins_in_the_run_folder(tmp_path):
    learner = train_tabular(make_plane, episodes=20, out_dir=tmp_path / "plane", eval_episodes=1, **PLANE)
    assert learner.config.bins == [10, 10]
    saved = TabularQ.load(tmp_path / "plane", env=make_plane)
    np.testing.assert_array_equal(saved.q_table, learner.q_table)
