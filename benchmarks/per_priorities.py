"""Prioritized replay with unclipped rewards: do priority outliers make Q diverge, and does priority_clip help?

Per run: ``DQN.from_preset("LunarLander-v3", seed=s, prioritized_replay=True, alpha=0.6, beta_initial=0.4,
total_timesteps=STEPS, priority_clip=c)`` with c = none or 1.0, the preset's other hyperparameters unchanged,
eval every 10,000 steps (10 greedy episodes). Reported per run, after training:
  p_max      the sampler's largest raw priority |TD| + eps ever given (new transitions get p_max ** alpha)
  max mean Q the largest batch-mean Q(s, a) logged in updates.csv (the true discounted return stays
             within about +-300 in LunarLander, so values far above that mean Q diverged)
  last eval  the last periodic greedy evaluation's mean return

    python benchmarks/per_priorities.py --seeds 0 1 --jobs 2          # 20k env steps per run
    python benchmarks/per_priorities.py --steps 100000 --seeds 0 1 2 --jobs 2

Writes benchmarks/results/per_priorities_<steps>.md and .json (a short trial run never overwrites the 20k results).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ENV = "LunarLander-v3"
CLIPS = {"none": None, "1.0": 1.0}


def worker(args: argparse.Namespace) -> None:
    from dqnkit import DQN
    from dqnkit.analysis.runs import load_run
    clip = CLIPS[args.worker]
    run_dir = C.RUNS_DIR / "per_priorities" / f"clip-{args.worker}-s{args.seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    model = DQN.from_preset(ENV, seed=args.seed, run_dir=run_dir, torch_threads=1, total_timesteps=args.steps,
                            prioritized_replay=True, alpha=0.6, beta_initial=0.4, priority_clip=clip)
    model.learn()
    p_max = model.trainer.buffer.sampler.max_priority
    model.close()
    run = load_run(run_dir)
    max_q = float(run.column("updates", "mean_q").max())
    evals = run.column("eval", "mean_return").tolist()
    print(json.dumps({"clip": args.worker, "seed": args.seed, "steps": args.steps, "p_max": p_max,
                      "max_mean_q": max_q, "last_eval": evals[-1] if evals else None, "evals": evals}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=20_000, help="env steps per run (default: 20000)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, 1 torch thread each")
    p.add_argument("--worker", choices=list(CLIPS), help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    jobs = [["--worker", clip, "--seed", str(s), "--steps", str(args.steps)] for clip in CLIPS for s in args.seeds]
    runs = C.run_many(Path(__file__).resolve(), jobs, jobs=args.jobs, threads=1)
    rows = [[r["clip"], r["seed"], f"{r['p_max']:.1f}", f"{r['max_mean_q']:.1f}",
             C.fmt(r["last_eval"]), ", ".join(f"{x:.0f}" for x in r["evals"])]
            for r in runs if "error" not in r]
    text = (f"# PER priorities on {ENV} ({args.steps} env steps, preset hyperparameters)\n\n"
            f"Command: `python benchmarks/per_priorities.py --steps {args.steps} --seeds "
            f"{' '.join(map(str, args.seeds))} --jobs {args.jobs}`\n\n"
            + C.markdown_table(["priority_clip", "seed", "p_max", "max mean Q", "last eval", "evals (every 10k)"],
                               rows) + "\n")
    print(text)
    out = C.results_dir(False)
    (out / f"per_priorities_{args.steps}.md").write_text(text)
    C.write_json(out / f"per_priorities_{args.steps}.json", {"benchmark": "per_priorities",
                                                             "machine": C.machine_info(), "runs": runs})
    C.exit_with_failures(runs)


if __name__ == "__main__":
    main()
