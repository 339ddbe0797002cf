"""per_round_sampling: a training round's PER batches drawn at once from the start-of-round priorities."""
import numpy as np
import pytest
import torch
from scipy import stats

from dqnkit.config import Config
from dqnkit.errors import ConfigError
from dqnkit.learner.agent import Agent
from dqnkit.population.members import Member
from dqnkit.population.trainer import PopulationTrainer
from dqnkit.replay import PrioritizedSampler, ReplayBuffer

from test_replay_per import filled, valid_index  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_round_draw_matches_the_priorities_chi_square():
    alpha, eps = 0.6, 1e-6
    buf = filled(capacity=33, alpha=alpha)
    index = valid_index(buf)
    td = np.random.default_rng(1).exponential(1.0, size=32)
    buf.update_priorities(index, td)
    p = (td + eps) ** alpha
    n_batches, batch, rounds = 50, 64, 40
    draws = np.concatenate([buf.sample_round(n_batches, batch, 0.4).index for _ in range(rounds)])
    assert draws.shape == (rounds * n_batches * batch,)
    counts = np.bincount(draws, minlength=33)
    assert counts[~np.isin(np.arange(33), index)].sum() == 0  # the newest (invalid) row is never drawn
    expected = p / p.sum() * draws.shape[0]
    chi2, pvalue = stats.chisquare(counts[index], expected)
    assert pvalue > 1e-3, (chi2, pvalue)
    # not one stratified draw of n_batches * batch spread over the batches: each batch covers the whole tree
    one = buf.sample_round(n_batches, batch, 0.4).index.reshape(n_batches, batch)
    spread = np.array([np.isin(index[p.argmax()], row) for row in one])
    assert spread.mean() > 0.9  # the heaviest slot shows up in (nearly) every batch


def test_round_of_one_is_sample_and_weights_are_per_batch():
    a, b = filled(seed=3), filled(seed=3)
    for buf in (a, b):
        buf.update_priorities(valid_index(buf), np.linspace(0.1, 5, 32))
    np.testing.assert_array_equal(a.sample(16, 0.5).index, b.sample_round(1, 16, 0.5).index)
    # batch g of a round is drawn like one sample() of the same generator state, batch by batch
    s = PrioritizedSampler(40, seed=5)
    s.on_write(np.arange(0), np.arange(40))
    s.update_priorities(np.arange(40), np.linspace(0.0, 3.0, 40))
    twin = PrioritizedSampler(40, seed=5)
    twin.load_state_dict(*s.state_dict())
    idx, w = s.sample_round(3, 8, 0, 40, 0.7)
    u = twin.rng.random((3, 8))  # the same uniforms, row per batch
    for g in range(3):
        target = (u[g] + np.arange(8)) * (twin.tree.total() / 8)
        np.testing.assert_array_equal(idx[g * 8:(g + 1) * 8], twin.tree.find(target))
        assert w[g * 8:(g + 1) * 8].max() == pytest.approx(1.0)  # normalised within its own batch


def small_buffer(cfg, rows=200):
    buf = ReplayBuffer(cfg.buffer_size, 1, (4,), np.float32, prioritized=True, alpha=cfg.alpha, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(rows):
        obs = rng.standard_normal((1, 4)).astype(np.float32)
        buf.add(obs, rng.integers(0, 2, 1), rng.standard_normal(1), rng.random(1) < 0.05, np.zeros(1, bool), obs)
    return buf


@pytest.mark.parametrize("options", [{}, {"noisy": True, "dueling": True, "double_q": True}])
def test_round_is_drawn_once_and_every_update_reaches_the_tree(options):
    cfg = Config.from_dict({"device": "cpu", "prioritized_replay": True, "per_round_sampling": True,
                            "batch_size": 16, "buffer_size": 500, "policy_kwargs": {"net_arch": [16]}, **options})
    agent, buf = Agent(cfg, (4,), 2), small_buffer(cfg)
    assert agent.batched_round
    calls, writes = [], []
    real_round, real_update = buf.sample_round, buf.update_priorities
    buf.sample = lambda *a, **k: pytest.fail("per_round_sampling must not draw batch by batch")
    buf.sample_round = lambda *a, **k: calls.append(a) or real_round(*a, **k)
    buf.update_priorities = lambda index, td: writes.append((index.copy(), np.array(td))) or real_update(index, td)
    before = np.array(buf.sampler.tree.leaves())
    metrics = list(agent.train_round(buf, 6, 16, 0.5))
    assert calls == [(6, 16, 0.5)] and len(metrics) == 6
    # the round's priorities are written once, at its end (its draws came from the start-of-round ones):
    # every update's td_abs, in update order, so a slot drawn twice keeps its later priority
    assert len(writes) == 1 and writes[0][0].shape == (6 * 16,)
    np.testing.assert_allclose(writes[0][1], np.concatenate([m["td_abs"].numpy() for m in metrics]))
    last = {}
    for index, td in writes:
        last.update(zip(index.tolist(), td.tolist()))
    leaves = buf.sampler.tree.leaves()
    for i, td in last.items():
        assert leaves[i] == pytest.approx((td + cfg.priority_epsilon) ** cfg.alpha)
    untouched = np.setdiff1d(np.flatnonzero(before), list(last))
    np.testing.assert_array_equal(leaves[untouched], before[untouched])


def test_default_draws_batch_by_batch():
    cfg = Config.from_dict({"device": "cpu", "prioritized_replay": True, "batch_size": 16, "buffer_size": 500,
                            "policy_kwargs": {"net_arch": [16]}})
    assert not cfg.per_round_sampling and not Agent(cfg, (4,), 2).batched_round


def test_population_refuses_per_round_sampling():
    cfg = Config.from_dict({"prioritized_replay": True, "per_round_sampling": True, "total_timesteps": 100})
    with pytest.raises(ConfigError, match="per_round_sampling=false"):
        PopulationTrainer([Member("s0", cfg, {})], None, verbosity="quiet")
