"""Tune a preset with the population trainer: a grid of settings x seeds, judged as presets.py judges presets.

Trains the grid as one population (``DQN.population(..., grid=...)``, one run folder per member), or takes
population folders trained before (``--evaluate``), then loads every member's final ("latest") and best
models and evaluates each greedily on 20 episodes with reset seeds 10_000..10_019, as
``benchmarks/presets.py`` does. One row per grid cell: the per-seed final returns, their IQM with a 95%
bootstrap CI (``dqnkit.analysis.stats``), how many seeds reach the rl-zoo target of
``presets.TARGETS`` alone, and the same for the best checkpoints.

    python benchmarks/preset_tuning.py --preset MountainCar-v0 --seeds 0-4 \\
        --grid n_step=1,3 --grid learning_rate_schedule=constant,linear --threads 2
    python benchmarks/preset_tuning.py --preset MountainCar-v0 --evaluate runs/a runs/b   # folders trained before

Writes benchmarks/results/tuning_<preset>.md and .json (``--name`` changes the stem); run folders go to
benchmarks/runs/tuning/ (git-ignored). Wall times are the population's, shared by its members.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from presets import EVAL_EPISODES, EVAL_SEED, TARGETS  # noqa: E402


def parse_value(text: str):
    """A grid or --set value: 3 -> int, 1e-3 -> float, true/false -> bool, anything else a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_grid(items: list[str]) -> dict[str, list]:
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise SystemExit(f"--grid {item!r}: write KEY=V1,V2")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return grid


def train(preset: str, seeds: list[int], grid: dict, overrides: dict, root: Path, threads: int) -> float:
    import shutil

    from dqnkit import DQN
    if root.exists():
        shutil.rmtree(root)  # our own benchmark folder: a fresh run each time
    values = {**C.preset_values(preset), **overrides, "torch_threads": threads}
    env = values.pop("env_id")
    t0 = time.perf_counter()
    DQN.population(env, seeds=seeds, grid=grid or None, run_dir=root, **values).learn()
    return time.perf_counter() - t0


# settings that do not change what is learned, left out of a cell's name
BOOKKEEPING = {"seed", "torch_threads", "tensorboard", "log_interval", "checkpoint_freq", "keep_checkpoints",
               "save_replay", "device"}


def cell_of(preset: str, member: Path) -> tuple[str, int]:
    """A member's cell, named by the settings in which its config.yaml differs from the preset's, and its seed;
    so members of different population folders with the same settings fall in one cell."""
    import yaml

    from dqnkit.config import Config
    from dqnkit.presets import load_preset
    from dqnkit.presets.zoo import config_from_zoo
    base = config_from_zoo(load_preset(preset)).to_dict()
    mine = Config.from_dict(yaml.safe_load((member / "config.yaml").read_text())).to_dict()
    diff = [f"{k}={mine[k]}" for k in sorted(mine) if k not in BOOKKEEPING and mine[k] != base.get(k)]
    return ",".join(diff) or "(preset)", int(mine["seed"])


def evaluate_folder(preset: str, root: Path, episodes: int) -> list[dict]:
    """One record per member folder of the population folder ``root``: its cell, seed, final and best returns."""
    from dqnkit import DQN
    index = json.loads((root / "population.json").read_text())
    records = []
    for group in index["groups"]:
        for name in group["members"]:
            cell, seed = cell_of(preset, root / name)
            rec = {"folder": str(root / name), "cell": cell, "seed": seed}
            for which in ("latest", "best"):
                model = DQN.load(root / name, which=which)
                ev = model.evaluate(episodes, seed=EVAL_SEED)
                rec[f"{which}_mean"] = ev["mean_return"]
                if which == "latest":
                    rec["env_steps"] = model.num_timesteps
                model.close()
            records.append(rec)
    return records


def summarize(preset: str, records: list[dict], fixed: dict) -> tuple[list[dict], str]:
    target, budget = TARGETS.get(preset, (float("nan"), None))
    cells = {}
    for rec in records:
        cells.setdefault(rec["cell"], []).append(rec)
    rows, table = [], []
    for cell, recs in cells.items():
        recs.sort(key=lambda r: r["seed"])
        finals, bests = [r["latest_mean"] for r in recs], [r["best_mean"] for r in recs]
        row = {"cell": cell, "seeds": [r["seed"] for r in recs], "finals": finals, "bests": bests,
               "final_stats": C.iqm_ci(finals), "best_stats": C.iqm_ci(bests),
               "final_at_target": sum(f >= target for f in finals), "best_at_target": sum(b >= target for b in bests)}
        rows.append(row)
        n = len(recs)
        table.append([cell, ",".join(map(str, row["seeds"])), " / ".join(C.fmt(f) for f in finals),
                      C.fmt_iqm_ci(row["final_stats"]), f"{row['final_at_target']}/{n}",
                      C.fmt_iqm_ci(row["best_stats"]), f"{row['best_at_target']}/{n}"])
    header = ["cell", "seeds", "final greedy return per seed", "final IQM [95% CI]", "final >= target",
              "best IQM [95% CI]", "best >= target"]
    md = (f"# Tuning {preset}: grid cells over seeds\n\n"
          f"rl-zoo target {target:g} at {budget:,} env steps. A cell is named by the settings in which its members' "
          f"config differs from the preset's ((preset): none). Final = the model at the end of training, best = the checkpoint of "
          f"the run's highest periodic evaluation; both evaluated greedily on {EVAL_EPISODES} episodes with reset "
          f"seeds from {EVAL_SEED}.\n\n" + C.markdown_table(header, table) + "\n")
    return rows, md


def main() -> None:
    from dqnkit.population.members import parse_seeds
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--seeds", default="0-4", help="like 0-4 or 0,3,7")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V", help="a setting of every cell")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the population")
    p.add_argument("--evaluate", nargs="+", type=Path, default=None,
                   help="population folders trained before: evaluate them, train nothing")
    p.add_argument("--episodes", type=int, default=EVAL_EPISODES)
    p.add_argument("--name", default=None, help="results stem (default tuning_<preset>)")
    args = p.parse_args()
    fixed = {k: parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    folders, wall = args.evaluate, None
    if folders is None:
        root = C.RUNS_DIR / "tuning" / args.preset
        wall = train(args.preset, parse_seeds(args.seeds), parse_grid(args.grid), fixed, root, args.threads)
        folders = [root]
    records = [rec for folder in folders for rec in evaluate_folder(args.preset, folder, args.episodes)]
    rows, md = summarize(args.preset, records, fixed)
    command = "python benchmarks/preset_tuning.py " + " ".join(sys.argv[1:])
    md += f"\nCommand: `{command}`" + (f"; population wall {wall:.0f} s." if wall is not None else ".") + "\n"
    stem = args.name or f"tuning_{args.preset}"
    C.write_json(C.RESULTS_DIR / f"{stem}.json", {"preset": args.preset, "fixed": fixed, "command": command,
                                                  "train_wall_s": wall, "machine": C.machine_info(),
                                                  "rows": rows, "members": records})
    (C.RESULTS_DIR / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
