"""Factorised Gaussian NoisyLinear (Fortunato et al. 2018, "Noisy Networks for Exploration", Sec. 3).

y = (mu_w + sigma_w * eps_w) x + (mu_b + sigma_b * eps_b), with factorised noise
eps_w = f(eps_out) f(eps_in)^T, eps_b = f(eps_out), f(x) = sign(x) sqrt(|x|).
Initialisation as in the paper's factorised case: mu ~ U[-1/sqrt(p), 1/sqrt(p)],
sigma = sigma_0 / sqrt(p), p = in_features.

In eval mode (``module.eval()``) the layer uses the mean weights only, so greedy
evaluation is deterministic. Deviation: noise is drawn from a torch.Generator owned
by the layer's parent (passed in ``reset_noise``) when one is given, so runs are
reproducible without touching the global torch RNG.

Noise resets are batched: :func:`factorised_noise` draws the Gaussians of many resets (all noisy layers of
a network, both networks of an update, all updates of a training round) with one generator call and
applies f once; ``QNetwork.set_noise`` hands each layer its slice (eps_in first, then eps_out, layer by
layer in module order). The distribution is unchanged (every entry is f of its own standard normal); the
order in which the generator's stream is consumed is not the per-layer order of earlier versions, so a
seeded noisy run draws other (equally distributed) noise than before (see README, "Speed").
"""
from __future__ import annotations

import math

import torch
from torch import nn


def factorised_noise(generator: torch.Generator | None, shape: tuple[int, ...]) -> torch.Tensor:
    """f(eps) for ``shape`` standard normals drawn by one generator call (f(x) = sign(x) sqrt(|x|))."""
    eps = torch.randn(shape, generator=generator)
    magnitude = eps.abs().sqrt_()
    return eps.sign_().mul_(magnitude)


class NoisyLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        # One draw for both factors (eps_in first, then eps_out), one f() over it.
        eps = factorised_noise(generator, (self.in_features + self.out_features,))
        self.eps_in.copy_(eps[: self.in_features])
        self.eps_out.copy_(eps[self.in_features :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return nn.functional.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        bias = self.bias_mu + self.bias_sigma * self.eps_out
        return nn.functional.linear(x, weight, bias)
