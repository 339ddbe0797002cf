"""Your own network in a DQN: ``q_network='package.module:Factory'`` (config fields q_network, q_network_kwargs,
q_network_role, features_dim).

The factory is called as ``Factory(obs_shape, out_dim, **q_network_kwargs)`` and must return an ``nn.Module``
(a class is a factory). As a *torso* (``q_network_role='torso'``) ``out_dim`` is ``features_dim`` (None lets the
factory choose; a dummy forward measures it), and dqnkit's heads go on top, so dueling, noisy and C51 still
apply. As the whole *Q-network* (``'q_network'``) ``out_dim`` is the number of actions and the output must be
``(batch, n_actions)``. Either way the module receives float32 observations of shape ``(batch, *obs_shape)``:
uint8 observations are cast and multiplied by ``input_scale`` first (1/255 for [0, 255] images), as dqnkit's own
torsos do, so the scaling is part of the network (and of an exported model).

A checkpoint stores only the import path and the keyword arguments (in the config, as JSON), and the weights
in safetensors; loading imports the factory by name again.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from dqnkit.errors import ConfigError
from dqnkit.importing import import_object
from dqnkit.networks.torsos import as_float_input


class CustomTorso(nn.Module):
    """A user's module behind dqnkit's input cast: non-float32 inputs become float32 times ``input_scale``."""

    def __init__(self, body: nn.Module, out_dim: int, input_scale: float = 1.0):
        super().__init__()
        self.body = body
        self.out_dim = int(out_dim)
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(as_float_input(x, self.input_scale))


def build_custom(path: str, kwargs: dict, obs_shape: Sequence[int], *, role: str, n_actions: int,
                 features_dim: int | None = None, input_scale: float = 1.0) -> CustomTorso:
    """Import ``path``, build the module and check its output shape on a dummy batch; one-line ConfigError
    on any mismatch."""
    factory = import_object(path, "q_network", ConfigError)
    obs_shape = tuple(int(d) for d in obs_shape)
    out_dim = n_actions if role == "q_network" else features_dim
    try:
        body = factory(obs_shape, out_dim, **dict(kwargs))
    except TypeError as exc:
        raise ConfigError(f"q_network {path} could not be built as {path}(obs_shape={obs_shape}, out_dim={out_dim}, "
                          f"**{dict(kwargs)}) ({exc}); make it accept (obs_shape, out_dim, **q_network_kwargs)") from exc
    if not isinstance(body, nn.Module):
        raise ConfigError(f"q_network {path} returned a {type(body).__name__}, not a torch.nn.Module; return the "
                          "network from the factory")
    got = output_shape(body, obs_shape, path)
    if role == "q_network":
        if got != (2, n_actions):
            raise ConfigError(f"q_network {path} outputs shape {got} for a batch of 2 observations of shape "
                              f"{obs_shape}; a whole Q-network must output (batch, n_actions) = (2, {n_actions})")
    elif len(got) != 2 or got[0] != 2 or (features_dim is not None and got[1] != features_dim):
        want = f"(2, features_dim) = (2, {features_dim})" if features_dim is not None else "(batch, features)"
        raise ConfigError(f"q_network torso {path} outputs shape {got} for a batch of 2 observations of shape "
                          f"{obs_shape}; a torso must output {want} (flatten its features)")
    return CustomTorso(body, got[1], input_scale)


def output_shape(body: nn.Module, obs_shape: tuple[int, ...], path: str) -> tuple[int, ...]:
    """The shape ``body`` gives a zero batch of 2 observations (float32), without touching its gradients."""
    was_training = body.training
    body.train(False)
    try:
        with torch.no_grad():
            out: Any = body(torch.zeros((2, *obs_shape), dtype=torch.float32))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's forward is reported as one line
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"q_network {path} failed on a batch of 2 observations of shape {obs_shape} ({reason}); "
                          "it must take float32 input of shape (batch, *obs_shape)") from exc
    finally:
        body.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"q_network {path} returned a {type(out).__name__} from forward, not a tensor")
    return tuple(out.shape)
