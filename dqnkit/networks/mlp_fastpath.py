"""Hand-derived forward and backward of the TD loss for a plain MLP Q-network.

On a CPU a DQN update of a small MLP is dominated by per-op dispatch and autograd-engine
overhead, not arithmetic (measured on a 2-core CPU: ~1 ms per update against a ~0.4 ms arithmetic
floor). For the most common network (MLP torso + linear Q head: no dueling, noisy or C51
head) this module computes the loss and writes the parameter gradients with about half the
ops autograd needs: forward keeps the hidden activations, and the backward pass is the
chain rule written out (dW = dz^T h, db = sum dz, dh = dz W, masked by ReLU'). The result
equals autograd's to float32 rounding; ``tests/networks/test_mlp_fastpath.py`` checks it against
autograd on random nets and batches, for Huber and MSE, with and without IS weights. The helpers
(``flat_input``, ``mlp_forward``, ``mlp_backward``, ``value_loss_grad``) also serve
:mod:`dqnkit.networks.head_fastpath`, the same for the dueling, noisy and C51 heads.
"""
from __future__ import annotations

import platform

import torch
from torch import nn

# A forward without gradients over more rows than ROW_CHUNK (a training round's target pass: gradient_steps x
# batch_size next observations) runs in chunks of that many rows, so that each layer's activations stay in
# cache. On AMD CPUs its linear layers go through oneDNN's matmul instead of MKL's addmm: on 2-core AMD EPYC VMs
# oneDNN ran a 256x256 layer over 1,024-8,192 rows at 1.3-2.2x MKL's rate (benchmarks/matmul_rate.py), while on
# an Intel Xeon (family 6, model 167) MKL was the faster, at 1.1-1.5x oneDNN's (and a population's baddbmm
# 1.5-2.2x oneDNN member by member), so elsewhere addmm stays. Results equal addmm's to float rounding; the
# choice depends on the CPU only, so a run and its resume on one machine take the same kernels.
ROW_CHUNK = 1024
ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch._C._nn, "mkldnn_linear")


def cpuinfo_field(key: str) -> str | None:
    """The value of ``key`` (``vendor_id``, ``model name``) for the first CPU in /proc/cpuinfo; None where there is
    no such file or line (not Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


# Windows' platform.processor(): "AMD64 Family ..., AuthenticAMD"
ONEDNN = ONEDNN_AVAILABLE and "AuthenticAMD" in (cpuinfo_field("vendor_id") or platform.processor())


def onednn_pays(x: torch.Tensor, rows: int) -> bool:
    """Whether a linear layer over ``rows`` rows of ``x`` goes through oneDNN: 256 rows or more of float32 on
    an AMD CPU (see ``ONEDNN``), without gradients."""
    return ONEDNN and rows >= 256 and x.device.type == "cpu" and x.dtype == torch.float32 \
        and not torch.is_grad_enabled()


def linear_rows(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x @ w.T + b`` for x (rows, in): through oneDNN where :func:`onednn_pays`, else addmm."""
    if onednn_pays(x, x.shape[0]):
        return torch._C._nn.mkldnn_linear(x.contiguous().to_mkldnn(), w.contiguous().to_mkldnn(),
                                          b.contiguous().to_mkldnn()).to_dense()
    return torch.addmm(b, x, w.t())


