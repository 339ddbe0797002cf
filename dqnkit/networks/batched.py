"""M Q-networks of one architecture as one module: weights stacked ``(M, out, in)``, inputs ``(M, B, ...)``.

A population (``dqnkit.population``) trains M members at once. :class:`BatchedQNetwork` is built from M
ordinary :class:`dqnkit.networks.QNetwork` instances (one per member, each initialised from its member's
seed) and computes what each of them would, with one ``torch.baddbmm`` per layer for all members:
the MLP torso (with LayerNorm when asked), the plain, dueling, noisy (per-member factorised noise) and C51
heads. Its parameters keep the single network's names (``torso.net.1.weight`` ...) with a leading member
axis, so member ``m`` can be written out as an ordinary QNetwork state dict (:meth:`member_state_dict`).

:func:`batched_td_loss_and_grads` is the batched version of :mod:`dqnkit.networks.mlp_fastpath` (the
hand-derived backward of a plain MLP Q-network), with a Huber/MSE choice per member.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dqnkit.networks.mlp_fastpath import ROW_CHUNK, linear_rows, onednn_pays
from dqnkit.networks.noisy import NoisyLinear, factorised_noise
from dqnkit.networks.qnet import QNetwork, aggregate
from dqnkit.networks.torsos import MLPTorso


def _key(name: str) -> str:
    return name.replace(".", "__")


def stacked_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per member ``m``: ``x[m] @ w[m].T + b[m]`` for x (M, B, in), w (M, out, in), b (M, out); member by member
    through :func:`linear_rows` (oneDNN) where :func:`onednn_pays` for B rows, else one baddbmm."""
    if onednn_pays(x, x.shape[1]):
        return torch.stack([linear_rows(x[m], w[m], b[m]) for m in range(x.shape[0])])
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


