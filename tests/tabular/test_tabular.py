"""Tabular Q-learning: Bellman update oracle, learning GridWorld/FrozenLake, determinism, save/load, run folder."""
from __future__ import annotations

import csv
import json
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

import dqnkit.envs  # noqa: F401  (registers GridWorld-v0)
from dqnkit.errors import CheckpointError, ConfigError, EnvError
from dqnkit.analysis.policy import greedy_path
from dqnkit.tabular import TabularQ, train_tabular

GAMMA = 0.99
N_ROWS = N_COLS = 5
START, GOAL, OBSTACLE = (0, 0), (4, 4), (1, 2)
MOVES = [(-1, 0), (0, 1), (1, 0), (0, -1)]  # up, right, down, left


def grid_step(pos, a):
    """The grid world's rules, written from the spec (independent of the env's code)."""
    r, c = pos[0] + MOVES[a][0], pos[1] + MOVES[a][1]
    nxt = (r, c) if 0 <= r < N_ROWS and 0 <= c < N_COLS else pos
    if nxt == GOAL:
        return nxt, 10.0, True
    if nxt == OBSTACLE:
        return nxt, -10.0, True
    return nxt, -1.0, False


def optimal_return_by_value_iteration(gamma=GAMMA):
    """Undiscounted return of the greedy policy of Q* (value iteration), from the start."""
    cells = [(r, c) for r in range(N_ROWS) for c in range(N_COLS)]
    v = {p: 0.0 for p in cells}
    for _ in range(500):
        new = {}
        for p in cells:
            if p in (GOAL, OBSTACLE):
                new[p] = 0.0
                continue
            outs = [grid_step(p, a) for a in range(4)]
            new[p] = max(rew + (0.0 if done else gamma * v[n]) for n, rew, done in outs)
        converged = max(abs(new[p] - v[p]) for p in cells) < 1e-12
        v = new
        if converged:
            break
    pos, total = START, 0.0
    for _ in range(100):
        outs = [grid_step(pos, a) for a in range(4)]
        pos, rew, done = max(outs, key=lambda o: o[1] + (0.0 if o[2] else gamma * v[o[0]]))
        total += rew
        if done:
            break
    return total


def shortest_path_len():
    """BFS from start to goal around the obstacle."""
    seen, queue = {START: 0}, deque([START])
    while queue:
        p = queue.popleft()
        for a in range(4):
            n, _, _ = grid_step(p, a)
            if n not in seen and n != OBSTACLE:
                seen[n] = seen[p] + 1
                queue.append(n)
    return seen[GOAL]


def test_oracle_optimal_return():
    # 8 moves: 7 of -1 and the last +10 (reaching the goal pays +10 instead of -1).
    assert shortest_path_len() == 8
    assert optimal_return_by_value_iteration() == -7.0 + 10.0


def test_bellman_update_truncation_bootstraps_termination_does_not():
    lr, gamma = 0.5, 0.9
    common = dict(learning_rate=lr, gamma=gamma, exploration_initial_eps=0.0, exploration_final_eps=0.0)
    # Truncation after 1 step (right, into state 1): bootstrap from max Q[1].
    learner = TabularQ("GridWorld-v0", max_episode_steps=1, **common)
    learner.q_table[0] = [0.0, 5.0, 0.0, 0.0]
    learner.q_table[1] = [2.0, 3.0, 1.0, 0.0]
    rec = learner.learn(1)[0]
    assert (rec.length, rec.episode_return, rec.env_step, rec.episode) == (1, -1.0, 1, 1)
    assert learner.q_table[0, 1] == pytest.approx(5.0 + lr * (-1.0 + gamma * 3.0 - 5.0))
    # Termination (the goal is one step right): no bootstrap, whatever Q[1] holds.
    learner = TabularQ("GridWorld-v0", env_kwargs={"goal": (0, 1)}, **common)
    learner.q_table[0] = [0.0, 5.0, 0.0, 0.0]
    learner.q_table[1] = [100.0, 100.0, 100.0, 100.0]
    learner.learn(1)
    assert learner.q_table[0, 1] == pytest.approx(5.0 + lr * (10.0 - 5.0))


def test_multiplicative_and_linear_epsilon():
    recs = TabularQ("GridWorld-v0", seed=0).learn(3)
    assert [r.epsilon for r in recs] == pytest.approx([1.0, 0.995, 0.995**2])
    recs = TabularQ("GridWorld-v0", exploration_schedule="linear", exploration_linear_env_steps=100).learn(30)
    eps = [r.epsilon for r in recs]
    assert eps[0] < 1.0 and eps == sorted(eps, reverse=True) and eps[-1] == pytest.approx(0.01)


def test_solves_gridworld_with_optimal_return():
    learner = TabularQ("GridWorld-v0", learning_rate=0.1, gamma=GAMMA, seed=0)
    learner.learn(500)
    env = gym.make("GridWorld-v0").unwrapped
    path = greedy_path(learner.q_table, env, env.start, max_steps=100)
    assert path.reached_goal and path.stop_reason == "goal" and path.positions[-1] == GOAL
    assert len(path.positions) - 1 == shortest_path_len()
    result = learner.evaluate(3)  # GridWorld is deterministic: every greedy episode is that path
    assert result["mean_return"] == optimal_return_by_value_iteration()
    assert result["lengths"] == [shortest_path_len()] * 3
    # From the "near start" key state (1, 0) the greedy path also reaches the goal.
    near = greedy_path(learner.q_table, env, (1, 0))
    assert near.positions[0] == (1, 0) and near.reached_goal and near.positions[-1] == GOAL


