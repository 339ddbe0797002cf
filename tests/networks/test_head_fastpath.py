"""The hand-derived dueling / noisy / C51 head backward equals autograd's (the oracle), and the agent's fast
path trains like its autograd path."""
import numpy as np
import pytest
import torch

from dqnkit.config import Config
from dqnkit.learner.agent import Agent
from dqnkit.learner.losses import categorical_loss, categorical_projection, value_loss
from dqnkit.networks import QNetwork
from dqnkit.networks.head_fastpath import (categorical_loss_and_grads, grouped_outputs, head_plan,
                                           head_td_loss_and_grads)
from dqnkit.networks.noisy import factorised_noise
from dqnkit.types import Batch

HEADS = {
    "dueling": {"dueling": True},
    "noisy": {"noisy": True},
    "c51": {"distributional": True},
    "dueling+noisy": {"dueling": True, "noisy": True},
    "dueling+c51": {"dueling": True, "distributional": True},
    "noisy+c51": {"noisy": True, "distributional": True},
    "rainbow": {"dueling": True, "noisy": True, "distributional": True},
}
OBS, ACTIONS, B = 5, 3, 64
RTOL, ATOL = 1e-5, 1e-6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_net(head, arch, seed):
    torch.manual_seed(seed)
    net = QNetwork((OBS,), ACTIONS, net_arch=arch, n_atoms=11, v_min=-5.0, v_max=5.0, **HEADS[head])
    if net.noisy:
        net.reset_noise(torch.Generator().manual_seed(seed + 100))
    return net


def autograd_loss(net, obs, action, target, w, kind):
    out = net(obs)
    if net.distributional:
        logits_sa = out[torch.arange(B), action]
        loss, td_abs = categorical_loss(logits_sa, target, w)
        return loss, td_abs, (logits_sa.detach().softmax(-1) * net.support).sum(-1)
    q_sa = out.gather(1, action[:, None]).squeeze(1)
    loss, td_abs = value_loss(q_sa, target, w, kind)
    return loss, td_abs, q_sa.detach()


def fast_loss(net, obs, action, target, w, kind):
    plan = head_plan(net)
    assert plan is not None
    if net.distributional:
        return categorical_loss_and_grads(plan, obs, action, target, w)
    return head_td_loss_and_grads(plan, obs, action, target, w, kind)


def problem(net, seed):
    g = torch.Generator().manual_seed(seed)
    obs, action = torch.randn(B, OBS, generator=g), torch.randint(0, ACTIONS, (B,), generator=g)
    if net.distributional:  # a real projected target: mass spread over neighbouring atoms
        next_probs = torch.rand(B, net.n_atoms, generator=g).softmax(-1)
        target = categorical_projection(next_probs, torch.randn(B, generator=g), torch.full((B,), 0.9),
                                        (torch.rand(B, generator=g) < 0.2).float(), net.support)
    else:
        target = torch.randn(B, generator=g) * 3  # spans both Huber branches
    return obs, action, target


# C51 heads have one loss (the cross-entropy): the loss kind applies to the scalar heads only
CASES = [(head, kind) for head in HEADS for kind in ("huber", "mse")
         if kind == "huber" or not HEADS[head].get("distributional")]


