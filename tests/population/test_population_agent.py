"""Member m of a population equals a single-network Agent with member m's config (the oracle), and
per-member clipping and optimizers do not mix members."""
import numpy as np
import pytest
import torch

from dqnkit.config import Config
from dqnkit.learner.agent import Agent
from dqnkit.population.agent import PopulationAgent
from dqnkit.population.optim import MemberOptimizer, clip_per_member
from dqnkit.types import Batch

OBS, ACTIONS, B = 5, 3, 16


def configs(options, overrides=({}, {}, {})):
    base = {"device": "cpu", "policy_kwargs": {"net_arch": [16, 16]}, "batch_size": B, **options}
    lrs = [1e-3, 3e-3, 5e-4]
    return [Config.from_dict({**base, "seed": s, "learning_rate": lrs[i], **overrides[i]})
            for i, s in enumerate([0, 1, 2])]


def batches(k, seed=0, weighted=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(k):
        out.append(Batch(torch.randn(3, B, OBS, generator=g), torch.randint(0, ACTIONS, (3, B), generator=g),
                         torch.randn(3, B, generator=g) * 3, torch.randn(3, B, OBS, generator=g),
                         (torch.rand(3, B, generator=g) < 0.1).float(), torch.full((3, B), 0.99),
                         torch.rand(3, B, generator=g) + 0.5 if weighted else torch.ones(3, B), np.zeros((3, B))))
    return out


def member_batch(batch, m):
    return batch.rows(m)


@pytest.mark.parametrize("options, overrides", [
    ({}, ({}, {}, {})),
    ({}, ({"double_q": True}, {"loss": "mse"}, {"max_grad_norm": 0.05})),
    ({"dueling": True}, ({}, {"double_q": True}, {"tau": 0.1})),
    ({"noisy": True}, ({}, {}, {"double_q": True})),
    ({"distributional": True, "v_min": -5.0, "v_max": 5.0}, ({}, {"double_q": True}, {})),
    ({"prioritized_replay": True}, ({}, {}, {"grad_clip_value": 0.01})),
    ({"policy_kwargs": {"net_arch": [16], "layer_norm": True}}, ({}, {"optimizer": "adam"}, {})),
])
def test_member_follows_a_single_agent(options, overrides):
    cfgs = configs(options, overrides)
    pop = PopulationAgent(cfgs, (OBS,), ACTIONS)
    singles = [Agent(c, (OBS,), ACTIONS) for c in cfgs]
    for k, batch in enumerate(batches(25, weighted=options.get("prioritized_replay", False))):
        got = pop.update(batch)
        for m, agent in enumerate(singles):
            ref = agent.update(member_batch(batch, m))
            assert torch.allclose(got["loss"][m], ref["loss"], rtol=1e-4, atol=1e-6)
            assert torch.allclose(got["td_abs"][m], ref["td_abs"], rtol=1e-4, atol=1e-5)
        if k % 10 == 9:
            due = np.array([True, k % 20 == 19, True])
            pop.sync_target(due)
            for m, agent in enumerate(singles):
                if due[m]:
                    agent.sync_target()
    for m, agent in enumerate(singles):
        state = pop.online.member_state_dict(m)
        for name, value in agent.online.state_dict().items():
            assert torch.allclose(state[name], value, rtol=1e-4, atol=1e-5), (m, name)
        tstate = pop.target.member_state_dict(m)
        for name, value in agent.target.state_dict().items():
            assert torch.allclose(tstate[name], value, rtol=1e-4, atol=1e-5), (m, name)


def test_member_agent_round_trip_is_an_ordinary_checkpoint():
    cfgs = configs({})
    pop = PopulationAgent(cfgs, (OBS,), ACTIONS)
    for batch in batches(3):
        pop.update(batch)
    agent = pop.member_agent(1)
    assert agent.updates == 3 and agent.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3)
    other = PopulationAgent(cfgs, (OBS,), ACTIONS)
    other.load_member(1, agent)
    batch = batches(1, seed=9)[0]
    a, b = pop.update(batch), other.update(batch)
    assert torch.allclose(a["loss"][1], b["loss"][1])
    assert torch.equal(pop.online.p("torso.net.1.weight")[1], other.online.p("torso.net.1.weight")[1])


