"""Loss and learner invariants against hand-computed oracles."""
import numpy as np
import pytest
import torch

from dqnkit.learner.agent import Agent
from dqnkit.config import Config
from dqnkit.learner.losses import categorical_loss, categorical_projection, td_target, value_loss
from dqnkit.networks import NoisyLinear, QNetwork
from dqnkit.types import Batch


def test_td_target_masks_termination_only():
    reward = torch.tensor([1.0, 1.0])
    discount = torch.tensor([0.9, 0.9])
    terminated = torch.tensor([1.0, 0.0])
    next_q = torch.tensor([[5.0, 2.0], [5.0, 2.0]])
    y = td_target(reward, discount, terminated, next_q)
    assert y.tolist() == pytest.approx([1.0, 1.0 + 0.9 * 5.0])


def test_double_dqn_uses_online_argmax_target_value():
    next_q_target = torch.tensor([[10.0, 1.0]])
    next_q_online = torch.tensor([[0.0, 3.0]])  # online prefers action 1, target prefers 0
    y_double = td_target(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([0.0]), next_q_target, next_q_online)
    y_max = td_target(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([0.0]), next_q_target)
    assert y_double.item() == pytest.approx(1.0)
    assert y_max.item() == pytest.approx(10.0)


def test_importance_weights_apply_to_huber_and_mse():
    q = torch.tensor([0.0, 0.0], requires_grad=True)
    target = torch.tensor([0.5, 3.0])
    w = torch.tensor([2.0, 0.5])
    huber, td_abs = value_loss(q, target, w, "huber")
    expected = (2.0 * 0.5 * 0.5 ** 2 + 0.5 * (3.0 - 0.5)) / 2
    assert huber.item() == pytest.approx(expected)
    assert td_abs.tolist() == pytest.approx([0.5, 3.0])
    mse, _ = value_loss(q, target, w, "mse")
    assert mse.item() == pytest.approx((2.0 * 0.25 + 0.5 * 9.0) / 2)
    unweighted, _ = value_loss(q, target, None, "huber")
    ones, _ = value_loss(q, target, torch.ones(2), "huber")
    assert unweighted.item() == pytest.approx(ones.item())


def test_dueling_combines_value_and_mean_centred_advantage():
    net = QNetwork((3,), 4, net_arch=[8], dueling=True)
    x = torch.randn(5, 3)
    h = net.torso(x)
    v, a = net.value(h), net.advantage(h)
    expected = v + a - a.mean(dim=1, keepdim=True)
    assert torch.allclose(net(x), expected)


def test_noisy_linear_noise_eval_and_sigma_gradients():
    layer = NoisyLinear(6, 3, sigma0=0.5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6)
    layer.reset_noise(gen)
    y1 = layer(x)
    layer.reset_noise(gen)
    y2 = layer(x)
    assert not torch.allclose(y1, y2)
    layer.eval()
    assert torch.allclose(layer(x), layer(x))
    assert torch.allclose(layer(x), x @ layer.weight_mu.T + layer.bias_mu)
    layer.train()
    layer(x).sum().backward()
    assert layer.weight_sigma.grad is not None and layer.weight_sigma.grad.abs().sum() > 0
    assert layer.bias_sigma.grad.abs().sum() > 0


def test_c51_projection_hand_case_and_mass():
    support = torch.linspace(-2.0, 2.0, 5)  # atoms -2,-1,0,1,2
    probs = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])  # point mass at 0
    out = categorical_projection(probs, torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor([0.0]), support)
    assert out[0].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.5, 0.0])
    # gamma scales the support: z=1 with gamma 0.5 -> 0.5 plus reward 0 -> split between 0 and 1
    probs = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])
    out = categorical_projection(probs, torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([0.0]), support)
    assert out[0].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.5, 0.0])


def test_c51_projection_clips_outside_support_and_terminal():
    support = torch.linspace(-2.0, 2.0, 5)
    probs = torch.full((3, 5), 0.2)
    reward = torch.tensor([10.0, -10.0, 0.7])
    terminated = torch.tensor([0.0, 0.0, 1.0])
    out = categorical_projection(probs, reward, torch.tensor([0.9, 0.9, 0.9]), terminated, support)
    assert out[0].tolist() == pytest.approx([0, 0, 0, 0, 1.0])
    assert out[1].tolist() == pytest.approx([1.0, 0, 0, 0, 0])
    assert out[2].tolist() == pytest.approx([0, 0, 0.3, 0.7, 0])  # point mass at r=0.7