@pytest.mark.parametrize("head, kind", CASES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("arch", [[], [16, 8]])
def test_head_gradients_match_autograd(head, kind, weighted, arch):
    seed = len(arch) * 10 + weighted
    net = make_net(head, arch, seed)
    obs, action, target = problem(net, seed)
    w = torch.rand(B, generator=torch.Generator().manual_seed(seed)) + 0.5 if weighted else None
    ref_loss, ref_td, ref_q = autograd_loss(net, obs, action, target, w, kind)
    ref_loss.backward()
    ref = {n: p.grad.clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = None
    loss, td_abs, q_sa = fast_loss(net, obs, action, target, w, kind)
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(td_abs, ref_td, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(q_sa, ref_q, rtol=RTOL, atol=ATOL)
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=RTOL, atol=ATOL, msg=n)
    if net.noisy:  # sigma gets a gradient, and it is not mu's
        sig = [n for n in ref if "sigma" in n]
        assert sig and all(ref[n].abs().sum() > 0 for n in sig)
        assert not torch.allclose(ref["advantage.0.weight_sigma"], ref["advantage.0.weight_mu"])


@pytest.mark.parametrize("head", list(HEADS))
def test_clipped_gradients_match_autograd(head):
    """After clip_grad_norm_ as Agent._step_optimizer does it (a max norm well below the raw norm)."""
    net = make_net(head, [16], 3)
    obs, action, target = problem(net, 3)
    w = torch.rand(B) + 0.5
    autograd_loss(net, obs, action, target, w, "huber")[0].backward()
    ref_norm = torch.nn.utils.clip_grad_norm_(list(net.parameters()), 0.05, foreach=True)
    ref = [p.grad.clone() for p in net.parameters()]
    for p in net.parameters():
        p.grad = None
    fast_loss(net, obs, action, target, w, "huber")
    norm = torch.nn.utils.clip_grad_norm_(list(net.parameters()), 0.05, foreach=True)
    assert ref_norm > 0.1  # the clip bites
    torch.testing.assert_close(norm, ref_norm, rtol=RTOL, atol=ATOL)
    for p, g in zip(net.parameters(), ref):
        torch.testing.assert_close(p.grad, g, rtol=RTOL, atol=ATOL)


def test_eval_mode_noisy_layers_use_the_mean_weights():
    net = make_net("dueling+noisy", [8], 1)
    net.train(False)
    obs, action, target = problem(net, 1)
    autograd_loss(net, obs, action, target, None, "huber")[0].backward()
    ref = {n: (None if p.grad is None else p.grad.clone()) for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = None
    fast_loss(net, obs, action, target, None, "huber")
    for n, p in net.named_parameters():
        if ref[n] is None:
            assert p.grad is None, n
        else:
            torch.testing.assert_close(p.grad, ref[n], rtol=RTOL, atol=ATOL)


def test_plan_covers_only_what_it_computes():
    assert head_plan(QNetwork((4,), 2, net_arch=[8])) is None  # plain: mlp_fastpath
    assert head_plan(QNetwork((4,), 2, net_arch=[8], dueling=True, layer_norm=True)) is None
    assert head_plan(QNetwork((4, 84, 84), 2, torso="nature_cnn", dueling=True)) is None
    plan = head_plan(QNetwork((4,), 2, net_arch=[8, 8], dueling=True, noisy=True))
    assert len(plan.torso) == 2 and plan.value is not None


def agent_config(options, **extra):
    return Config.from_dict({"device": "cpu", "policy_kwargs": {"net_arch": [32, 32]}, "batch_size": 32,
                             "learning_rate": 3e-3, "max_grad_norm": 1.0, "n_atoms": 11, "v_min": -5.0,
                             "v_max": 5.0, **options, **extra})


def random_batches(k, weighted, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(k):
        out.append(Batch(torch.randn(32, OBS, generator=g), torch.randint(0, ACTIONS, (32,), generator=g),
                         torch.randn(32, generator=g) * 2, torch.randn(32, OBS, generator=g),
                         (torch.rand(32, generator=g) < 0.1).float(), torch.full((32,), 0.99),
                         torch.rand(32, generator=g) + 0.5 if weighted else torch.ones(32), np.zeros(32)))
    return out


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("extra", [{}, {"double_q": True, "prioritized_replay": True, "loss": "mse"}])
def test_agent_trains_the_same_with_and_without_the_fast_path(head, extra):
    """K updates on the same batches, fast path against autograd: the weights stay float-close."""
    fast = Agent(agent_config(HEADS[head], **extra), (OBS,), ACTIONS)
    slow = Agent(agent_config(HEADS[head], fast_path=False, **extra), (OBS,), ACTIONS)
    assert fast.fast_head is not None and slow.fast_head is None and slow.fast_layers is None
    for k, batch in enumerate(random_batches(30, bool(extra))):
        a, b = fast.update(batch), slow.update(batch)
        torch.testing.assert_close(a["loss"], b["loss"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a["grad_norm"], b["grad_norm"], rtol=1e-4, atol=1e-5)
        if k % 10 == 9:
            fast.sync_target()
            slow.sync_target()
    for (name, p), q in zip(fast.online.named_parameters(), slow.online.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    assert fast.updates == 30


def test_other_dueling_aggregations_fall_back_to_autograd():
    cfg = agent_config({"dueling": True})
    cfg.dueling_aggregation = "max"  # the field another branch adds: anything but "mean" is not covered
    assert Agent(cfg, (OBS,), ACTIONS).fast_head is None
    cfg.dueling_aggregation = "mean"
    assert Agent(cfg, (OBS,), ACTIONS).fast_head is not None
    noisy = agent_config({"noisy": True})
    noisy.dueling_aggregation = "max"  # no dueling head: the aggregation does not matter
    assert Agent(noisy, (OBS,), ACTIONS).fast_head is not None
    assert Agent(agent_config({}, fast_path=False), (OBS,), ACTIONS).fast_layers is None


@pytest.mark.parametrize("head", list(HEADS))
def test_grouped_outputs_equal_one_forward_per_noise_row(head):
    """Rows of group g under noise row g, in one pass (the factorised form), against set_noise + forward."""
    net = make_net(head, [16, 8], 5)
    groups, rows = 4, 7
    obs = torch.randn(groups * rows, OBS, generator=torch.Generator().manual_seed(5))
    noise = factorised_noise(torch.Generator().manual_seed(6), (groups, net.noise_dim)) if net.noisy else None
    if noise is None:  # no noisy layer: one forward, whatever the grouping
        torch.testing.assert_close(grouped_outputs(head_plan(net), obs, torch.zeros(groups, 0)), net(obs))
        return
    got = grouped_outputs(head_plan(net), obs, noise)
    for g in range(groups):
        net.set_noise(noise[g])
        torch.testing.assert_close(got[g * rows:(g + 1) * rows], net(obs[g * rows:(g + 1) * rows]),
                                   rtol=RTOL, atol=ATOL)
    assert not torch.allclose(got[:rows], net(obs[:rows]))  # the rows of group 0 did not take the last noise


def test_projection_of_every_action_equals_one_projection_per_action():
    support = torch.linspace(-5.0, 5.0, 11)
    g = torch.Generator().manual_seed(2)
    probs = torch.rand(B, ACTIONS, 11, generator=g).softmax(-1)
    reward, term = torch.randn(B, generator=g) * 3, (torch.rand(B, generator=g) < 0.2).float()
    got = categorical_projection(probs, reward, torch.full((B,), 0.9), term, support)
    for a in range(ACTIONS):
        torch.testing.assert_close(got[:, a], categorical_projection(probs[:, a], reward, torch.full((B,), 0.9),
                                                                     term, support))
    torch.testing.assert_close(got.sum(-1), torch.ones(B, ACTIONS))


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("double", [False, True])
def test_round_targets_train_like_each_update_computing_its_own(head, double):
    """A round's TD targets from one target-net pass (round_targets; with noisy nets each update's target noise
    is its own row) and Double DQN's online choice at s' from the loss's own forward over [s; s'], against
    every update computing its targets alone: the same losses and weights, to float rounding."""
    cfg = agent_config({**HEADS[head], "double_q": double})
    once, each = Agent(cfg, (OBS,), ACTIONS), Agent(cfg, (OBS,), ACTIONS)
    batches = random_batches(6, False, seed=4)
    big = Batch(*(torch.cat(f) for f in zip(*(b.tensors() for b in batches))),
                index=np.concatenate([b.index for b in batches]))
    noise = once.update_noise(len(batches))
    pre = once.round_targets(big, noise)
    assert pre, "every head of the fast path takes its round's targets at once"
    for g, batch in enumerate(batches):
        s = slice(g * 32, (g + 1) * 32)
        a = once.update(big.rows(s), noise=None if noise is None else noise[g], **{k: v[s] for k, v in pre.items()})
        b = each.update(batch, noise=None if noise is None else noise[g])
        torch.testing.assert_close(a["loss"], b["loss"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a["td_abs"], b["td_abs"], rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(once.online.named_parameters(), each.online.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
