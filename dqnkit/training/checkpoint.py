"""Checkpoints: safetensors for tensors, JSON for everything else. Never pickle.

Layout of one checkpoint directory::

    model.safetensors    networks + optimizer tensors (agent.tensors())
    replay.safetensors   the replay buffer's arrays (only with save_replay)
    state.json           format version, config, counters, RNG states, env signature, replay metadata

A checkpoint is written into a hidden temporary directory beside its final place and
renamed into place only when every file is complete and flushed, so a crash never leaves
a half-written checkpoint under a real name (Dopamine's sentinel idea, done by rename).
``checkpoints/index.json`` (replaced atomically too) names the latest and best ones.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

from dqnkit import __version__
from dqnkit.errors import CheckpointError
from dqnkit.runfolder import CHECKPOINTS_DIR, fsync_dir, umask_mode, write_json_atomic

FORMAT_VERSION = 1
MODEL_FILE, REPLAY_FILE, STATE_FILE, INDEX_FILE = "model.safetensors", "replay.safetensors", "state.json", "index.json"


class RunState(NamedTuple):
    """What a checkpoint's state.json holds beside the tensors: everything a run needs to continue exactly.

    ``counters`` are in env steps (``next_*``: the next evaluation, checkpoint and video, None for never;
    ``log_at``: the update count of the next updates.csv row); ``rng`` holds the exploration generator
    (:func:`dqnkit.runfolder.generator_state`) and torch's global RNG; ``envs`` the training envs'
    snapshots (:meth:`dqnkit.envs.vector.TrainingEnvs.snapshot`); ``pending_losses`` the losses logged
    since the last updates.csv row. ``replay`` is the replay buffer's metadata when its arrays were saved.
    """

    config: dict
    env: dict
    torso: str
    counters: dict
    agent: dict
    rng: dict
    episode_accumulators: dict
    envs: list
    last_eval: dict | None
    pending_losses: list
    replay: dict | None = None
    guards: dict | None = None  # dqnkit.training.guards.Guards.state(): the warnings given so far

    def to_json(self) -> dict:
        data = {"dqnkit_version": __version__, **self._asdict()}
        for key in ("replay", "guards"):
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_json(cls, data: dict, where: Path | str) -> "RunState":
        try:
            counters = dict(data["counters"])
            counters.setdefault("next_video", None)  # checkpoints from before videos during training
            return cls(config=data["config"], env=data.get("env"), torso=data.get("torso", "mlp"),
                       counters=counters, agent=data["agent"], rng=data["rng"],
                       episode_accumulators=data["episode_accumulators"], envs=data["envs"],
                       last_eval=data.get("last_eval"), pending_losses=data.get("pending_losses", []),
                       replay=data.get("replay"), guards=data.get("guards") or {"warnings": [], "kinds": []})
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {where} has no {exc} in its {STATE_FILE}; it was not written by "
                                  "dqnkit train (use a run folder's checkpoint)") from None


def never_to_none(x: float) -> float | None:
    """A counter for JSON: ``math.inf`` (never) becomes None."""
    return None if math.isinf(x) else x


def none_to_never(x: float | None) -> float:
    return math.inf if x is None else x


def save_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], state: dict,
                    replay: tuple[dict[str, np.ndarray], dict] | None = None) -> Path:
    """Write a complete checkpoint to ``directory`` atomically (replacing one that exists)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        torch_save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / MODEL_FILE))
        state = {"format_version": FORMAT_VERSION, **state}
        if replay is not None:
            arrays, meta = replay
            np_save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / REPLAY_FILE))
            state["replay"] = meta
        with open(tmp / STATE_FILE, "w") as fh:
            json.dump(state, fh, indent=1)
        for name in os.listdir(tmp):
            umask_mode(tmp / name)  # safetensors writes 0600; every file gets the umask's mode, as state.json
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        umask_mode(tmp, 0o777)  # mkdtemp makes it 0700; a checkpoint folder gets the umask's mode
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
        fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_state(directory: Path) -> dict:
    """A checkpoint's state.json (without loading its tensors); CheckpointError naming what is wrong."""
    directory = Path(directory)
    state_path, model_path = directory / STATE_FILE, directory / MODEL_FILE
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory} does not exist; pass a run folder or one of its "
                              "checkpoints/step_* folders")
    if not state_path.is_file() or not model_path.is_file():
        raise CheckpointError(f"checkpoint {directory} is incomplete (missing {STATE_FILE} or {MODEL_FILE}); "
                              "use an earlier checkpoint from its run's checkpoints/ folder")
    try:
        state = json.loads(state_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {directory} has a corrupt {STATE_FILE} ({exc.msg if hasattr(exc, 'msg') else exc}); "
                              "use an earlier checkpoint from the same run") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {directory} has format version {state.get('format_version') if isinstance(state, dict) else '?'}, "
                              f"this dqnkit reads version {FORMAT_VERSION}; load it with the dqnkit that wrote it")
    return state


