"""Q-network = torso + head, with the Rainbow-family heads as options that compose.

- plain: one linear layer to |A| values (Mnih et al. 2015).
- dueling (Wang et al. 2016, eq. 9): Q = V + A - mean_a A, the mean-subtracted form; ``dueling_aggregation``
  max gives eq. 8 (Q = V + A - max_a A) and naive Q = V + A (keras-rl's dueling_type avg | max | naive).
- noisy (Fortunato et al. 2018): the head's linear layers are factorised NoisyLinear.
- distributional (Bellemare et al. 2017, C51): the head outputs |A| x n_atoms logits;
  ``q_values`` returns the expectation sum_z z * softmax(logits).

A custom network (``custom``, see :mod:`dqnkit.networks.custom`) takes the torso's place, or with ``whole``
is the Q-network itself (no head).

Deviation from Rainbow's Atari net: on an MLP torso each dueling stream is a single
(noisy) linear layer over the shared torso instead of its own hidden layer; with the
Nature CNN the streams get one hidden layer of 512 units, as in Wang et al.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dqnkit.networks.noisy import NoisyLinear, factorised_noise
from dqnkit.networks.torsos import MLPTorso, NatureCNN


AGGREGATIONS = ("mean", "max", "naive")


def aggregate(value: torch.Tensor, advantage: torch.Tensor, how: str, action_dim: int) -> torch.Tensor:
    """Dueling's Q from V (broadcast over actions) and A, with A centred by its mean or max over actions, or not."""
    if how == "mean":
        return value + advantage - advantage.mean(dim=action_dim, keepdim=True)
    if how == "max":
        return value + advantage - advantage.max(dim=action_dim, keepdim=True).values
    return value + advantage


class QNetwork(nn.Module):
    def __init__(self, obs_shape: Sequence[int], n_actions: int, *, net_arch: Sequence[int] = (64, 64),
                 torso: str = "mlp", dueling: bool = False, noisy: bool = False, noisy_sigma0: float = 0.5,
                 distributional: bool = False, n_atoms: int = 51, v_min: float = -10.0, v_max: float = 10.0,
                 input_scale: float = 1.0, layer_norm: bool = False, custom: nn.Module | None = None,
                 whole: bool = False, dueling_aggregation: str = "mean"):
        super().__init__()
        if dueling_aggregation not in AGGREGATIONS:
            raise ValueError(f"dueling_aggregation must be one of {', '.join(AGGREGATIONS)}, got {dueling_aggregation!r}")
        self.dueling_aggregation = dueling_aggregation
        self.n_actions = n_actions
        self.dueling, self.noisy, self.distributional = dueling, noisy, distributional
        self.n_atoms = n_atoms if distributional else 1
        self.whole = whole  # ``custom`` is the whole Q-network: no head (dqnkit.networks.custom)
        if custom is not None:
            self.torso = custom
            stream_hidden = []
        elif torso == "nature_cnn":
            self.torso: nn.Module = NatureCNN(obs_shape)
            stream_hidden: list[int] = [512]
        else:
            in_dim = 1
            for d in obs_shape:
                in_dim *= int(d)
            self.torso = MLPTorso(in_dim, net_arch, input_scale=input_scale, layer_norm=layer_norm)
            stream_hidden = []
        feat = self.torso.out_dim

        def linear(i: int, o: int) -> nn.Module:
            return NoisyLinear(i, o, noisy_sigma0) if noisy else nn.Linear(i, o)

        def stream(out: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            i = feat
            for h in stream_hidden:
                layers += [linear(i, h), nn.ReLU()]
                i = h
            return nn.Sequential(*layers, linear(i, out))

        self.advantage = None if whole else stream(n_actions * self.n_atoms)
        self.value = stream(self.n_atoms) if dueling else None
        if distributional:
            self.register_buffer("support", torch.linspace(v_min, v_max, n_atoms))
        else:
            self.support = None
        # A plain list (not a ModuleList): the layers are already registered as submodules; this only saves
        # walking the module tree on every noise reset (once per env step and twice per update).
        self._noisy_layers = [m for m in self.modules() if isinstance(m, NoisyLinear)]
        self.noise_dim = sum(m.in_features + m.out_features for m in self._noisy_layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values (B, |A|), or C51 logits (B, |A|, n_atoms) when distributional."""
        h = self.torso(obs)
        if self.whole:
            return h
        adv = self.advantage(h)
        if self.distributional:
            adv = adv.view(-1, self.n_actions, self.n_atoms)
        if self.value is not None:
            val = self.value(h)
            if self.distributional:
                val = val.view(-1, 1, self.n_atoms)
            adv = aggregate(val, adv, self.dueling_aggregation, action_dim=1)
        return adv

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        out = self(obs)
        if self.distributional:
            return (out.softmax(dim=-1) * self.support).sum(-1)
        return out

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """New noise for every noisy layer, from one generator call (see :func:`factorised_noise`)."""
        self.set_noise(factorised_noise(generator, (self.noise_dim,)))

    def noise_offsets(self) -> list[tuple[NoisyLinear, int]]:
        """Each noisy layer with the offset of its slice in ``set_noise``'s vector (eps_in, then eps_out)."""
        out, offset = [], 0
        for m in self._noisy_layers:
            out.append((m, offset))
            offset += m.in_features + m.out_features
        return out

    @torch.no_grad()
    def set_noise(self, eps: torch.Tensor) -> None:
        """Hand the layers their slices of ``eps`` (``noise_dim`` values, f already applied): each noisy layer in
        module order takes eps_in then eps_out."""
        offset = 0
        for m in self._noisy_layers:
            m.eps_in.copy_(eps[offset: offset + m.in_features])
            offset += m.in_features
            m.eps_out.copy_(eps[offset: offset + m.out_features])
            offset += m.out_features