class BatchedQNetwork(nn.Module):
    """The Q-networks ``members`` (same architecture, MLP torso) stacked along a leading member axis."""

    def __init__(self, members: Sequence[QNetwork]):
        super().__init__()
        ref = members[0]
        if not isinstance(ref.torso, MLPTorso):
            raise ValueError("a population trains MLP Q-networks (vector observations); image observations "
                             "need the Nature CNN, which population mode does not batch")
        self.num_members = len(members)
        self.n_actions, self.n_atoms = ref.n_actions, ref.n_atoms
        self.dueling, self.noisy, self.distributional = ref.dueling, ref.noisy, ref.distributional
        self.dueling_aggregation = ref.dueling_aggregation
        if any(m.dueling_aggregation != ref.dueling_aggregation for m in members):
            raise ValueError("the members of one batched network share one dueling_aggregation")
        self.names = [n for n, _ in ref.named_parameters()]
        self.stacked = nn.ParameterDict({
            _key(n): nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach().clone() for m in members]))
            for n in self.names})
        self.register_buffer("input_scale", ref.torso.input_scale.detach().clone())
        if ref.support is not None:
            self.register_buffer("support", ref.support.detach().clone())
        else:
            self.support = None
        # layer plans: which stacked parameters each step uses, in QNetwork's order
        self.torso_plan: list[tuple[str, str]] = []
        for i, mod in enumerate(ref.torso.net):
            name = f"torso.net.{i}"
            if isinstance(mod, nn.Linear):
                self.torso_plan.append(("linear", name))
            elif isinstance(mod, nn.LayerNorm):
                self.torso_plan.append(("layernorm", name))
            elif isinstance(mod, nn.ReLU):
                self.torso_plan.append(("relu", name))
        self.advantage_plan = self._stream_plan(ref.advantage, "advantage")
        self.value_plan = self._stream_plan(ref.value, "value") if ref.value is not None else None
        self.noisy_names = [n for n, mod in ref.named_modules() if isinstance(mod, NoisyLinear)]
        self.noise_dim = ref.noise_dim
        for n in self.noisy_names:
            layers = [dict(member.named_modules())[n] for member in members]
            self.register_buffer(_key(n) + "__eps_in", torch.stack([layer.eps_in.detach().clone() for layer in layers]))
            self.register_buffer(_key(n) + "__eps_out", torch.stack([layer.eps_out.detach().clone() for layer in layers]))

    @staticmethod
    def _stream_plan(stream: nn.Sequential, prefix: str) -> list[tuple[str, str]]:
        plan = []
        for i, mod in enumerate(stream):
            name = f"{prefix}.{i}"
            if isinstance(mod, NoisyLinear):
                plan.append(("noisy", name))
            elif isinstance(mod, nn.Linear):
                plan.append(("linear", name))
            elif isinstance(mod, nn.ReLU):
                plan.append(("relu", name))
        return plan

    def p(self, name: str) -> nn.Parameter:
        return self.stacked[_key(name)]

    # --- forward ---------------------------------------------------------------------------
    def _run(self, plan: list[tuple[str, str]], x: torch.Tensor) -> torch.Tensor:
        for kind, name in plan:
            if kind == "relu":  # x is a fresh layer output here: in place where autograd needs no copy
                x = x.relu() if torch.is_grad_enabled() else x.relu_()
            elif kind == "linear":
                x = stacked_linear(x, self.p(name + ".weight"), self.p(name + ".bias"))
            elif kind == "layernorm":
                x = F.layer_norm(x, (x.shape[-1],))
                x = x * self.p(name + ".weight").unsqueeze(1) + self.p(name + ".bias").unsqueeze(1)
            else:  # noisy
                w, b = self.p(name + ".weight_mu"), self.p(name + ".bias_mu")
                if self.training:
                    eps_in = getattr(self, _key(name) + "__eps_in")
                    eps_out = getattr(self, _key(name) + "__eps_out")
                    w = w + self.p(name + ".weight_sigma") * (eps_out.unsqueeze(2) * eps_in.unsqueeze(1))
                    b = b + self.p(name + ".bias_sigma") * eps_out
                x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        return x

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        m, b = obs.shape[0], obs.shape[1]
        x = obs.reshape(m, b, -1)
        if x.dtype != torch.float32:
            x = x.float() * self.input_scale
        return self._run(self.torso_plan, x)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values (M, B, |A|), or C51 logits (M, B, |A|, n_atoms)."""
        rows = obs.shape[1]
        if rows > ROW_CHUNK and not torch.is_grad_enabled():
            return torch.cat([self._forward(obs[:, i:i + ROW_CHUNK]) for i in range(0, rows, ROW_CHUNK)], dim=1)
        return self._forward(obs)

    def _forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.features(obs)
        m, b = h.shape[0], h.shape[1]
        adv = self._run(self.advantage_plan, h)
        if self.distributional:
            adv = adv.view(m, b, self.n_actions, self.n_atoms)
        if self.value_plan is not None:
            val = self._run(self.value_plan, h)
            if self.distributional:
                val = val.view(m, b, 1, self.n_atoms)
            else:
                val = val.view(m, b, 1)
            adv = aggregate(val, adv, self.dueling_aggregation, action_dim=2)
        return adv

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        out = self(obs)
        if self.distributional:
            return (out.softmax(dim=-1) * self.support).sum(-1)
        return out

    @torch.no_grad()
    def reset_noise(self, generators: Sequence[torch.Generator]) -> None:
        """Member ``m``'s noise from ``generators[m]``, drawn as QNetwork.reset_noise draws it (one call)."""
        self.set_noise(torch.stack([factorised_noise(gen, (self.noise_dim,)) for gen in generators]))

    @torch.no_grad()
    def set_noise(self, eps: torch.Tensor) -> None:
        """Row ``m`` of ``eps`` (M, noise_dim) is member ``m``'s noise, laid out as ``QNetwork.set_noise`` reads it."""
        offset = 0
        for n in self.noisy_names:
            for part in ("__eps_in", "__eps_out"):
                buf = getattr(self, _key(n) + part)
                buf.copy_(eps[:, offset: offset + buf.shape[1]])
                offset += buf.shape[1]

    # --- members ----------------------------------------------------------------------------
    def parameter_list(self) -> list[nn.Parameter]:
        """The stacked parameters in QNetwork.parameters() order."""
        return [self.p(n) for n in self.names]

    @torch.no_grad()
    def member_state_dict(self, m: int) -> dict[str, torch.Tensor]:
        """Member ``m`` as an ordinary QNetwork state dict."""
        out = {n: self.p(n)[m].detach().clone() for n in self.names}
        out["torso.input_scale"] = self.input_scale.clone()
        if self.support is not None:
            out["support"] = self.support.clone()
        for n in self.noisy_names:
            out[n + ".eps_in"] = getattr(self, _key(n) + "__eps_in")[m].clone()
            out[n + ".eps_out"] = getattr(self, _key(n) + "__eps_out")[m].clone()
        return out

    @torch.no_grad()
    def load_member(self, m: int, state: dict[str, torch.Tensor]) -> None:
        """Member ``m`` from an ordinary QNetwork state dict."""
        for n in self.names:
            self.p(n)[m].copy_(state[n])
        if "torso.input_scale" in state:
            self.input_scale.copy_(state["torso.input_scale"])
        for n in self.noisy_names:
            getattr(self, _key(n) + "__eps_in")[m].copy_(state[n + ".eps_in"])
            getattr(self, _key(n) + "__eps_out")[m].copy_(state[n + ".eps_out"])

    def plain_layers(self) -> list[str] | None:
        """Names of the Linear layers when the net is a plain MLP + linear head (the fast path), else None."""
        if self.dueling or self.noisy or self.distributional or any(k == "layernorm" for k, _ in self.torso_plan):
            return None
        if len(self.advantage_plan) != 1:
            return None
        return [name for kind, name in self.torso_plan if kind == "linear"] + [self.advantage_plan[0][1]]