def load_checkpoint(directory: Path, *, with_replay: bool = True, device: str | torch.device = "cpu"
                    ) -> tuple[dict[str, torch.Tensor], dict, dict[str, np.ndarray] | None]:
    """Read (tensors, state, replay arrays or None); raise CheckpointError naming what is wrong."""
    directory = Path(directory)
    state = read_state(directory)
    model_path = directory / MODEL_FILE
    try:
        tensors = torch_load_file(str(model_path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {directory} has a corrupt or truncated {MODEL_FILE} ({exc}); "
                              "use an earlier checkpoint from the same run") from None
    replay = None
    if with_replay and (directory / REPLAY_FILE).is_file():
        try:
            replay = np_load_file(str(directory / REPLAY_FILE))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {directory} has a corrupt {REPLAY_FILE} ({exc}); resume from an "
                                  "earlier checkpoint or delete that file to resume without the replay") from None
    return tensors, state, replay


class CheckpointIndex:
    """Checkpoints under ``run/checkpoints``: the newest ``keep`` step checkpoints, plus ``best/``
    (the model with the highest greedy evaluation so far), named in index.json."""

    def __init__(self, run_dir: Path, keep: int = 3):
        self.root = Path(run_dir) / CHECKPOINTS_DIR
        self.keep = keep
        self.index_path = self.root / INDEX_FILE
        self.data = {"latest": None, "best": None, "best_return": None, "best_env_step": None, "steps": []}
        if self.index_path.is_file():
            try:
                self.data.update(json.loads(self.index_path.read_text()))
            except json.JSONDecodeError:
                self.data["steps"] = sorted(p.name for p in self.root.glob("step_*") if p.is_dir())

    def save(self, env_step: int, tensors, state, replay=None) -> Path:
        name = f"step_{env_step:010d}"
        path = save_checkpoint(self.root / name, tensors, state, replay)
        self.data["steps"] = [s for s in self.data["steps"] if s != name] + [name]
        self.data["latest"] = name
        for old in self.data["steps"][:-self.keep]:
            shutil.rmtree(self.root / old, ignore_errors=True)
        self.data["steps"] = self.data["steps"][-self.keep:]
        write_json_atomic(self.index_path, self.data)
        return path

    def improves(self, eval_return: float) -> bool:
        return self.data["best_return"] is None or eval_return > self.data["best_return"]

    def save_best(self, env_step: int, eval_return: float, tensors, state) -> Path:
        path = save_checkpoint(self.root / "best", tensors, state)
        self.data.update(best="best", best_return=float(eval_return), best_env_step=int(env_step))
        write_json_atomic(self.index_path, self.data)
        return path

    def path(self, which: str = "latest") -> Path | None:
        name = self.data.get(which)
        return self.root / name if name else None


KINDS_OF_FOLDER = ("a run folder made by `dqnkit train` (runs/ENV__sSEED__TIME), one of its checkpoint folders "
                   "(RUN/checkpoints/step_* or RUN/checkpoints/best), or a folder written by model.save")


def find_checkpoint(path: str | Path, which: str = "latest") -> Path:
    """Accept a run folder (-> its latest/best checkpoint), a checkpoint folder, or a saved model folder; a file
    inside one of them (``RUN/checkpoints/best/model.safetensors``, ``RUN/config.yaml``) means its folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass {KINDS_OF_FOLDER}")
    if path.is_file():
        path = path.parent
    if (path / STATE_FILE).is_file() or (path / MODEL_FILE).is_file():
        return path
    if (path / "checkpoints").is_dir():
        index = CheckpointIndex(path)
        chosen = index.path(which) or index.path("latest")
        if chosen is None:
            candidates = sorted(p for p in (path / "checkpoints").glob("step_*") if p.is_dir())
            chosen = candidates[-1] if candidates else None
        if chosen is not None and chosen.is_dir():
            return chosen
        raise CheckpointError(f"run {path} has no checkpoint yet; train it longer (checkpoints are written every "
                              "checkpoint_freq env steps and at the end)")
    raise CheckpointError(f"{path} holds no dqnkit model (no checkpoints/ folder, {STATE_FILE} or {MODEL_FILE}); "
                          f"pass {KINDS_OF_FOLDER}")


def check_compatible(state: dict, signature: dict, where: Path | str, env_id: str | None = None) -> None:
    """Raise CheckpointError when a checkpoint's observation/action spaces differ from this env's."""
    saved = state.get("env")
    if json.loads(json.dumps(saved)) != json.loads(json.dumps(signature)):
        saved_id = (state.get("config") or {}).get("env_id", "another env")
        raise CheckpointError(
            f"checkpoint {where} was trained on {saved_id} ({_describe(saved)}) but this env"
            f"{' ' + env_id if env_id else ''} has {_describe(signature)}; load it with the environment "
            "it was trained on")


def _describe(sig: dict | None) -> str:
    if not sig:
        return "unknown spaces"

    def short(space: dict) -> str:
        return f"{space.get('type')}{space.get('shape', space.get('n', ''))}"
    return f"observations {short(sig['observation_space'])}, actions {short(sig['action_space'])}"