@torch.no_grad()
def mlp_outputs(layers: list[nn.Linear], obs: torch.Tensor, input_scale: torch.Tensor | None) -> torch.Tensor:
    """The outputs of a plain MLP Q-network (``plain_mlp_layers``) for many rows, chunk by chunk (see ROW_CHUNK)."""
    x = flat_input(obs, input_scale)
    parts = []
    for i in range(0, x.shape[0], ROW_CHUNK):
        h = x[i:i + ROW_CHUNK]
        for layer in layers[:-1]:
            h = linear_rows(h, layer.weight, layer.bias).relu_()
        parts.append(linear_rows(h, layers[-1].weight, layers[-1].bias))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def plain_mlp_layers(net: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a QNetwork built from MLPTorso + one linear head, else None (a custom network, a
    dueling, noisy or C51 head, LayerNorm: autograd then)."""
    from dqnkit.networks.qnet import QNetwork
    from dqnkit.networks.torsos import MLPTorso

    if not isinstance(net, QNetwork) or net.whole or net.dueling or net.noisy or net.distributional:
        return None
    if not isinstance(net.torso, MLPTorso) or net.torso.layer_norm or len(net.advantage) != 1:
        return None
    layers = [m for m in net.torso.net if isinstance(m, nn.Linear)] + [net.advantage[0]]
    return layers if all(isinstance(m, nn.Linear) for m in layers) else None


@torch.no_grad()
def td_loss_and_grads(layers: list[nn.Linear], obs: torch.Tensor, action: torch.Tensor, target: torch.Tensor,
                      is_weight: torch.Tensor | None, kind: str = "huber", input_scale: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss of Q(obs)[action] against ``target``; sets ``.grad`` of every layer. Returns (loss, td_abs, q_sa).

    ``input_scale`` multiplies non-float32 (uint8) observations after the cast, as ``MLPTorso`` does."""
    acts = mlp_forward(layers[:-1], flat_input(obs, input_scale))
    last = layers[-1]
    q = torch.addmm(last.bias, acts[-1], last.weight.t())
    idx = action.unsqueeze(1)
    q_sa = q.gather(1, idx).squeeze(1)
    loss, abs_td, grad_q = value_loss_grad(q_sa - target, is_weight, kind)
    dz = torch.zeros_like(q).scatter_(1, idx, (grad_q / q.shape[0]).unsqueeze(1))
    mlp_backward(layers, acts, dz)
    return loss, abs_td, q_sa


def flat_input(obs: torch.Tensor, input_scale: torch.Tensor | None) -> torch.Tensor:
    """Observations as (B, features) float32, non-float32 (uint8) ones scaled as ``MLPTorso`` scales them."""
    x = obs.reshape(obs.shape[0], -1)
    if x.dtype != torch.float32:
        x = x.float() if input_scale is None else x.float() * input_scale
    return x


def mlp_forward(layers: list[nn.Linear], x: torch.Tensor) -> list[torch.Tensor]:
    """``Linear -> ReLU`` per layer; returns the input of every layer and the last output ([x, h1, ..., hk])."""
    acts = [x]
    for layer in layers:
        x = torch.addmm(layer.bias, x, layer.weight.t()).relu_()
        acts.append(x)
    return acts


def mlp_backward(layers: list[nn.Linear], acts: list[torch.Tensor], dz: torch.Tensor) -> None:
    """Set ``.grad`` of ``layers`` from ``dz`` = d(loss)/d(output of the last layer); ``acts[i]`` is the input of
    ``layers[i]`` (every layer but the last is followed by a ReLU, so its output is ``acts[i + 1]``)."""
    for i in range(len(layers) - 1, -1, -1):
        layer, h = layers[i], acts[i]
        layer.weight.grad = dz.t().mm(h)  # fresh tensors: assigning them costs nothing, copying would
        layer.bias.grad = dz.sum(0)
        if i > 0:
            dz = torch.ops.aten.threshold_backward(dz.mm(layer.weight), h, 0.0)


def value_loss_grad(td: torch.Tensor, is_weight: torch.Tensor | None, kind: str
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, |td|, d(sum of the weighted per-sample losses)/d(q_sa)) for TD errors ``td = q_sa - target``.

    Huber (delta 1): derivative clamp(td, -1, 1); MSE: 2 td. The loss is the mean over the batch, so the
    gradient of the loss is the returned derivative divided by the batch size."""
    abs_td = td.abs()
    if kind == "huber":
        per_sample = torch.where(abs_td < 1.0, 0.5 * td * td, abs_td - 0.5)
        grad_q = td.clamp(-1.0, 1.0)
    else:
        per_sample = td * td
        grad_q = 2.0 * td
    if is_weight is not None:
        per_sample = per_sample * is_weight
        grad_q = grad_q * is_weight
    return per_sample.mean(), abs_td, grad_q
