"""The hand-written MLP backward equals autograd's gradients (the oracle)."""
import pytest
import torch

from dqnkit.learner.losses import value_loss
from dqnkit.networks import QNetwork
from dqnkit.networks.mlp_fastpath import plain_mlp_layers, td_loss_and_grads


@pytest.mark.parametrize("kind", ["huber", "mse"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("arch", [[], [16], [32, 8, 8]])
def test_fast_gradients_match_autograd(kind, weighted, arch):
    torch.manual_seed(len(arch) * 10 + weighted)
    net = QNetwork((5,), 3, net_arch=arch)
    obs, action = torch.randn(64, 5), torch.randint(0, 3, (64,))
    target = torch.randn(64) * 3  # spans both Huber branches
    w = torch.rand(64) + 0.5 if weighted else None
    q_sa = net(obs).gather(1, action[:, None]).squeeze(1)
    ref_loss, ref_td = value_loss(q_sa, target, w, kind)
    ref_loss.backward()
    ref = [p.grad.clone() for p in net.parameters()]
    for p in net.parameters():
        p.grad = None
    layers = plain_mlp_layers(net)
    loss, td_abs, fast_q = td_loss_and_grads(layers, obs, action, target, w, kind)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    assert torch.allclose(td_abs, ref_td, atol=1e-5)
    assert torch.allclose(fast_q, q_sa.detach(), atol=1e-6)
    for p, g in zip(net.parameters(), ref):
        assert torch.allclose(p.grad, g, atol=1e-6, rtol=1e-4)


def test_other_heads_are_not_plain():
    assert plain_mlp_layers(QNetwork((4,), 2, net_arch=[8], dueling=True)) is None
    assert plain_mlp_layers(QNetwork((4,), 2, net_arch=[8], noisy=True)) is None
    assert plain_mlp_layers(QNetwork((4,), 2, net_arch=[8], distributional=True)) is None
    assert len(plain_mlp_layers(QNetwork((4,), 2, net_arch=[8, 8]))) == 3


def test_fast_path_scales_uint8_inputs_like_the_torso():
    torch.manual_seed(3)
    net = QNetwork((2, 3), 4, net_arch=[16], input_scale=1 / 255)
    obs = torch.randint(0, 256, (32, 2, 3), dtype=torch.uint8)
    action, target = torch.randint(0, 4, (32,)), torch.randn(32)
    q_sa = net(obs).gather(1, action[:, None]).squeeze(1)
    ref_loss, _ = value_loss(q_sa, target, None, "huber")
    ref_loss.backward()
    ref = [p.grad.clone() for p in net.parameters()]
    loss, _, fast_q = td_loss_and_grads(plain_mlp_layers(net), obs, action, target, None, "huber",
                                        net.torso.input_scale)
    assert torch.allclose(fast_q, q_sa.detach(), atol=1e-6)
    for p, g in zip(net.parameters(), ref):
        assert torch.allclose(p.grad, g, atol=1e-6, rtol=1e-4)
    # the scale is applied: the same bytes as floats 0..255 give other Q-values
    assert not torch.allclose(net(obs), net(obs.float()))
    assert torch.allclose(net(obs), net(obs.float() / 255), atol=1e-6)


def test_layer_norm_torso_takes_autograd():
    net = QNetwork((4,), 2, net_arch=[8, 8], layer_norm=True)
    assert plain_mlp_layers(net) is None
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in net.modules()) == 2