def test_solves_frozenlake_not_slippery():
    learner = TabularQ("FrozenLake-v1", env_kwargs={"is_slippery": False}, learning_rate=0.1, gamma=GAMMA, seed=0)
    learner.learn(1000)
    result = learner.evaluate(5)
    assert result["mean_return"] == 1.0 and result["std_return"] == 0.0
    assert result["episodes"] == 5 and result["returns"] == [1.0] * 5


def test_same_seed_same_qtable_and_different_seed_differs():
    a = TabularQ("GridWorld-v0", seed=3)
    b = TabularQ("GridWorld-v0", seed=3)
    c = TabularQ("GridWorld-v0", seed=4)
    ra, rb, _ = a.learn(100), b.learn(100), c.learn(100)
    np.testing.assert_array_equal(a.q_table, b.q_table)
    assert ra == rb
    assert not np.array_equal(a.q_table, c.q_table)


def test_slippery_runs_are_reproducible():
    kw = {"env_kwargs": {"is_slippery": True}, "seed": 1}
    a, b = TabularQ("FrozenLake-v1", **kw), TabularQ("FrozenLake-v1", **kw)
    a.learn(200), b.learn(200)
    np.testing.assert_array_equal(a.q_table, b.q_table)
    assert a.evaluate(20) == b.evaluate(20)


def test_save_load_round_trip_and_exact_resume(tmp_path):
    kw = {"env_kwargs": {"is_slippery": True}, "seed": 2, "learning_rate": 0.2}
    learner = TabularQ("FrozenLake-v1", **kw)
    learner.learn(150)
    learner.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["qtable.safetensors", "tabular.json"]
    meta = json.loads((tmp_path / "ckpt" / "tabular.json").read_text())
    assert meta["env_id"] == "FrozenLake-v1" and meta["env_kwargs"] == {"is_slippery": True}
    assert meta["config"]["learning_rate"] == 0.2 and meta["counters"]["episodes"] == 150
    assert load_file(str(tmp_path / "ckpt" / "qtable.safetensors"))["q_table"].dtype == np.float64

    loaded = TabularQ.load(tmp_path / "ckpt")
    np.testing.assert_array_equal(loaded.q_table, learner.q_table)
    assert (loaded.env_steps, loaded.episodes, loaded.config) == (learner.env_steps, learner.episodes, learner.config)
    # Learning on from the checkpoint gives exactly what learning on without a break gives.
    assert loaded.learn(50) == learner.learn(50)
    np.testing.assert_array_equal(loaded.q_table, learner.q_table)


def test_load_rejects_other_env_and_missing_files(tmp_path):
    learner = TabularQ("GridWorld-v0")
    learner.save(tmp_path / "grid")
    with pytest.raises(CheckpointError, match="spaces"):
        TabularQ.load(tmp_path / "grid", env="FrozenLake-v1")
    with pytest.raises(CheckpointError, match="missing"):
        TabularQ.load(tmp_path / "nothing")
    # A learner built from a callable needs the callable again.
    TabularQ(lambda: gym.make("GridWorld-v0")).save(tmp_path / "callable")
    with pytest.raises(CheckpointError, match="callable"):
        TabularQ.load(tmp_path / "callable")
    assert TabularQ.load(tmp_path / "callable", env=lambda: gym.make("GridWorld-v0")).n_states == 25


def test_rejects_unsuitable_envs_and_bad_config():
    with pytest.raises(EnvError, match="Discrete observation"):
        TabularQ("CartPole-v1")
    with pytest.raises(EnvError, match="Discrete action"):
        TabularQ("Pendulum-v1")
    with pytest.raises(ConfigError, match="learning_rate"):
        TabularQ("GridWorld-v0", learning_rate=0.0)
    with pytest.raises(ConfigError, match="unknown TabularQ option"):
        TabularQ("GridWorld-v0", lr=0.1)


def test_taxi_runs():
    learner = TabularQ("Taxi-v4", seed=0)
    recs = learner.learn(20)
    assert learner.q_table.shape == (500, 6) and len(recs) == 20 and learner.env_steps == recs[-1].env_step


def test_train_tabular_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    learner = train_tabular(
        "GridWorld-v0", episodes=300, learning_rate=0.1, gamma=GAMMA, seed=0, out_dir=out,
        eval_every_episodes=100, eval_episodes=2,
    )
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "episodes.csv", "eval.csv", "qtable.safetensors", "tabular.json"} <= names
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["algo"] == "tabular" and config["env_id"] == "GridWorld-v0" and config["episodes"] == 300
    with open(out / "episodes.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["env_step", "episode", "return", "length", "epsilon"] and len(rows) == 301
    assert int(rows[-1][0]) == learner.env_steps and int(rows[-1][1]) == 300
    assert sum(int(r[3]) for r in rows[1:]) == learner.env_steps
    with open(out / "eval.csv", newline="") as f:
        ev = list(csv.reader(f))
    assert ev[0] == ["env_step", "mean_return", "std_return"] and len(ev) == 4
    assert float(ev[-1][1]) == optimal_return_by_value_iteration()
    np.testing.assert_array_equal(TabularQ.load(out).q_table, learner.q_table)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_tabular("GridWorld-v0", episodes=1, seed=0, out_dir=out)
