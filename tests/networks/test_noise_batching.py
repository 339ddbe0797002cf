"""Noise resets drawn in one generator call: the layout each layer reads, the distribution, one call per round."""
import numpy as np
import pytest
import torch
from scipy import stats

from dqnkit.config import Config
from dqnkit.learner.agent import Agent
from dqnkit.networks import QNetwork
from dqnkit.networks.noisy import NoisyLinear, factorised_noise
from dqnkit.replay import ReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def f(x):
    return x.sign() * x.abs().sqrt()


def test_reset_noise_is_one_draw_split_layer_by_layer():
    net = QNetwork((5,), 3, net_arch=[8], dueling=True, noisy=True, distributional=True, n_atoms=7)
    layers = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(8, 21), (8, 7)]
    assert net.noise_dim == 8 + 21 + 8 + 7
    gen, oracle = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    net.reset_noise(gen)
    z = f(torch.randn(net.noise_dim, generator=oracle))
    assert torch.equal(gen.get_state(), oracle.get_state())  # exactly one call's worth of the stream
    assert torch.equal(layers[0].eps_in, z[:8]) and torch.equal(layers[0].eps_out, z[8:29])
    assert torch.equal(layers[1].eps_in, z[29:37]) and torch.equal(layers[1].eps_out, z[37:])


def test_one_layer_draws_what_it_drew_before():
    """A single noisy layer (noisy head without dueling) reads the stream as NoisyLinear.reset_noise does."""
    net = QNetwork((5,), 3, net_arch=[8], noisy=True)
    layer = NoisyLinear(8, 3)
    net.reset_noise(torch.Generator().manual_seed(1))
    layer.reset_noise(torch.Generator().manual_seed(1))
    assert torch.equal(net.advantage[0].eps_in, layer.eps_in) and torch.equal(net.advantage[0].eps_out, layer.eps_out)


def test_batched_noise_has_the_factorised_distribution():
    eps = factorised_noise(torch.Generator().manual_seed(0), (4000, 2, 10))
    z = (eps.sign() * eps * eps).numpy()  # f^-1: each entry should be its own standard normal
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    # entries are independent: no correlation between layers, nets or updates
    flat = z.reshape(4000, -1)
    corr = np.corrcoef(flat, rowvar=False)
    assert np.abs(corr[~np.eye(20, dtype=bool)]).max() < 0.08
    assert np.abs(np.corrcoef(flat[:-1, 0], flat[1:, 0])[0, 1]) < 0.08


def test_a_training_round_draws_its_noise_in_one_call():
    cfg = Config.from_dict({"device": "cpu", "noisy": True, "dueling": True, "batch_size": 8, "buffer_size": 200,
                            "policy_kwargs": {"net_arch": [8]}, "seed": 3})
    agent = Agent(cfg, (4,), 2)
    buf = ReplayBuffer(200, 1, (4,), np.float32, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs = rng.standard_normal((1, 4)).astype(np.float32)
        buf.add(obs, rng.integers(0, 2, 1), rng.standard_normal(1), np.zeros(1, bool), np.zeros(1, bool), obs)
    oracle = torch.Generator()
    oracle.set_state(agent.noise_gen.get_state())
    expected = f(torch.randn(5, 2, agent.online.noise_dim, generator=oracle))
    seen = []
    real = agent.update
    agent.update = lambda batch, **k: seen.append(k["noise"]) or real(batch, **k)
    list(agent.train_round(buf, 5, 8, 0.4))
    assert torch.equal(agent.noise_gen.get_state(), oracle.get_state())
    assert torch.equal(torch.stack(seen), expected)
    # the target net holds the last update's target row
    tgt = [m for m in agent.target.modules() if isinstance(m, NoisyLinear)]
    assert torch.equal(torch.cat([tgt[0].eps_in, tgt[0].eps_out, tgt[1].eps_in, tgt[1].eps_out]), expected[-1, 1])


def test_set_noise_reads_the_layout_it_documents():
    net = QNetwork((3,), 2, net_arch=[4], dueling=True, noisy=True)
    eps = torch.arange(float(net.noise_dim))
    net.set_noise(eps)
    layers = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    got = torch.cat([t for m in layers for t in (m.eps_in, m.eps_out)])
    assert torch.equal(got, eps)
