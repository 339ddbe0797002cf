"""Grouping runs: the seeds of one setting form a group, labelled readably ("DQN", "Double DQN (learning_rate=0.001)").

Used by ``dqnkit compare`` and the plots, on configs read from run folders (no torch).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from dqnkit.analysis.runs import Run, format_value

__all__ = ["flat_config", "group_runs", "variant_name"]


_IDENTITY_KEYS = {
    "out", "out_dir", "output", "output_dir", "run_dir", "runs_dir", "log_dir", "logdir",
    "run_name", "name", "exp_name", "experiment", "run_id", "tag", "tags", "notes",
    "device", "resume", "resume_from", "track", "wandb_project", "wandb_entity",
    "capture_video", "video", "save_video", "progress", "verbose", "verbosity",
    # bookkeeping that does not change what is learned
    "torch_threads", "tensorboard", "log_interval", "checkpoint_freq", "keep_checkpoints", "save_replay",
}


def _is_identity_key(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1].lower()
    return (
        leaf in _IDENTITY_KEYS
        or leaf == "seed"
        or leaf.endswith("_seed")
        or leaf.endswith("_dir")
        or leaf.endswith("_path")
        or "run_name" in leaf
    )


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts -> one level with dotted keys (``{"a": {"b": 1}} -> {"a.b": 1}``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _lookup(flat: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    if key in flat:
        return True, flat[key]
    for name, value in flat.items():  # "double_q" also finds "agent.double_q"
        if name.rsplit(".", 1)[-1] == key:
            return True, value
    return False, None


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def variant_name(config: Mapping[str, Any]) -> str:
    """A readable algorithm name from the config flags: "DQN", "Double+Dueling DQN", "Rainbow", ..."""
    flat = flat_config(config)
    if str(_lookup(flat, "algo")[1] or "").lower() == "tabular":
        return "Tabular Q-learning"

    def on(key: str) -> bool:
        return bool(_lookup(flat, key)[1])

    n_step = _lookup(flat, "n_step")[1]
    parts = []
    if on("double_q"):
        parts.append("Double")
    if on("dueling"):
        parts.append("Dueling")
    if on("prioritized_replay"):
        parts.append("PER")
    if isinstance(n_step, (int, float)) and n_step > 1:
        parts.append(f"{int(n_step)}-step")
    if on("noisy"):
        parts.append("Noisy")
    if on("distributional"):
        parts.append("C51")
    if len(parts) == 6:
        return "Rainbow"
    return " ".join(["+".join(parts), "DQN"]) if parts else "DQN"


def group_runs(runs: Iterable[Run], group_by: str | None = None) -> dict[str, list[Run]]:
    """Group runs (seeds of one setting) and label each group readably.

    ``group_by=None``: runs whose configs are equal once identity keys are removed (seed,
    out dir, run name, device, ...) form one group, labelled by its algorithm variant
    (:func:`variant_name`) plus, where that is not enough to tell groups apart, the config
    keys that differ (``"DQN (learning_rate=0.001)"``). ``group_by="double_q"``: one group
    per value of that config key (a dotted or leaf key), labelled ``"double_q=True"``; runs
    without the key go to ``"double_q=n/a"``. Groups keep the order of first appearance.
    """
    runs = list(runs)
    if group_by is not None:
        groups: dict[str, list[Run]] = {}
        for run in runs:
            found, value = _lookup(flat_config(run.config), group_by)
            label = f"{group_by}={format_value(value) if found else 'n/a'}"
            groups.setdefault(label, []).append(run)
        return groups

    keyed: dict[Any, list[Run]] = {}
    flats: dict[Any, dict[str, Any]] = {}
    for run in runs:
        flat = {k: v for k, v in flat_config(run.config).items() if not _is_identity_key(k)}
        key = tuple(sorted((k, _hashable(v)) for k, v in flat.items()))
        keyed.setdefault(key, []).append(run)
        flats.setdefault(key, flat)

    names = {key: variant_name(members[0].config) for key, members in keyed.items()}
    all_keys = sorted({k for flat in flats.values() for k in flat})
    differing = [
        k for k in all_keys if len({_hashable(flat.get(k, "<missing>")) for flat in flats.values()}) > 1
    ]
    flag_keys = {"algo", "double_q", "dueling", "prioritized_replay", "n_step", "noisy", "distributional"}
    labels: dict[str, list[Run]] = {}
    for key, members in keyed.items():
        label = names[key]
        clash = sum(1 for other in names.values() if other == label) > 1
        if clash:
            flat = flats[key]
            extra = [
                f"{k}={format_value(flat[k]) if k in flat else 'n/a'}"
                for k in differing
                if k.rsplit(".", 1)[-1] not in flag_keys
            ]
            if extra:
                label = f"{label} ({', '.join(extra[:4])}{', ...' if len(extra) > 4 else ''})"
        base, i = label, 2
        while label in labels:
            label, i = f"{base} #{i}", i + 1
        labels[label] = members
    return labels
