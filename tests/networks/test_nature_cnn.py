"""The Nature CNN's fast layout (channels-last weights, the 1/255 scale on the first layer's weights)
against the textbook network, and exact resume of a CNN agent through a safetensors round trip."""
import copy

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dqnkit.config import Config
from dqnkit.learner.agent import Agent
from dqnkit.networks import NatureCNN
from dqnkit.types import Batch


def textbook(net: NatureCNN, x: torch.Tensor) -> torch.Tensor:
    """Mnih et al.'s forward, NCHW, frames divided by 255: the same weights, copied to contiguous memory."""
    h = x.float() / 255.0
    for layer in net.conv:
        if isinstance(layer, torch.nn.Conv2d):
            h = torch.nn.functional.conv2d(h, layer.weight.contiguous(), layer.bias, stride=layer.stride)
        else:
            h = layer(h.contiguous())
    return h


def test_nature_cnn_matches_the_textbook_forward_and_gradients():
    torch.manual_seed(0)
    net = NatureCNN((4, 84, 84))
    assert net.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    fast, slow = net(x), textbook(net, x)
    assert fast.shape == (3, 3136) and net.out_dim == 3136
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad(fast, list(net.parameters()), g)
    grads_slow = torch.autograd.grad(textbook(net, x), list(net.parameters()), g)
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    twin = copy.deepcopy(net)  # the target net: its forward must run its own layers, not the original's
    assert all(a is b for a, b in zip(twin._after_first, list(twin.conv)[1:]))
    keys = {f"conv.{i}.{k}" for i in (0, 2, 4) for k in ("weight", "bias")}
    assert set(twin.state_dict()) == set(net.state_dict()) == keys


def _agent() -> Agent:
    cfg = Config.from_dict({"device": "cpu", "seed": 3, "torso": "nature_cnn", "optimizer": "adam",
                            "learning_rate": 1e-3, "max_grad_norm": 10.0, "batch_size": 8})
    return Agent(cfg, (4, 36, 36), 3, torso="nature_cnn")


def _batches(n: int) -> list[Batch]:
    gen = torch.Generator().manual_seed(1)
    frames = lambda: torch.randint(0, 256, (8, 4, 36, 36), dtype=torch.uint8, generator=gen)  # noqa: E731
    return [Batch(obs=frames(), action=torch.randint(0, 3, (8,), generator=gen), reward=torch.rand(8, generator=gen),
                  next_obs=frames(), terminated=torch.zeros(8), discount=torch.full((8,), 0.99),
                  is_weight=torch.ones(8), index=np.arange(8)) for _ in range(n)]


def test_cnn_agent_resumes_exactly_through_a_safetensors_round_trip(tmp_path):
    """Checkpoints hold contiguous (NCHW) copies; the loaded Adam moments must take the channels-last layout
    of their parameters again, or the fused step pairs each weight with another weight's moment."""
    batches = _batches(5)
    a = _agent()
    for b in batches[:3]:
        a.update(b)
    save_file({k: v.contiguous() for k, v in a.tensors().items()}, str(tmp_path / "model.safetensors"))
    b_agent = _agent()
    b_agent.load(load_file(str(tmp_path / "model.safetensors")), a.meta())
    for b in batches[3:]:
        a.update(b)
        b_agent.update(b)
    for (name, p), q in zip(a.online.named_parameters(), b_agent.online.parameters()):
        assert torch.equal(p, q), name
