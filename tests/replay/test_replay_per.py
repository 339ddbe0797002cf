"""Proportional prioritised replay (Schaul et al. 2016): frequencies, IS weights, priority bookkeeping."""
import numpy as np
import pytest
import torch

from dqnkit.replay import PrioritizedSampler, ReplayBuffer


def filled(capacity=33, num_envs=1, n_step=1, rows=None, alpha=0.6, seed=0):
    buf = ReplayBuffer(capacity, num_envs, (1,), np.float32, n_step=n_step, prioritized=True, alpha=alpha, seed=seed)
    for t in range(buf.storage.num_rows if rows is None else rows):
        obs = np.full((num_envs, 1), t, np.float32)
        buf.add(obs, np.zeros(num_envs, int), np.zeros(num_envs), np.zeros(num_envs, bool), np.zeros(num_envs, bool), obs)
    return buf


def valid_index(buf):
    first, count = buf.storage.valid_range(buf.n_step)
    return (first + np.arange(count)) % buf.storage.num_slots


def test_sampling_frequencies_proportional_to_p_alpha():
    alpha, eps = 0.6, 1e-6
    buf = filled(capacity=33, alpha=alpha)  # 33 slots, 32 valid (the newest row is not)
    index = valid_index(buf)
    assert index.shape == (32,)
    td = np.random.default_rng(0).exponential(1.0, size=32)
    buf.update_priorities(index, td)
    p = (td + eps) ** alpha
    expected = np.zeros(33)
    expected[index] = p / p.sum()
    draws = 200_000
    counts = np.bincount(np.concatenate([buf.sample(1000).index for _ in range(draws // 1000)]), minlength=33)
    assert counts[~np.isin(np.arange(33), index)].sum() == 0  # the newest row is never drawn
    e = expected[index] * draws
    chi2 = ((counts[index] - e) ** 2 / e).sum()
    assert chi2 < 61.1  # 99.9% quantile of chi-square with 31 degrees of freedom
    np.testing.assert_allclose(counts[index] / draws, expected[index], atol=2e-3)


def test_is_weights_match_formula():
    buf = filled(capacity=50, num_envs=2, n_step=3)  # 25 rows, 22 valid -> 44 valid slots
    index = valid_index(buf)
    assert index.shape == (44,)
    td = np.linspace(0.0, 3.0, 44)
    buf.update_priorities(index, td)
    beta = 0.7
    b = buf.sample(64, beta=beta)
    p = (td + 1e-6) ** 0.6
    prob = dict(zip(index.tolist(), p / p.sum()))
    P = np.array([prob[i] for i in b.index])
    w = (44 * P) ** (-beta)
    np.testing.assert_allclose(b.is_weight.numpy(), w / w.max(), rtol=1e-6)
    assert b.is_weight.max().item() == pytest.approx(1.0)
    assert torch.all(buf.sample(64, beta=0.0).is_weight == 1.0)


def test_new_and_invalid_slots_priorities():
    n, N = 2, 2
    buf = filled(capacity=20, num_envs=N, n_step=n, rows=5)  # T = 10, rows 0..4 written, 0..2 valid
    leaves = buf.sampler.tree.leaves
    np.testing.assert_array_equal(leaves()[: 3 * N], 1.0)  # initial p_max = 1, 1 ** alpha
    np.testing.assert_array_equal(leaves()[3 * N :], 0.0)  # newest n rows and unwritten rows
    buf.update_priorities(np.array([0, 1, 1]), np.array([4.0, 9.0, 2.0]))  # duplicate: last wins
    assert leaves()[0] == pytest.approx((4.0 + 1e-6) ** 0.6)
    assert leaves()[1] == pytest.approx((2.0 + 1e-6) ** 0.6)
    assert buf.sampler.max_priority == pytest.approx(9.0 + 1e-6)  # p_max tracks every raw value given
    buf.add(np.zeros((N, 1)), [0, 0], [0, 0], [False, False], [False, False], np.zeros((N, 1)))
    # row 3 became valid with p_max ** alpha; row 5 (just written) stays 0
    np.testing.assert_allclose(leaves()[3 * N : 4 * N], (9.0 + 1e-6) ** 0.6)
    np.testing.assert_array_equal(leaves()[4 * N :], 0.0)


def test_priority_clip_bounds_priorities_and_p_max():
    buf = ReplayBuffer(20, 1, (1,), np.float32, prioritized=True, alpha=0.5, priority_clip=2.0, seed=0)
    for t in range(6):
        buf.add(np.full((1, 1), t, np.float32), [0], [0.0], [False], [False], np.full((1, 1), t, np.float32))
    buf.update_priorities(np.array([0, 1, 2]), np.array([0.5, 2.0, 500.0]))
    leaves = buf.sampler.tree.leaves()
    np.testing.assert_allclose(leaves[:3], (np.array([0.5, 2.0, 2.0]) + 1e-6) ** 0.5)
    assert buf.sampler.max_priority == pytest.approx(2.0 + 1e-6)  # the outlier does not become every newcomer's priority
    buf.add(np.zeros((1, 1)), [0], [0.0], [False], [False], np.zeros((1, 1)))
    assert buf.sampler.tree.leaves()[5] == pytest.approx((2.0 + 1e-6) ** 0.5)
    with pytest.raises(ValueError, match="priority_clip"):
        PrioritizedSampler(8, priority_clip=0.0)


def test_overwritten_row_loses_its_priority_and_stale_updates_are_ignored():
    buf = filled(capacity=8, num_envs=1, n_step=1, rows=8)  # full; row 0 oldest valid, row 7 newest
    leaves = buf.sampler.tree.leaves
    assert leaves()[0] > 0 and leaves()[7] == 0
    buf.add(np.zeros((1, 1)), [0], [0], [False], [False], np.zeros((1, 1)))  # overwrites row 0
    assert leaves()[0] == 0 and leaves()[7] > 0
    buf.update_priorities(np.array([0]), np.array([5.0]))  # slot 0 was overwritten since it was sampled
    assert leaves()[0] == 0
    assert not np.isin(np.concatenate([buf.sample(256).index for _ in range(20)]), [0]).any()


def test_update_priorities_accepts_tensors_and_rejects_nan():
    buf = filled(capacity=10)
    buf.update_priorities(np.array([2]), torch.tensor([3.0], requires_grad=True) * 1)
    assert buf.sampler.tree.get(np.array([2]))[0] == pytest.approx((3.0 + 1e-6) ** 0.6)
    with pytest.raises(ValueError, match="finite"):
        buf.update_priorities(np.array([2]), np.array([np.nan]))


def test_uniform_update_priorities_is_noop_and_weights_are_one():
    buf = ReplayBuffer(10, 1, (1,), np.float32, seed=0)
    for t in range(10):
        buf.add(np.zeros((1, 1)), [0], [0.0], [False], [False], np.zeros((1, 1)))
    buf.update_priorities(np.array([0, 1]), np.array([5.0, 1.0]))
    counts = np.bincount(np.concatenate([buf.sample(1000).index for _ in range(20)]), minlength=10)
    assert counts[9] == 0 and counts[:9].min() > 1800  # uniform over the 9 valid slots


def test_stratified_sampling_covers_all_segments():
    s = PrioritizedSampler(16, seed=0)
    s.on_write(np.arange(0), np.arange(16))  # all 16 slots valid with priority 1
    index, _ = s.sample(16, 0, 16)
    np.testing.assert_array_equal(np.sort(index), np.arange(16))  # one draw per equal segment
