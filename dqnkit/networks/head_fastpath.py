"""Hand-derived forward and backward for the Rainbow-family heads on an MLP torso.

The counterpart of :mod:`dqnkit.networks.mlp_fastpath` for the dueling, noisy and C51 heads of
:class:`dqnkit.networks.QNetwork` and every combination of them (Rainbow's head is all three). As there,
the forward keeps the activations and the backward is the chain rule written out, with no autograd graph:

- noisy layer (Fortunato et al. 2018, eq. 9-10, factorised): W = mu_W + sigma_W * eps_W with
  eps_W = eps_out eps_in^T, b = mu_b + sigma_b * eps_out, using the noise the layer holds now. With
  dW = dz^T h and db = sum dz: d mu_W = dW, d sigma_W = dW * eps_W, d mu_b = db, d sigma_b = db * eps_out.
- dueling, mean aggregation (Wang et al. 2016, eq. 9): Q = V + A - mean_a A. With G = dL/dQ:
  dV = sum_a G_a, dA_a = G_a - mean_a' G_a'. Other aggregations are not covered (the agent falls back).
- C51 (Bellemare et al. 2017): logits (|A|, n_atoms) per sample; the loss is the cross-entropy
  -sum_i t_i log softmax(l)_i of the taken action's logits against the projected target t (computed by
  the caller, :func:`dqnkit.learner.losses.categorical_projection`), so dL/dl = softmax(l) sum_i t_i - t.
- the scalar heads take the Huber or MSE gradient of :func:`dqnkit.networks.mlp_fastpath.value_loss_grad`.

Importance weights multiply each sample's gradient as they multiply its loss. The results equal autograd's
to float rounding; ``tests/networks/test_head_fastpath.py`` checks loss, td_abs, q_sa and every parameter
gradient against autograd for each head combination, both losses, with and without IS weights, and after
gradient-norm clipping.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dqnkit.networks.mlp_fastpath import flat_input, mlp_backward, mlp_forward, value_loss_grad
from dqnkit.networks.noisy import NoisyLinear


@dataclass
class HeadPlan:
    """The layers of a QNetwork that the head fast path computes: MLP torso, one advantage layer, an optional
    value layer (dueling), each head layer a Linear or a NoisyLinear."""

    net: nn.Module
    torso: list[nn.Linear]
    advantage: nn.Module
    value: nn.Module | None
    n_actions: int
    n_atoms: int
    distributional: bool


def head_plan(net: nn.Module) -> HeadPlan | None:
    """The plan of a QNetwork with an MLP torso (no LayerNorm) and a dueling, noisy or C51 head (or several),
    each stream one layer; None for anything else (plain MLP heads take mlp_fastpath, CNNs autograd)."""
    from dqnkit.networks.qnet import QNetwork
    from dqnkit.networks.torsos import MLPTorso

    if not isinstance(net, QNetwork) or not (net.dueling or net.noisy or net.distributional):
        return None
    if not isinstance(net.torso, MLPTorso) or net.torso.layer_norm:
        return None
    streams = [net.advantage] + ([net.value] if net.value is not None else [])
    if any(len(s) != 1 or not isinstance(s[0], (nn.Linear, NoisyLinear)) for s in streams):
        return None
    if any(type(m) not in (nn.Flatten, nn.Linear, nn.ReLU) for m in net.torso.net):
        return None
    torso = [m for m in net.torso.net if type(m) is nn.Linear]
    return HeadPlan(net, torso, net.advantage[0], net.value[0] if net.value is not None else None,
                    net.n_actions, net.n_atoms, net.distributional)


def _weight_bias(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(W, b, eps_W) as the layer's forward uses them now (eps_W None: a plain or an eval-mode noisy layer)."""
    if isinstance(layer, NoisyLinear):
        if not layer.training:
            return layer.weight_mu, layer.bias_mu, None
        eps = torch.outer(layer.eps_out, layer.eps_in)
        return layer.weight_mu + layer.weight_sigma * eps, layer.bias_mu + layer.bias_sigma * layer.eps_out, eps
    return layer.weight, layer.bias, None


