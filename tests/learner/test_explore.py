import math

import numpy as np
import pytest

from dqnkit.learner.explore import EpsilonSchedule, epsilon_greedy


def test_linear_schedule_at_known_steps():
    s = EpsilonSchedule("linear", 1.0, 0.1, linear_env_steps=1000)
    assert s.value(0, 0) == pytest.approx(1.0)
    assert s.value(500, 0) == pytest.approx(0.55)
    assert s.value(1000, 0) == pytest.approx(0.1)
    assert s.value(10_000, 0) == pytest.approx(0.1)


def test_exponential_schedule_matches_seed_formula():
    s = EpsilonSchedule("exponential", 0.9, 0.05, decay_env_steps=1000)
    for step in [0, 1, 500, 1000, 5000]:
        assert s.value(step, 0) == pytest.approx(0.05 + 0.85 * math.exp(-step / 1000))


def test_multiplicative_schedule_per_episode():
    s = EpsilonSchedule("multiplicative", 1.0, 0.01, episode_decay=0.995)
    assert s.value(12345, 0) == 1.0
    assert s.value(0, 10) == pytest.approx(0.995 ** 10)
    assert s.value(0, 10_000) == pytest.approx(0.01)


def test_epsilon_greedy_rate():
    rng = np.random.default_rng(0)
    greedy = np.zeros(100_000, dtype=np.int64)
    acts = epsilon_greedy(greedy, 0.3, 4, rng)
    # a random action equals the greedy one 1/4 of the time: non-greedy share = 0.3 * 3/4
    assert np.mean(acts != 0) == pytest.approx(0.225, abs=0.01)
    assert (epsilon_greedy(greedy[:10], 0.0, 4, rng) == 0).all()


@pytest.mark.parametrize("num_envs", [1, 3])
def test_act_skips_the_forward_when_every_env_explores_and_stays_exact(num_envs):
    """Agent.act draws the exploring half first (epsilon_draws): the same actions and the same generator state
    as a forward for every step followed by epsilon_greedy, with no forward when all envs explore."""
    from dqnkit.config import Config
    from dqnkit.learner.agent import Agent

    agent = Agent(Config.from_dict({"device": "cpu", "seed": 0, "policy_kwargs": {"net_arch": [8]}}), (3,), 4)
    forwards = []
    agent.online.register_forward_hook(lambda *_: forwards.append(1))
    obs = np.random.default_rng(1).normal(size=(num_envs, 3)).astype(np.float32)
    greedy = agent.q_values(obs).argmax(axis=1)
    forwards.clear()
    fast, slow = np.random.default_rng(7), np.random.default_rng(7)
    for epsilon in [0.0, 0.3, 0.9, 1.0] * 25:
        assert np.array_equal(agent.act(obs, epsilon, fast), epsilon_greedy(greedy, epsilon, 4, slow))
    assert fast.random() == slow.random()
    assert 25 <= len(forwards) <= 75  # epsilon 0 always runs it (25 calls); epsilon 1 never does (25 calls)