def test_clip_grad_norm_is_per_member_not_global():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    p.grad = torch.tensor([[30.0, 40.0, 0.0], [0.3, 0.4, 0.0]])  # norms 50 and 0.5
    norms = clip_per_member([p], torch.tensor([1.0, 1.0]), None)
    assert torch.allclose(norms, torch.tensor([50.0, 0.5]))
    assert torch.allclose(p.grad[0].norm(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(p.grad[1], torch.tensor([0.3, 0.4, 0.0]))  # untouched: a global norm would shrink it
    q = torch.nn.Parameter(torch.zeros(2, 3))
    q.grad = torch.tensor([[30.0, 40.0, 0.0], [0.3, 0.4, 0.0]])
    torch.nn.utils.clip_grad_norm_([q], 1.0)  # the bug this guards against: one norm for both members
    assert not torch.allclose(q.grad[1], torch.tensor([0.3, 0.4, 0.0]))


@pytest.mark.parametrize("kind, amsgrad, wd", [("adam", False, 0.0), ("adam", True, 0.01), ("adamw", False, 0.1),
                                               ("rmsprop", False, 0.0)])
def test_member_optimizer_equals_torch_optim_per_member(kind, amsgrad, wd):
    torch.manual_seed(0)
    init = torch.randn(3, 4, 2)
    lrs, eps = [1e-2, 3e-3, 1e-1], [1e-8, 1e-5, 1e-8]
    stacked = torch.nn.Parameter(init.clone())
    opt = MemberOptimizer([stacked], kind, lrs, eps, [wd] * 3, amsgrad=amsgrad)
    refs, ref_opts = [], []
    for m in range(3):
        p = torch.nn.Parameter(init[m].clone())
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}[kind]
        kwargs = {"amsgrad": amsgrad} if kind != "rmsprop" else {}
        refs.append(p)
        ref_opts.append(cls([p], lr=lrs[m], eps=eps[m], weight_decay=wd, **kwargs))
    for step in range(30):
        grad = torch.randn(3, 4, 2) * (10.0 ** (step % 3 - 1))
        stacked.grad = grad.clone()
        opt.step()
        for m in range(3):
            refs[m].grad = grad[m].clone()
            ref_opts[m].step()
    for m in range(3):
        assert torch.allclose(stacked[m], refs[m], rtol=1e-5, atol=1e-6), m


@pytest.mark.parametrize("members", [2, 5, 17])
@pytest.mark.parametrize("kind, amsgrad", [("adam", False), ("adam", True), ("adamw", False)])
def test_shared_settings_step_all_members_in_one_call_bit_for_bit(members, kind, amsgrad):
    """Members that share lr/eps/weight decay step in one fused call over the stacked tensors; each member's
    weights stay bit for bit those of torch.optim's fused Adam on that member alone, also for parameters whose
    per-member size (an output bias of 2, a 7x3 block) puts some members in the kernel's scalar tail."""
    torch.manual_seed(1)
    shapes = [(members, 4, 256), (members, 256), (members, 256, 2), (members, 2), (members, 7, 3)]
    init = [torch.randn(*shape) for shape in shapes]
    stacked = [torch.nn.Parameter(x.clone()) for x in init]
    opt = MemberOptimizer(stacked, kind, [1e-3] * members, [1e-8] * members, [0.01] * members, amsgrad=amsgrad)
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    refs = [[torch.nn.Parameter(x[m].clone()) for x in init] for m in range(members)]
    ref_opts = [cls(r, lr=1e-3, eps=1e-8, weight_decay=0.01, amsgrad=amsgrad, fused=True) for r in refs]
    for _ in range(4):
        grads = [torch.randn(*shape) for shape in shapes]
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        opt.step()
        for m in range(members):
            for r, g in zip(refs[m], grads):
                r.grad = g[m].clone()
            ref_opts[m].step()
    for m in range(members):
        for i in range(len(shapes)):
            assert torch.equal(stacked[i].detach()[m], refs[m][i].detach()), (m, shapes[i])


def test_members_loaded_at_different_steps_keep_their_own_counts():
    """Members resumed from different step counts (load_member_state) and with different learning rates (groups
    of some members) step as torch.optim's fused Adam steps each alone, bit for bit, and report their own
    step counts in member_state."""
    torch.manual_seed(2)
    shapes, lrs, first = [(3, 5, 7), (3, 2)], [1e-3, 1e-3, 5e-4], [2, 5, 2]
    refs = [[torch.nn.Parameter(torch.randn(*shape[1:])) for shape in shapes] for _ in range(3)]
    ref_opts = [torch.optim.Adam(refs[m], lr=lrs[m], fused=True) for m in range(3)]
    for m in range(3):
        for _ in range(first[m]):
            for r in refs[m]:
                r.grad = torch.randn_like(r)
            ref_opts[m].step()
    stacked = [torch.nn.Parameter(torch.stack([refs[m][i].detach().clone() for m in range(3)]))
               for i in range(len(shapes))]
    opt = MemberOptimizer(stacked, "adam", lrs, [1e-8] * 3, [0.0] * 3)
    for m in range(3):
        opt.load_member_state(m, [ref_opts[m].state[r] for r in refs[m]])
    for _ in range(3):
        grads = [torch.randn(*shape) for shape in shapes]
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        opt.step()
        for m in range(3):
            for r, g in zip(refs[m], grads):
                r.grad = g[m].clone()
            ref_opts[m].step()
    for m in range(3):
        assert [float(st["step"]) for st in opt.member_state(m)] == [first[m] + 3.0] * len(shapes)
        for i in range(len(shapes)):
            assert torch.equal(stacked[i].detach()[m], refs[m][i].detach()), (m, i)


def test_members_draw_the_noise_their_single_agents_draw():
    """Noise resets batched (one generator call per reset, per round): member m's noise is its Agent's, exactly."""
    cfgs = configs({"noisy": True, "dueling": True})
    pop = PopulationAgent(cfgs, (OBS,), ACTIONS)
    singles = [Agent(c, (OBS,), ACTIONS) for c in cfgs]
    round_noise = pop.update_noise(4)
    for m, agent in enumerate(singles):
        assert torch.equal(round_noise[:, m], agent.update_noise(4))
    batch = batches(1)[0]
    pop.update(batch)
    for m, agent in enumerate(singles):
        agent.update(member_batch(batch, m))
        for name, value in agent.target.state_dict().items():
            if name.endswith(("eps_in", "eps_out")):
                assert torch.equal(pop.target.member_state_dict(m)[name], value), (m, name)
