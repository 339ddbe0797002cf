"""Tune a preset for time to solve with the population trainer: env steps to the first greedy evaluation at
or above a threshold, per grid cell and seed (the proxy used for CartPole-v1-fast; benchmarks/time_to_solve.py
then measures the wall seconds of the preset chosen).

Trains ``DQN.population(env, seeds, grid=GRID, **preset values, **BASE)`` with a greedy evaluation of 20
episodes every 1,000 env steps, reads each member's eval.csv and prints, per cell, how many seeds reached the
threshold within ``--steps`` and at which env step. A cell that costs more per env step (a larger net, more
gradient steps) is not charged for it here: compare cells of one cost, or time the winner.

    python benchmarks/solve_tuning.py --name g4 --preset CartPole-v1 \\
        --grid '{"policy_kwargs": [{"net_arch": [128, 128]}], "learning_rate": [2.3e-3, 4e-3, 6e-3]}' \\
        --base '{"total_timesteps": 30000}'

Run folders go to benchmarks/runs/solve_tuning/NAME (git-ignored); the table is printed.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def first_at(eval_csv: Path, threshold: float) -> int | None:
    for row in csv.DictReader(open(eval_csv)):
        if float(row["mean_return"]) >= threshold:
            return int(row["env_step"])
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--preset", default="CartPole-v1")
    p.add_argument("--grid", default="{}", help="JSON: {config key: [values]}")
    p.add_argument("--base", default="{}", help="JSON: config overrides for every member")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=20_000, help="env steps trained")
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    from dqnkit import DQN
    values = {**C.preset_values(args.preset), "eval_freq": 1000, "eval_episodes": 20, "checkpoint_freq": 0,
              "torch_threads": args.threads, **json.loads(args.base)}
    env = values.pop("env_id")
    root = C.RUNS_DIR / "solve_tuning" / args.name
    shutil.rmtree(root, ignore_errors=True)  # our own benchmark folder: a fresh run each time
    t0 = time.perf_counter()
    DQN.population(env, seeds=range(args.seeds), grid=json.loads(args.grid), run_dir=root, **values).learn(args.steps)
    print(f"wall {time.perf_counter() - t0:.1f} s")
    cells: dict[str, list] = {}
    for d in sorted(root.iterdir()):
        if (d / "eval.csv").exists():
            cell = d.name.rpartition("__s")[0] if "__s" in d.name else "preset"
            cells.setdefault(cell, []).append(first_at(d / "eval.csv", args.threshold))
    for cell, steps in cells.items():
        ok = [s for s in steps if s is not None]
        print(f"{cell:60s} solved {len(ok)}/{len(steps)}  env steps {steps}  worst {max(ok) if ok else '-'}")


if __name__ == "__main__":
    main()
