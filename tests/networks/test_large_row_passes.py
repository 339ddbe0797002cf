"""A forward over many rows without gradients (a round's target pass) runs in row chunks and, on AMD CPUs,
through oneDNN's linear (forced on and off here, whatever the CPU): it must equal the QNetwork's own forward
to float rounding, for a single plain MLP (mlp_fastpath.mlp_outputs, which the Agent's target passes take)
and for a population's stacked nets with every head."""
import pytest
import torch

from dqnkit.config import Config
from dqnkit.learner.agent import Agent
from dqnkit.learner.losses import td_target
from dqnkit.networks import QNetwork
from dqnkit.networks import batched, mlp_fastpath
from dqnkit.networks.batched import ROW_CHUNK, BatchedQNetwork
from dqnkit.networks.mlp_fastpath import mlp_outputs, plain_mlp_layers
from dqnkit.types import Batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEADS = {"plain": {}, "dueling": {"dueling": True}, "rainbow": {"dueling": True, "noisy": True, "distributional": True}}


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("onednn", [True, False])
def test_large_no_grad_forward_equals_each_member(head, onednn, monkeypatch):
    monkeypatch.setattr(mlp_fastpath, "ONEDNN", onednn and mlp_fastpath.ONEDNN_AVAILABLE)
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = QNetwork((6,), 3, net_arch=[64, 64], n_atoms=11, v_min=-5.0, v_max=5.0, **HEADS[head])
        if net.noisy:
            net.reset_noise(torch.Generator().manual_seed(seed + 10))
        nets.append(net)
    stacked = BatchedQNetwork(nets)
    rows = 2 * ROW_CHUNK + 300  # three chunks, the last one short
    obs = torch.randn(3, rows, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = stacked(obs)
        for m, net in enumerate(nets):
            torch.testing.assert_close(got[m], net(obs[m]), rtol=1e-5, atol=1e-5)
        # and the small-row path (baddbmm, no chunks) agrees with the large one row for row
        torch.testing.assert_close(got[:, :100], stacked(obs[:, :100]), rtol=1e-5, atol=1e-5)
    assert got.shape[1] == rows


def test_stacked_linear_takes_onednn_only_where_it_pays():
    x, w, b = torch.randn(2, 300, 8), torch.randn(2, 5, 8), torch.randn(2, 5)
    ref = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
    with torch.no_grad():
        torch.testing.assert_close(batched.stacked_linear(x, w, b), ref, rtol=1e-5, atol=1e-5)
    w.requires_grad_(True)  # with gradients: baddbmm, so autograd sees the op
    out = batched.stacked_linear(x, w, b)
    assert out.grad_fn is not None


@pytest.mark.parametrize("onednn", [True, False])
def test_mlp_outputs_over_many_rows_equal_the_module(onednn, monkeypatch):
    monkeypatch.setattr(mlp_fastpath, "ONEDNN", onednn and mlp_fastpath.ONEDNN_AVAILABLE)
    torch.manual_seed(0)
    net = QNetwork((6,), 3, net_arch=[64, 64])
    obs = torch.randn(ROW_CHUNK * 3 + 17, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(mlp_outputs(plain_mlp_layers(net), obs, net.torso.input_scale), net(obs),
                                   rtol=1e-5, atol=1e-5)
        small = obs[:64]  # under 256 rows: addmm, the module's own kernel, so equal bit for bit
        assert torch.equal(mlp_outputs(plain_mlp_layers(net), small, net.torso.input_scale), net(small))


def test_agent_round_targets_use_the_chunked_pass_and_equal_the_module():
    cfg = Config.from_dict({"device": "cpu", "policy_kwargs": {"net_arch": [32, 32]}})
    agent = Agent(cfg, (6,), 3)
    assert agent.fast_target_layers is not None
    g, n = torch.Generator().manual_seed(3), 4000
    big = Batch(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g), torch.randn(n, generator=g),
                torch.randn(n, 6, generator=g), (torch.rand(n, generator=g) < 0.1).float(), torch.full((n,), 0.99),
                torch.ones(n), torch.zeros(n).numpy())
    with torch.no_grad():
        want = td_target(big.reward, big.discount, big.terminated, agent.target(big.next_obs))
    torch.testing.assert_close(agent.fixed_targets(big), want, rtol=1e-5, atol=1e-5)
