"""Feature extractors: an MLP for vector observations, the Nature CNN for stacked frames.

NatureCNN follows Mnih et al. 2015 ("Human-level control through deep RL", Methods:
Model architecture): 32 8x8/4, 64 4x4/2, 64 3x3/1 convolutions, ReLU. It takes uint8
frames and scales them to [0, 1] inside the network, so replay keeps uint8.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MLPTorso(nn.Module):
    """Flatten, then ``Linear -> [LayerNorm] -> ReLU`` per hidden width.

    ``input_scale`` multiplies non-float (uint8) inputs after the cast to float32: 1/255 for
    observations from a uint8 space with bounds [0, 255] (Stable-Baselines3's ``normalize_images``),
    1 otherwise. It is a buffer, so it travels with the weights in a checkpoint. ``layer_norm`` puts a
    LayerNorm after every hidden Linear, as PQN does (Gallici et al. 2024, "Simplifying Deep Temporal
    Difference Learning"): it bounds the scale of the features, which steadies late training.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], *, input_scale: float = 1.0, layer_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(1)]
        for width in hidden:
            layers.append(nn.Linear(in_dim, width))
            if layer_norm:
                layers.append(nn.LayerNorm(width))
            layers.append(nn.ReLU())
            in_dim = width
        self.net = nn.Sequential(*layers)
        self.out_dim = in_dim
        self.layer_norm = bool(layer_norm)
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(as_float_input(x, self.input_scale))


def as_float_input(x: torch.Tensor, input_scale: torch.Tensor) -> torch.Tensor:
    """The one input rule of dqnkit's MLP torsos: float32 passes as it is, anything else (uint8 images,
    one-hot ints) becomes float32 times ``input_scale`` (1/255 for [0, 255] images)."""
    return x if x.dtype == torch.float32 else x.float() * input_scale


class NatureCNN(nn.Module):
    """The Nature CNN on uint8 frames (B, C, H, W).

    Two things keep it fast on CPU without changing what it computes (float rounding aside):

    - Its convolution weights live in channels-last memory (``torch.channels_last``), and the input is cast
      to float32 straight into that format: oneDNN's convolutions, and above all the first layer's 8x8/4
      weight gradient, run 1.2-1.8x faster so (``benchmarks/atari_update.py``). The layout is internal:
      shapes, state-dict keys and checkpoints are the usual NCHW ones (checkpoints store contiguous
      copies; :meth:`dqnkit.learner.agent.Agent.load` gives loaded optimizer state its parameter's layout).
    - The 1/255 input scale multiplies the first layer's weights (8k numbers), not the frames (900k per
      batch of 32): ``conv(x, W / 255) == conv(x / 255, W)``, and its gradient flows through the product.
    """

    def __init__(self, in_shape: Sequence[int]):
        super().__init__()
        c = in_shape[0]
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(1))
        self.conv.to(memory_format=torch.channels_last)
        # the layers after the first, as a plain tuple (not registered twice; slicing the Sequential in forward
        # would build a new module on every call)
        self._after_first = tuple(self.conv)[1:]
        with torch.no_grad():
            self.out_dim = int(self(torch.zeros(1, *in_shape, dtype=torch.uint8)).shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv[0]
        x = x.to(dtype=first.weight.dtype, memory_format=torch.channels_last)
        h = F.conv2d(x, first.weight * (1.0 / 255.0), first.bias, stride=first.stride)
        for layer in self._after_first:
            h = layer(h)
        return h
