"""``dqnkit export RUN --format onnx|torchscript``: the greedy Q-network as one file that runs without dqnkit.

The exported graph is :class:`GreedyQ`: raw observations in, Q-values ``(batch, n_actions)`` out (C51: the
expected values), with dqnkit's preprocessing inside it, exactly as :meth:`dqnkit.DQN.q_values` computes them:

* the uint8 scaling of the torso (``input_scale``, 1/255 for [0, 255] images) is part of the network;
* a ``Discrete`` observation space takes int64 state indices ``(batch,)`` and one-hot encodes them;
* noisy layers use their mean weights (evaluation mode).

Env-side preprocessing (Atari's resizing and frame stacking, ``env_wrapper``) stays in the env, as it does for
dqnkit's own evaluation. Beside the model goes ``NAME.json``: input name, dtype and shape, and the env. ONNX needs
the export extra (``pip install 'dqnkit[export]'``: onnx, and onnxruntime to run it); TorchScript needs torch only.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from dqnkit.errors import DqnkitError
from dqnkit.runfolder import write_json_atomic

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT, OUTPUT = "obs", "q_values"
ONNX_OPSET = 17


class GreedyQ(nn.Module):
    """Raw observations -> Q-values, with one-hot encoding of Discrete states in front of the Q-network."""

    def __init__(self, qnet: nn.Module, one_hot_n: int = 0, start: int = 0):
        super().__init__()
        self.qnet = qnet
        self.one_hot_n, self.start = int(one_hot_n), int(start)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.one_hot_n:
            states = obs.long().reshape(-1, 1) - self.start
            obs = (states == torch.arange(self.one_hot_n, device=obs.device)).float()
        return self.qnet.q_values(obs)


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise DqnkitError("ONNX export needs the onnx package; install it with pip install 'dqnkit[export]'") from None


def input_spec(model: Any) -> dict:
    """What the exported model takes: ``{"name", "dtype", "shape"}`` (shape with ``"batch"`` first)."""
    envs = model.trainer.envs
    raw = envs.raw_observation_space
    if isinstance(raw, gym.spaces.Discrete):
        return {"name": INPUT, "dtype": "int64", "shape": ["batch"], "states": [int(raw.start), int(raw.start + raw.n - 1)]}
    return {"name": INPUT, "dtype": str(np.dtype(envs.obs_dtype)), "shape": ["batch", *map(int, envs.obs_shape)]}


def greedy_module(model: Any) -> tuple[GreedyQ, torch.Tensor]:
    """The exportable module of a :class:`dqnkit.DQN` (on the CPU, evaluation mode) and an example input."""
    import copy

    raw = model.trainer.envs.raw_observation_space
    qnet = copy.deepcopy(model.trainer.agent.online).cpu().train(False).requires_grad_(False)
    if isinstance(raw, gym.spaces.Discrete):
        module = GreedyQ(qnet, int(raw.n), int(raw.start))
        example = torch.full((2,), int(raw.start), dtype=torch.int64)
    else:
        module = GreedyQ(qnet)
        spec = input_spec(model)
        example = torch.zeros((2, *spec["shape"][1:]), dtype=getattr(torch, spec["dtype"]))
    return module.train(False), example


def export_model(source: Any, out: str | Path | None = None, *, format: str = "onnx", which: str = "latest") -> Path:
    """Write the greedy Q-network of ``source`` (a :class:`dqnkit.DQN`, a run folder, a checkpoint or a saved
    model; ``which`` picks a run folder's latest or best checkpoint) to ``out`` (default
    ``RUN/export/q_network.onnx`` or ``.pt``) and its input description to the same name with ``.json``."""
    if format not in FORMATS:
        raise DqnkitError(f"export format {format!r} is not one of {', '.join(FORMATS)}")
    if format == "onnx":
        require_onnx()
    from dqnkit.api import DQN

    model = source if isinstance(source, DQN) else DQN.load(source, which=which)
    try:
        module, example = greedy_module(model)
        if out is None:
            if model.run_dir is None and isinstance(source, DQN):
                raise DqnkitError("this model has no run folder to export into; pass out='q_network"
                                  f"{FORMATS[format]}'")
            base = model.run_dir if isinstance(source, DQN) else _run_folder(Path(source))
            out = base / "export" / f"q_network{FORMATS[format]}"
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # PyTorch deprecates TorchScript and the TorchScript-based ONNX exporter (the torch.export-based one needs
        # onnxscript besides); both still write files that onnxruntime and torch.jit.load run, checked by the tests.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if format == "onnx":
                torch.onnx.export(module, (example,), str(out), input_names=[INPUT], output_names=[OUTPUT],
                                  dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=ONNX_OPSET,
                                  dynamo=False)
            else:
                torch.jit.save(torch.jit.trace(module, (example,)), str(out))
        write_json_atomic(out.with_suffix(".json"), {
            "format": format, "input": input_spec(model), "output": {"name": OUTPUT, "shape": ["batch",
                                                                                             model.trainer.envs.n_actions]},
            "env_id": model.config.env_id, "greedy_action": f"argmax of {OUTPUT} over its last axis"})
    finally:
        if model is not source:
            model.close()
    return out


def _run_folder(path: Path) -> Path:
    """The run folder around a checkpoint path (RUN/checkpoints/step_*/...), else the folder itself."""
    path = path.parent if path.is_file() else path
    for parent in (path, *path.parents):
        if (parent / "config.yaml").is_file():
            return parent
    return path


def load_spec(path: str | Path) -> dict:
    """The JSON written beside an exported model."""
    return json.loads(Path(path).with_suffix(".json").read_text())