def _layer_grads(layer: nn.Module, dz: torch.Tensor, h: torch.Tensor, eps: torch.Tensor | None) -> None:
    """Set the gradients of one head layer from dz = dL/d(output) and its input h."""
    dw, db = dz.t().mm(h), dz.sum(0)
    if isinstance(layer, NoisyLinear):
        layer.weight_mu.grad, layer.bias_mu.grad = dw, db
        if eps is None:  # eval mode: sigma took no part
            layer.weight_sigma.grad = layer.bias_sigma.grad = None
        else:
            layer.weight_sigma.grad, layer.bias_sigma.grad = dw * eps, db * layer.eps_out
    else:
        layer.weight.grad, layer.bias.grad = dw, db


def _combine(plan: HeadPlan, adv: torch.Tensor, val: torch.Tensor | None) -> torch.Tensor:
    """The head's output from its advantage (and dueling value) layer outputs, as QNetwork.forward: Q-values
    (B, |A|) or logits (B, |A|, n_atoms)."""
    if plan.distributional:
        adv = adv.view(-1, plan.n_actions, plan.n_atoms)
    if val is None:
        return adv
    if plan.distributional:
        val = val.view(-1, 1, plan.n_atoms)
    return val + adv - adv.mean(dim=1, keepdim=True)


class HeadForward:
    """One forward pass, keeping what the backward needs."""

    def __init__(self, plan: HeadPlan, obs: torch.Tensor):
        self.plan = plan
        self.acts = mlp_forward(plan.torso, flat_input(obs, plan.net.torso.input_scale))
        h = self.acts[-1]
        self.adv_w, adv_b, self.adv_eps = _weight_bias(plan.advantage)
        val = None
        if plan.value is not None:
            self.val_w, val_b, self.val_eps = _weight_bias(plan.value)
            val = torch.addmm(val_b, h, self.val_w.t())
        self.out = _combine(plan, torch.addmm(adv_b, h, self.adv_w.t()), val)

    def keep_rows(self, n: int) -> torch.Tensor:
        """Keep the first ``n`` rows for the backward and return the outputs of the others. One pass over
        [s; s'] then gives the loss's rows and Double DQN's online outputs at s' with the same weights and
        noise, for the price of one forward."""
        rest = self.out[n:]
        self.out = self.out[:n]
        self.acts = [a[:n] for a in self.acts]
        return rest

    def backward(self, d_out: torch.Tensor) -> None:
        """Set every parameter's gradient from d_out = dL/d(out)."""
        plan, h = self.plan, self.acts[-1]
        batch = d_out.shape[0]
        if plan.value is not None:
            d_val = d_out.sum(dim=1, keepdim=True)  # (B, 1) or (B, 1, n_atoms)
            d_adv = d_out - d_val / plan.n_actions
            d_val = d_val.reshape(batch, -1)
            _layer_grads(plan.value, d_val, h, self.val_eps)
        else:
            d_adv = d_out
        d_adv = d_adv.reshape(batch, -1)
        _layer_grads(plan.advantage, d_adv, h, self.adv_eps)
        if not plan.torso:
            return
        dh = d_adv.mm(self.adv_w)
        if plan.value is not None:
            dh = dh.addmm_(d_val, self.val_w)
        mlp_backward(plan.torso, self.acts[:-1], torch.ops.aten.threshold_backward(dh, h, 0.0))


