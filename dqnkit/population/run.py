"""A population run folder: its members' ordinary run folders and ``population.json``.

    runs/<name>/
      population.json     format, groups (member names), each group's last complete checkpoint, status
      s0/ s1/ ...         one ordinary run folder per member ("<grid setting>__s<seed>" with a grid)

:func:`train_population` expands seeds x grid into members, splits them into groups that can share one
batched network (printed), and trains the groups one after the other; :func:`resume_population` continues
each group from its last complete checkpoint. ``population.json`` is rewritten atomically after every
complete group checkpoint, so it never names a checkpoint some member lacks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from dqnkit.envs.vector import EnvSource
from dqnkit.population.members import Member, describe_split, expand, split_groups
from dqnkit.population.trainer import PopulationTrainer
from dqnkit.presets.zoo import config_from_zoo
from dqnkit.population.folder import FORMAT, POPULATION_FILE, VERSION, read_population
from dqnkit.runfolder import CONFIG_FILE, write_json_atomic

class _Progress:
    """population.json, rewritten after every complete group checkpoint."""

    def __init__(self, root: Path | None, groups: Sequence[Sequence[Member]], extra: dict):
        self.root = root
        self.info = {"format": FORMAT, "version": VERSION, **extra,
                     "groups": [{"members": [m.name for m in g], "checkpoint_env_step": None, "status": "pending"}
                                for g in groups]}

    def write(self) -> None:
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.root / POPULATION_FILE, self.info)

    def on_checkpoint(self, g: int) -> Callable[[int], None]:
        def mark(env_step: int) -> None:
            self.info["groups"][g]["checkpoint_env_step"] = int(env_step)
            self.write()
        return mark

    def finish(self, g: int, status: str) -> None:
        self.info["groups"][g]["status"] = status
        self.write()


def train_population(base: dict, seeds: Sequence[int], grid: dict[str, list], root: str | Path | None, *,
                     env: EnvSource | None = None, verbosity: str = "auto",
                     say: Callable[[str], None] = print) -> list[dict]:
    """Train every member of seeds x grid on top of ``base`` (config values); returns per-member results."""
    members = expand(base, seeds, grid)
    groups = split_groups(members)
    say(describe_split(groups))
    root = Path(root) if root is not None else None
    progress = _Progress(root, groups, {"seeds": list(map(int, seeds)), "grid": grid})
    progress.write()
    return _run_groups(groups, root, progress, env, verbosity, resume=False)


def resume_population(root: str | Path, until_env_step: int | None = None, *, env: EnvSource | None = None,
                      verbosity: str = "auto") -> list[dict]:
    """Continue every group of the population folder ``root`` from its last complete checkpoint."""
    root = Path(root)
    info = read_population(root)
    groups = []
    for group in info["groups"]:
        members = []
        for name in group["members"]:
            values = yaml.safe_load((root / name / CONFIG_FILE).read_text())
            members.append(Member(name, config_from_zoo(values), {}))
        groups.append(members)
    progress = _Progress(root, groups, {k: v for k, v in info.items() if k not in ("format", "version", "groups")})
    progress.info["groups"] = info["groups"]
    return _run_groups(groups, root, progress, env, verbosity, resume=True, until_env_step=until_env_step)


def _run_groups(groups: Sequence[Sequence[Member]], root: Path | None, progress: _Progress, env, verbosity: str, *,
                resume: bool, until_env_step: int | None = None) -> list[dict]:
    results: list[dict[str, Any]] = []
    for g, group in enumerate(groups):
        state = progress.info["groups"][g]
        trainer = PopulationTrainer(group, root, env=env, verbosity=verbosity)
        try:
            if resume and state["checkpoint_env_step"] is not None:
                trainer.restore(int(state["checkpoint_env_step"]))
            elif resume:
                trainer.discard_partial_logs()
            target = until_env_step if until_env_step is not None else group[0].config.total_timesteps
            if trainer.env_step < target:
                out = trainer.learn(target, on_complete_checkpoint=progress.on_checkpoint(g))
            else:
                out = {"status": "finished", "members": trainer.results()}
        finally:
            trainer.close()
        progress.finish(g, out["status"])
        results += out["members"]
        if out["status"] == "interrupted":
            break
    return results
