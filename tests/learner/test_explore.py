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