@torch.no_grad()
def grouped_outputs(plan: HeadPlan, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The outputs for ``G`` groups of rows, group ``g`` (rows ``g*B .. (g+1)*B - 1`` of ``obs``) under noise row
    ``g`` of ``noise`` ((G, noise_dim), in :meth:`QNetwork.set_noise`'s layout), in one pass: the target net's
    outputs at s' for every update of a training round, each update with its own noise. The torso is noise-free
    and runs once over all rows; a noisy layer takes the factorised form
    x W^T = x mu_W^T + eps_out * ((x * eps_in) sigma_W^T), which needs no per-group weight matrix. Equal to
    setting each row's noise and running the net, to float rounding."""
    h = mlp_forward(plan.torso, flat_input(obs, plan.net.torso.input_scale))[-1]
    groups = noise.shape[0]
    rows = h.shape[0] // groups
    offsets = dict(plan.net.noise_offsets())

    def layer_out(layer: nn.Module | None) -> torch.Tensor | None:
        if layer is None:
            return None
        if not isinstance(layer, NoisyLinear) or not layer.training:
            w, b, _ = _weight_bias(layer)
            return torch.addmm(b, h, w.t())
        at = offsets[layer]
        eps_in = noise[:, at: at + layer.in_features].unsqueeze(1)  # (G, 1, in)
        eps_out = noise[:, at + layer.in_features: at + layer.in_features + layer.out_features].unsqueeze(1)
        part = torch.matmul(h.view(groups, rows, -1) * eps_in, layer.weight_sigma.t())  # (G, B, out)
        part.add_(layer.bias_sigma).mul_(eps_out)
        mean = torch.addmm(layer.bias_mu, h, layer.weight_mu.t()).view(groups, rows, -1)
        return mean.add_(part).view(groups * rows, -1)

    return _combine(plan, layer_out(plan.advantage), layer_out(plan.value))


@torch.no_grad()
def head_td_loss_and_grads(plan: HeadPlan, obs: torch.Tensor, action: torch.Tensor, target: torch.Tensor,
                           is_weight: torch.Tensor | None, kind: str = "huber", fwd: HeadForward | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scalar heads (dueling and/or noisy): Huber or MSE loss of Q(obs)[action] against ``target``; sets
    ``.grad`` of every parameter. Returns (loss, td_abs, q_sa). ``fwd``: the forward of ``obs``, when the
    caller ran it already (:meth:`HeadForward.keep_rows`)."""
    fwd = fwd or HeadForward(plan, obs)
    q = fwd.out
    idx = action.unsqueeze(1)
    q_sa = q.gather(1, idx).squeeze(1)
    loss, abs_td, grad_q = value_loss_grad(q_sa - target, is_weight, kind)
    fwd.backward(torch.zeros_like(q).scatter_(1, idx, (grad_q / q.shape[0]).unsqueeze(1)))
    return loss, abs_td, q_sa


@torch.no_grad()
def categorical_loss_and_grads(plan: HeadPlan, obs: torch.Tensor, action: torch.Tensor, target_probs: torch.Tensor,
                               is_weight: torch.Tensor | None, fwd: HeadForward | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """C51 heads (alone or with dueling and/or noisy): the cross-entropy of the taken action's distribution
    against ``target_probs`` (B, n_atoms), as :func:`dqnkit.learner.losses.categorical_loss`; sets ``.grad``
    of every parameter. Returns (loss, per-sample cross-entropy (the priority), q_sa = E[Z(s, a)]).
    ``fwd`` as for :func:`head_td_loss_and_grads`."""
    fwd = fwd or HeadForward(plan, obs)
    logits = fwd.out
    batch, n_atoms = logits.shape[0], logits.shape[2]
    idx = action.view(batch, 1, 1).expand(batch, 1, n_atoms)
    logits_sa = logits.gather(1, idx).squeeze(1)
    log_p = torch.log_softmax(logits_sa, dim=-1)
    per_sample = -(target_probs * log_p).sum(-1)
    probs = log_p.exp()
    d_logits = probs * target_probs.sum(-1, keepdim=True) - target_probs
    if is_weight is None:
        loss = per_sample.mean()
    else:
        loss = (is_weight * per_sample).mean()
        d_logits = d_logits * is_weight.unsqueeze(1)
    d_out = torch.zeros_like(logits).scatter_(1, idx, (d_logits / batch).unsqueeze(1))
    fwd.backward(d_out)
    q_sa = (probs * plan.net.support).sum(-1)
    return loss, per_sample, q_sa
