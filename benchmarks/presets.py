"""Do dqnkit's presets reach the rl-baselines3-zoo published returns within the published budgets?

For each preset and seed: ``DQN.from_preset(name, seed=s, run_dir=benchmarks/runs/presets/<name>-s<seed>,
torch_threads=1).learn()`` with the preset's own budget, then a greedy evaluation of 20 episodes on a separate
env with reset seeds 10_000..10_019 (the same initial states for every seed and preset). Each training runs in
its own subprocess; ``--jobs N`` runs up to N at once (on a 2-core machine, N=2 at most, and timings then
include the contention).

Table: preset, budget (env steps), per-seed final greedy mean, mean ± std over seeds (sample std), the rl-zoo
published target, pass (mean over seeds >= target) and how many seeds pass alone, mean wall time per run.
Targets (rl-zoo benchmark, DQN): CartPole-v1 500 at 5e4; Acrobot-v1 -77 at 1e5; MountainCar-v0 -101 at 1.2e5;
LunarLander 155 at 1e5 (published for LunarLander-v2; the preset runs Gymnasium's LunarLander-v3).

Full run through the population trainer (``--population``: all seeds of a preset as one population in one
process, each member an ordinary run folder; then each member's final and best models are loaded and
evaluated as above), 10 seeds:

    python benchmarks/presets.py --population --seeds 0 1 2 3 4 5 6 7 8 9

One single run per preset and seed instead (LunarLander and Acrobot train one update per env step, so expect
hours on 2 cores):

    python benchmarks/presets.py --seeds 0 1 2 3 4 --jobs 1

Smoke test (seed 0 only unless --seeds, 300 env steps per run, 2 eval episodes; pass/fail meaningless):

    python benchmarks/presets.py --smoke

Writes benchmarks/results/presets.md and presets.json (smoke: benchmarks/results/smoke/); run folders (eval.csv,
checkpoints, TensorBoard) go to benchmarks/runs/ (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DEFAULT_PRESETS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"]
# rl-baselines3-zoo published DQN results: (mean return, at env steps)
TARGETS = {"CartPole-v1": (500.0, 50_000), "Acrobot-v1": (-77.0, 100_000),
           "MountainCar-v0": (-101.0, 120_000), "LunarLander-v3": (155.0, 100_000)}
EVAL_EPISODES, EVAL_SEED = 20, 10_000
SMOKE = dict(total_timesteps=300, eval_episodes=2, eval_freq=0)
SMOKE_EVAL_EPISODES = 2


def run_dir_for(name: str, seed: int, smoke: bool) -> Path:
    return C.RUNS_DIR / ("smoke" if smoke else "") / "presets" / f"{name}-s{seed}"


def worker(args: argparse.Namespace) -> None:
    from dqnkit import DQN
    run_dir = run_dir_for(args.worker, args.seed, args.smoke)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a fresh run each time (our own benchmark folder)
    overrides = dict(SMOKE) if args.smoke else {}
    if args.smoke:
        overrides["learning_starts"] = 100
    t0 = time.perf_counter()
    model = DQN.from_preset(args.worker, seed=args.seed, run_dir=run_dir, torch_threads=1, **overrides)
    model.learn()  # the preset's own budget (total_timesteps)
    train_wall = time.perf_counter() - t0
    episodes = SMOKE_EVAL_EPISODES if args.smoke else EVAL_EPISODES
    ev = model.evaluate(episodes, seed=EVAL_SEED)
    model.close()
    best = DQN.load(run_dir, which="best")  # the checkpoint saved at the run's highest periodic evaluation
    best_ev = best.evaluate(episodes, seed=EVAL_SEED)
    best.close()
    print(json.dumps({"preset": args.worker, "seed": args.seed, "budget": model.config.total_timesteps,
                      "env_steps": model.num_timesteps, "status": model.trainer.status,
                      "final_mean": ev["mean_return"], "final_std": ev["std_return"], "returns": ev["returns"],
                      "best_mean": best_ev["mean_return"],
                      "last_train_eval": (model.trainer.last_eval or {}).get("mean_return"),
                      "train_wall_s": round(train_wall, 2), "wall_s": round(time.perf_counter() - t0, 2),
                      "run_dir": str(run_dir.relative_to(C.REPO_DIR))}))


def worker_population(args: argparse.Namespace) -> None:
    """All seeds of one preset as one population; then each member evaluated like a single run."""
    root = C.RUNS_DIR / ("smoke" if args.smoke else "") / "presets-population" / args.worker
    overrides = dict(SMOKE, learning_starts=100) if args.smoke else {}
    records, _ = C.population_of_preset(args.worker, args.seeds, root, overrides, eval_seed=EVAL_SEED,
                                        episodes=SMOKE_EVAL_EPISODES if args.smoke else EVAL_EPISODES)
    print(json.dumps({"preset": args.worker, "members": [dict(r, preset=args.worker) for r in records]}))


def _best_mean(mine: dict, seeds: list[int]) -> str:
    bests = [mine[s]["best_mean"] for s in seeds if s in mine and "best_mean" in mine[s]]
    if not bests:
        return "-"
    m, sd = C.mean_std(bests)
    return f"{m:.1f} ± {sd:.1f}"


def summarize(names: list[str], seeds: list[int], runs: list[dict], smoke: bool) -> tuple[str, list[dict]]:
    header = ["preset", "budget (env steps)"] + [f"seed {s}" for s in seeds] + \
             ["mean ± std", "IQM [95% CI]", "rl-zoo target", "pass", "seeds ≥ target", "best-checkpoint mean",
              "best IQM [95% CI]", "wall s / run"]
    rows, summary = [], []
    for name in names:
        mine = {r["seed"]: r for r in runs if r.get("preset") == name and "error" not in r}
        finals = [mine[s]["final_mean"] for s in seeds if s in mine]
        m, sd = C.mean_std(finals)
        target, at = TARGETS.get(name, (None, None))
        passed = None if target is None or not finals else m >= target
        n_pass = sum(f >= target for f in finals) if target is not None else None
        walls = [mine[s]["wall_s"] for s in seeds if s in mine]
        budget = next(iter(mine.values()))["budget"] if mine else "-"
        bests = [mine[s]["best_mean"] for s in seeds if s in mine]
        final_stats, best_stats = C.iqm_ci(finals), C.iqm_ci(bests)
        rows.append([name, budget] + [mine[s]["final_mean"] if s in mine else "failed" for s in seeds] +
                    [f"{m:.1f} ± {sd:.1f}" if finals else "-", C.fmt_iqm_ci(final_stats),
                     f"{target:g} at {at:,}" if target is not None else "-",
                     "-" if passed is None else ("PASS" if passed else "FAIL"),
                     f"{n_pass}/{len(finals)}" if n_pass is not None else "-",
                     _best_mean(mine, seeds), C.fmt_iqm_ci(best_stats),
                     C.mean_std(walls)[0] if walls else "-"])
        summary.append({"preset": name, "budget": budget, "finals": finals, "mean": m, "std": sd,
                        "target": target, "target_env_steps": at, "pass": passed, "seeds_passing": n_pass,
                        "final_stats": final_stats, "best_stats": best_stats, "bests": bests,
                        "mean_wall_s": C.mean_std(walls)[0] if walls else None})
    note = ("\n\nSMOKE RUN: budgets shrunk to 300 env steps; pass/fail is meaningless.\n" if smoke else "\n")
    text = C.markdown_table(header, rows) + note + \
        f"Final greedy mean over {SMOKE_EVAL_EPISODES if smoke else EVAL_EPISODES} episodes (reset seeds from " \
        f"{EVAL_SEED}); mean ± sample std over seeds; IQM with a 95% percentile-bootstrap CI of the mean over seeds; \n" \
        "pass = mean over seeds >= target. Best checkpoint: the model saved at the run's highest periodic \n" \
        "evaluation, re-evaluated the same way. With --population, wall s / run is the population's wall / members.\n"
    return text, summary


def merge_runs(path: Path, new_runs: list[dict], rerun: list[str]) -> tuple[list[dict], list[str], list[int]]:
    """``--update``: the merged runs (see ``_common.merge_runs``), and the presets and seeds present."""
    runs = C.merge_runs(path, new_runs, "preset", rerun)
    present = [r.get("preset") for r in runs]
    names = [n for n in DEFAULT_PRESETS if n in present] + sorted({n for n in present if n not in DEFAULT_PRESETS})
    return runs, names, sorted({r["seed"] for r in runs if "seed" in r})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("presets", nargs="*", default=DEFAULT_PRESETS,
                   help=f"preset names (default: {' '.join(DEFAULT_PRESETS)})")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: 0 1 2; --smoke: 0)")
    p.add_argument("--jobs", type=int, default=1, help="trainings run in parallel, 1 torch thread each (default: 1)")
    p.add_argument("--smoke", action="store_true", help="300 env steps per run, 2 eval episodes: checks it runs")
    p.add_argument("--population", action="store_true",
                   help="train each preset's seeds as one population (one process per preset)")
    p.add_argument("--update", action="store_true",
                   help="merge into the existing presets.json, replacing the rerun presets' runs (e.g. after "
                        "retuning one preset)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker and args.population:
        return worker_population(args)
    if args.worker:
        return worker(args)
    args.seeds = args.seeds or ([0] if args.smoke else list(range(10)) if args.population else [0, 1, 2])

    from dqnkit.presets import list_presets
    unknown = [n for n in args.presets if n not in list_presets()]
    if unknown:
        p.error(f"unknown preset(s) {unknown}; available: {list_presets()}")
    smoke = ["--smoke"] if args.smoke else []
    if args.population:
        jobs = [["--worker", name, "--population", "--seeds", *map(str, args.seeds), *smoke] for name in args.presets]
    else:
        jobs = [["--worker", name, "--seed", str(s), *smoke] for name in args.presets for s in args.seeds]
    t0 = time.perf_counter()
    runs = C.run_many(Path(__file__).resolve(), jobs, jobs=args.jobs, threads=1)
    if args.population:
        runs = [member for r in runs for member in (r.get("members") or [r])]
    total = time.perf_counter() - t0
    out = C.results_dir(args.smoke)
    names, seeds = args.presets, args.seeds
    if args.update:
        runs, names, seeds = merge_runs(out / "presets.json", runs, args.presets)
    text, summary = summarize(names, seeds, runs, args.smoke)
    text += f"Wall of this invocation {total:.0f} s with --jobs {args.jobs}{' (population mode)' if args.population else ''}"
    text += f" (rerun: {', '.join(args.presets)}; the other rows are from earlier invocations).\n" if args.update else ".\n"
    print(text)
    (out / "presets.md").write_text("# dqnkit presets vs rl-baselines3-zoo\n\n" + text)
    C.write_json(out / "presets.json", {"benchmark": "presets", "smoke": args.smoke, "jobs": args.jobs,
                                        "eval": {"episodes": SMOKE_EVAL_EPISODES if args.smoke else EVAL_EPISODES,
                                                 "seeds_from": EVAL_SEED},
                                        "targets": TARGETS, "machine": C.machine_info(), "total_wall_s": total,
                                        "summary": summary, "runs": runs})
    C.exit_with_failures(runs)


if __name__ == "__main__":
    main()