@torch.no_grad()
def batched_td_loss_and_grads(net: BatchedQNetwork, layers: list[str], obs: torch.Tensor, action: torch.Tensor,
                              target: torch.Tensor, is_weight: torch.Tensor | None, huber: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-member TD loss of Q(obs)[action] against ``target`` (all (M, B)); sets ``.grad`` of the stacked
    parameters to the gradient of the sum over members of each member's mean loss. ``huber`` (M,) bool picks
    Huber (delta 1) or MSE per member. Returns (loss (M,), td_abs (M, B), q_sa (M, B))."""
    m, b = obs.shape[0], obs.shape[1]
    x = obs.reshape(m, b, -1)
    if x.dtype != torch.float32:
        x = x.float() * net.input_scale
    acts = [x]
    weights = [net.p(n + ".weight") for n in layers]
    biases = [net.p(n + ".bias") for n in layers]
    for w, bias in zip(weights[:-1], biases[:-1]):
        x = torch.baddbmm(bias.unsqueeze(1), x, w.transpose(1, 2)).relu_()
        acts.append(x)
    q = torch.baddbmm(biases[-1].unsqueeze(1), x, weights[-1].transpose(1, 2))
    idx = action.unsqueeze(2)
    q_sa = q.gather(2, idx).squeeze(2)
    td = q_sa - target
    abs_td = td.abs()
    hub = huber.view(m, 1)
    per_sample = torch.where(hub, torch.where(abs_td < 1.0, 0.5 * td * td, abs_td - 0.5), td * td)
    grad_q = torch.where(hub, td.clamp(-1.0, 1.0), 2.0 * td)
    if is_weight is not None:
        per_sample = per_sample * is_weight
        grad_q = grad_q * is_weight
    loss = per_sample.mean(dim=1)
    dz = torch.zeros_like(q).scatter_(2, idx, (grad_q / b).unsqueeze(2))
    for i in range(len(layers) - 1, -1, -1):
        weights[i].grad = torch.bmm(dz.transpose(1, 2), acts[i])
        biases[i].grad = dz.sum(1)
        if i > 0:
            dz = torch.ops.aten.threshold_backward(torch.bmm(dz, weights[i]), acts[i], 0.0)
    return loss, abs_td, q_sa
