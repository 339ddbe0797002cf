"""Guard rails: one warning per kind, in the progress output and run.json, when a setting caps learning."""
import json

import gymnasium as gym
import numpy as np
import pytest

from dqnkit.config import Config
from dqnkit.training.guards import Guards
from dqnkit.training.trainer import Trainer

FAST = dict(learning_starts=100, batch_size=32, buffer_size=5000, eval_freq=0, eval_episodes=1, checkpoint_freq=0,
            policy_kwargs={"net_arch": [8]}, tensorboard=False)


class Steady(gym.Env):
    """Episodes of exactly ``length`` steps with reward ``reward`` each."""

    def __init__(self, length=100, reward=1.0):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.length, self.reward, self.t = length, reward, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t / self.length, np.float32), self.reward, self.t >= self.length, False, {}


def train(tmp_path, env=None, steps=400, **extra):
    cfg = Config.from_dict({**FAST, "total_timesteps": steps, **extra})
    t = Trainer(cfg, tmp_path / "run", env=env, verbosity="plain")
    t.learn()
    t.close()
    return json.loads((tmp_path / "run" / "run.json").read_text())["warnings"]


def only(warnings, text):
    found = [w for w in warnings if text in w]
    assert len(found) == 1, warnings
    return found[0]


def test_c51_support_on_cartpole_default(tmp_path, capsys):
    warnings = train(tmp_path, None, steps=400, distributional=True, learning_starts=1000)  # random play: returns ~20
    text = only(warnings, "outside C51's support [v_min, v_max] = [-10, 10]")
    assert "--set v_max=" in text
    out = capsys.readouterr().out
    assert out.count("warning: a discounted return") == 1  # once, although many returns pass 10


def test_c51_support_that_covers_the_returns_gives_no_warning(tmp_path):
    # 20-step episodes of reward 1 at gamma 0.99: returns up to 18.2
    warnings = train(tmp_path, lambda: Steady(20), distributional=True, v_min=0.0, v_max=20.0)
    assert not any("C51" in w for w in warnings)
    assert any("C51" in w for w in train(tmp_path / "b", lambda: Steady(20), distributional=True, v_max=15.0))


def test_buffer_smaller_than_an_episode(tmp_path):
    warnings = train(tmp_path, lambda: Steady(100), buffer_size=64)
    assert "an episode lasted 100" in only(warnings, "buffer_size 64 holds 64 env steps per env")
    assert not any("buffer_size" in w for w in train(tmp_path / "b", lambda: Steady(100), buffer_size=100))


def test_buffer_per_env_with_several_envs():
    g = Guards(Config.from_dict({**FAST, "buffer_size": 300, "num_envs": 4}), 4)
    g.episode_end(75)
    assert not g.warnings
    g.episode_end(76)
    assert "holds 75 env steps per env" in g.warnings[0] and ">= 304" in g.warnings[0]


def test_learning_starts_smaller_than_batch_size(tmp_path, capsys):
    warnings = train(tmp_path, steps=200, learning_starts=10, batch_size=32)
    assert "set learning_starts >= 32" in only(warnings, "learning_starts (10) is smaller than batch_size (32)")
    assert "warning: learning_starts (10)" in capsys.readouterr().out
    assert train(tmp_path / "b", steps=200, learning_starts=32, batch_size=32) == []


def test_rewards_far_beyond_the_huber_region(tmp_path):
    warnings = train(tmp_path, lambda: Steady(20, reward=150.0))
    assert "a reward of 150" in only(warnings, "over 100x the Huber loss's linear region")
    assert train(tmp_path / "b", lambda: Steady(20, reward=150.0), loss="mse") == []
    assert train(tmp_path / "c", lambda: Steady(20, reward=99.0)) == []


def test_warnings_survive_resume_and_are_not_repeated(tmp_path, capsys):
    cfg = Config.from_dict({**FAST, "total_timesteps": 300, "learning_starts": 10})
    t = Trainer(cfg, tmp_path / "run", verbosity="plain")
    t.learn()
    t.close()
    capsys.readouterr()
    again = Trainer(cfg, tmp_path / "run", verbosity="plain")
    again.restore(tmp_path / "run" / "checkpoints" / "step_0000000300")
    again.learn(500)
    again.close()
    assert "warning:" not in capsys.readouterr().out
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["env_step"] == 500 and len(info["warnings"]) == 1


def test_no_per_step_guard_without_c51():
    g = Guards(Config.from_dict(FAST), 1)
    assert g.on_step is None and g.checks_rewards
    g.rewards(np.array([[1.0], [-500.0]]))
    assert not g.checks_rewards and "a reward of -500" in g.warnings[0]
    g = Guards(Config.from_dict({**FAST, "distributional": True}), 2)
    g.step(np.array([4.0, 1.0]), np.array([False, True]))
    g.step(np.array([4.0, 1.0]), np.array([False, False]))
    assert not g.warnings  # 4 + 0.99 * 4 = 7.96 and 1 (a new episode): inside [-10, 10]
    g.step(np.array([4.0, 1.0]), np.array([False, False]))
    assert "a discounted return of 11.9" in g.warnings[0] and g.on_step is None


def test_newest_rewards_across_the_ring_wrap():
    from dqnkit.replay import ReplayBuffer
    buf = ReplayBuffer(10, 1, (1,), np.float32)
    for t in range(13):
        buf.add(np.zeros((1, 1), np.float32), [0], [float(t)], [False], [False], np.zeros((1, 1), np.float32))
    assert buf.newest_rewards(4)[:, 0].tolist() == [9.0, 10.0, 11.0, 12.0]
    assert sorted(buf.newest_rewards(64)[:, 0].tolist()) == list(map(float, range(3, 13)))