def test_c51_projection_keeps_total_probability():
    torch.manual_seed(0)
    support = torch.linspace(-10, 10, 51)
    probs = torch.softmax(torch.randn(256, 51), dim=-1)
    probs[:, :3] = 0.0  # keep mass off the edge atoms so small rewards never push it outside the support
    probs[:, -3:] = 0.0
    probs = probs / probs.sum(-1, keepdim=True)
    reward = torch.randn(256) * 5
    terminated = (torch.rand(256) < 0.2).float()
    discount = torch.full((256,), 0.99 ** 3)
    out = categorical_projection(probs, reward, discount, terminated, support)
    assert torch.allclose(out.sum(-1), torch.ones(256), atol=1e-5)
    assert (out >= 0).all()
    # the projection preserves the mean when nothing is clipped
    inside = (reward.abs() < 0.5) & (terminated == 0)
    mean_in = (probs * support).sum(-1) * discount + reward
    assert torch.allclose((out * support).sum(-1)[inside], mean_in[inside], atol=1e-4)


def test_categorical_loss_weights():
    logits = torch.zeros(2, 3, requires_grad=True)
    target = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    loss, per = categorical_loss(logits, target, torch.tensor([1.0, 0.0]))
    assert per.tolist() == pytest.approx([np.log(3)] * 2)
    assert loss.item() == pytest.approx(np.log(3) / 2)


def _batch(n=32, obs_dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.randint(0, 2, (n,), generator=g),
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g), torch.zeros(n),
                 torch.full((n,), 0.99), torch.ones(n), np.arange(n))


@pytest.mark.parametrize("options", [{}, {"double_q": True}, {"dueling": True}, {"distributional": True},
                                     {"noisy": True}, {"prioritized_replay": True}])
def test_online_update_leaves_target_unchanged(options):
    cfg = Config.from_dict({"device": "cpu", "policy_kwargs": {"net_arch": [16]}, **options})
    agent = Agent(cfg, (4,), 2)
    before_target = {k: v.clone() for k, v in agent.target.state_dict().items()}
    before_online = {k: v.clone() for k, v in agent.online.state_dict().items()}
    agent.update(_batch())
    for k, v in agent.target.state_dict().items():
        if not k.endswith(("eps_in", "eps_out")):
            assert torch.equal(v, before_target[k]), k
    changed = [k for k, v in agent.online.state_dict().items() if not torch.equal(v, before_online[k])]
    assert changed, "the online network did not move"


def test_hard_and_soft_sync_math():
    cfg = Config.from_dict({"device": "cpu", "policy_kwargs": {"net_arch": [8]}, "tau": 0.1})
    agent = Agent(cfg, (3,), 2)
    with torch.no_grad():
        for p in agent.target.parameters():
            p.fill_(1.0)
        for p in agent.online.parameters():
            p.fill_(3.0)
    agent.sync_target()
    for p in agent.target.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.1 * 3.0 + 0.9 * 1.0))
    agent.cfg = Config.from_dict({"device": "cpu", "policy_kwargs": {"net_arch": [8]}, "tau": 1.0})
    agent.sync_target()
    for p in agent.target.parameters():
        assert torch.equal(p, torch.full_like(p, 3.0))


def test_grad_clipping_by_norm_and_value():
    cfg = Config.from_dict({"device": "cpu", "policy_kwargs": {"net_arch": [8]}, "max_grad_norm": 1e-3,
                            "grad_clip_value": 1e-4, "learning_rate": 1e-3})
    agent = Agent(cfg, (4,), 2)
    metrics = agent.update(_batch())
    grads = [p.grad for p in agent.online.parameters()]
    assert max(g.abs().max().item() for g in grads) <= 1e-4 + 1e-9
    total = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
    assert total <= 1e-3 + 1e-7
    assert metrics["loss"].ndim == 0


@pytest.mark.parametrize("options", [{}, {"dueling": True}, {"noisy": True}, {"distributional": True},
                                     {"dueling": True, "noisy": True, "distributional": True}])
def test_nature_cnn_composes_with_every_head(options):
    net = QNetwork((4, 84, 84), 6, torso="nature_cnn", **options)
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    out = net(frames)
    expected = (2, 6, 51) if options.get("distributional") else (2, 6)
    assert out.shape == expected
    assert net.q_values(frames).shape == (2, 6)
    out.sum().backward()
    assert net.torso.conv[0].weight.grad is not None


def test_checkpoint_without_input_scale_loads_with_raw_inputs():
    """Runs written before uint8 MLP inputs were scaled carry no input_scale: they keep seeing raw values."""
    cfg = Config.from_dict({"device": "cpu", "policy_kwargs": {"net_arch": [8]}})
    old = Agent(cfg, (3,), 2, input_scale=1.0)
    tensors = {k: v for k, v in old.tensors().items() if not k.endswith("torso.input_scale")}
    new = Agent(cfg, (3,), 2, input_scale=1 / 255)
    new.load(tensors, old.meta())
    obs = np.array([[0, 100, 255]], dtype=np.uint8)
    assert float(new.online.torso.input_scale) == 1.0 and float(new.target.torso.input_scale) == 1.0
    assert np.allclose(new.q_values(obs), old.q_values(obs))
    scaled = Agent(cfg, (3,), 2, input_scale=1 / 255)
    scaled.load(scaled.tensors(), scaled.meta())
    assert float(scaled.online.torso.input_scale) == pytest.approx(1 / 255)
