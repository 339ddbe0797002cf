"""The NumPy-vectorised classic-control envs follow Gymnasium's own envs step for step (the oracle)."""
import gymnasium as gym
import numpy as np
import pytest

from dqnkit.envs.classic import SUPPORTED, make_classic_vector


def reference_rollout(env_id, seeds, actions):
    """Gymnasium's env per sub-env: reset(seed), then autoreset (reset() without a seed) at every end."""
    envs = [gym.make(env_id) for _ in seeds]
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)])
    out = []
    for a in actions:
        row = [env.step(int(ai)) for env, ai in zip(envs, a)]
        final = np.stack([r[0] for r in row])
        rew = np.array([r[1] for r in row], dtype=np.float64)
        term = np.array([r[2] for r in row])
        trunc = np.array([r[3] for r in row])
        nxt = final.copy()
        for i, env in enumerate(envs):
            if term[i] or trunc[i]:
                nxt[i] = env.reset()[0]
        out.append((nxt, rew, term, trunc, final))
    return obs, out


@pytest.mark.parametrize("env_id", SUPPORTED)
def test_trajectories_equal_gymnasium_bit_for_bit(env_id):
    seeds = np.array([3, 4, 17, 1000])
    rng = np.random.default_rng(0)
    n_actions = gym.make(env_id).action_space.n
    # mostly one action, so episodes run long (CartPole and MountainCar reach their time limits, Acrobot swings)
    actions = [np.where(rng.random(4) < 0.8, t // 50 % n_actions, rng.integers(0, n_actions, 4)) for t in range(1200)]
    ref_obs, ref = reference_rollout(env_id, seeds, actions)
    vec = make_classic_vector(env_id, 4)
    obs = vec.reset_members(seeds)
    assert obs.dtype == np.float32 and np.array_equal(obs, ref_obs)
    ends = 0
    for a, (nxt, rew, term, trunc, final) in zip(actions, ref):
        got = vec.step(a)
        for mine, theirs in zip(got, (nxt, rew, term, trunc, final)):
            np.testing.assert_array_equal(mine, theirs)
        ends += int((term | trunc).sum())
    assert ends >= 4  # autoreset was exercised


@pytest.mark.parametrize("env_id", SUPPORTED)
def test_snapshot_restore_continues_exactly(env_id):
    vec, other = make_classic_vector(env_id, 3), make_classic_vector(env_id, 3)
    current = vec.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(250):
        current = vec.step(rng.integers(0, vec.single_action_space.n, 3))[0]
    np.testing.assert_array_equal(other.restore(vec.snapshot()), current)
    for _ in range(300):
        a = rng.integers(0, vec.single_action_space.n, 3)
        for mine, theirs in zip(vec.step(a), other.step(a)):
            np.testing.assert_array_equal(mine, theirs)


def test_spaces_are_gymnasiums():
    for env_id in SUPPORTED:
        vec, ref = make_classic_vector(env_id, 2), gym.make(env_id)
        assert vec.single_observation_space == ref.observation_space
        assert vec.single_action_space == ref.action_space
