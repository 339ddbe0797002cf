"""Rainbow-family ablation: what does each DQN extension do on top of a tuned preset?

Variants (config keys exactly as in dqnkit/config.py), each applied on top of the env's preset as rl-zoo
publishes it (``_common.zoo_overrides``: without the settings that benchmarks/preset_tuning.py tuned into
some presets), whose hyperparameters were tuned for plain DQN (nothing is
re-tuned per variant):
  dqn      rl-zoo's DQN config
  double   double_q=True
  dueling  dueling=True
  per      prioritized_replay=True, alpha=0.6, beta_initial=0.4 (beta annealed to 1 at total_timesteps),
           priority_clip=1.0: priorities from |TD| clipped to 1, as in Schaul et al.'s Atari setup (TD errors
           clipped to [-1, 1], the same bound the Huber loss puts on the gradient). Without the clip, LunarLander's
           unclipped rewards give priority outliers (|TD| in the thousands) and Q diverges; see PER_NO_CLIP below.
  nstep    n_step=3
  noisy    noisy=True (epsilon-greedy off; exploration comes from the noisy head)
  c51      distributional=True, n_atoms=51, v_min/v_max per env (SUPPORT below)
  rainbow  all of the above together, except priority_clip: Rainbow's priorities are the C51 loss, not |TD|
           (Hessel et al. 2018), and stay unclipped
C51 supports: CartPole-v1 [0, 200]: rewards are +1 per step, so discounted returns (gamma 0.99) lie in [0, 100];
the support leaves headroom above and spaces atoms 4 apart. LunarLander-v3 [-300, 300]: a crash gives -100 and
a landing +100..+140 on top of the shaping rewards; discounted returns stay roughly within +-300.
PER and noisy variants sample and update batch by batch (the plain path draws all batches of a round at once),
so they are slower per update; wall time is reported for information only.

Per run: ``DQN.from_preset(env, seed=s, run_dir=benchmarks/runs/variants/<env>/<variant>-s<seed>, torch_threads=1,
**variant).learn()``, then 20 greedy episodes (reset seeds 10_000..10_019). The table gives the final greedy
mean ± std over seeds and the env steps to the first periodic evaluation (the run's eval.csv: every eval_freq
steps of the preset, 10 episodes) with mean return >= threshold (CartPole-v1 475, LunarLander-v3 200).
The plot shows mean periodic-evaluation return vs env steps per variant (band: ± std over seeds).

Full runs (CartPole: 8 variants x 3 seeds x 50k steps; LunarLander adds 8 x 3 x 100k steps at one update per
env step, which takes many hours on 2 cores):

    python benchmarks/variants.py --seeds 0 1 2 --jobs 2
    python benchmarks/variants.py --envs CartPole-v1 LunarLander-v3 --seeds 0 1 2 --jobs 2

Through the population trainer (``--population``: one process per env and variant, its seeds as members;
default 10 seeds):

    python benchmarks/variants.py --population --seeds 0 1 2 3 4 5 6 7 8 9

Smoke test (seed 0, 300 env steps, evaluation every 100 steps with 2 episodes):

    python benchmarks/variants.py --smoke

Writes benchmarks/results/variants_<envs>.md, .json and .png (smoke: benchmarks/results/smoke/), <envs> being
the --envs joined by "_". With --update, the runs of the variants given replace those variants' runs in the
existing variants_<envs>.json and the table is rebuilt from all of them (e.g. to rerun one variant):

    python benchmarks/variants.py --envs CartPole-v1 --variants per --update --jobs 2
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

SUPPORT = {"CartPole-v1": (0.0, 200.0), "LunarLander-v3": (-300.0, 300.0)}
THRESHOLD = {"CartPole-v1": 475.0, "LunarLander-v3": 200.0}
PER_NO_CLIP = dict(prioritized_replay=True, alpha=0.6, beta_initial=0.4)
VARIANTS = {
    "dqn": {},
    "double": dict(double_q=True),
    "dueling": dict(dueling=True),
    "per": dict(**PER_NO_CLIP, priority_clip=1.0),
    "nstep": dict(n_step=3),
    "noisy": dict(noisy=True),
    "c51": dict(distributional=True, n_atoms=51),
    "rainbow": dict(double_q=True, dueling=True, **PER_NO_CLIP, n_step=3, noisy=True, distributional=True, n_atoms=51),
}
EVAL_EPISODES, EVAL_SEED = 20, 10_000
SMOKE = dict(total_timesteps=300, learning_starts=100, eval_freq=100, eval_episodes=2)
SMOKE_EVAL_EPISODES = 2


def variant_config(env: str, variant: str) -> dict:
    cfg = {**C.zoo_overrides(env), **VARIANTS[variant]}
    if cfg.get("distributional"):
        cfg["v_min"], cfg["v_max"] = SUPPORT[env]
    return cfg


def run_dir_for(env: str, variant: str, seed: int, smoke: bool) -> Path:
    return C.RUNS_DIR / ("smoke" if smoke else "") / "variants" / env / f"{variant}-s{seed}"


def eval_curve(run_dir: Path) -> list[tuple[int, float]]:
    """``(env_step, mean_return)`` of each periodic greedy evaluation in the run's eval.csv."""
    from dqnkit.analysis.runs import load_run
    run = load_run(run_dir, require_episodes=False)
    steps, returns = run.column("eval", "env_step"), run.column("eval", "mean_return")
    if steps is None or returns is None:
        return []
    return [(int(st), float(ret)) for st, ret in zip(steps, returns)]


def run_curve(run: dict) -> list[tuple[int, float]] | None:
    """A run's eval curve: stored in its record (runs since 2026-12-03), else read from its run folder, else None
    (an older record whose folder is gone: its threshold step comes from the results file, see merge_runs)."""
    if run.get("curve") is not None:
        return [tuple(p) for p in run["curve"]]
    folder = C.REPO_DIR / run["run_dir"]
    return eval_curve(folder) if folder.is_dir() else None


def worker(args: argparse.Namespace) -> None:
    from dqnkit import DQN
    env, variant = args.worker
    run_dir = run_dir_for(env, variant, args.seed, args.smoke)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a fresh run each time (our own benchmark folder)
    overrides = {**variant_config(env, variant), **(SMOKE if args.smoke else {})}
    t0 = time.perf_counter()
    model = DQN.from_preset(env, seed=args.seed, run_dir=run_dir, torch_threads=1, **overrides)
    model.learn()  # the preset's budget
    train_wall = time.perf_counter() - t0
    ev = model.evaluate(SMOKE_EVAL_EPISODES if args.smoke else EVAL_EPISODES, seed=EVAL_SEED)
    model.close()
    print(json.dumps({"env": env, "variant": variant, "seed": args.seed, "config": overrides,
                      "budget": model.config.total_timesteps, "status": model.trainer.status,
                      "final_mean": ev["mean_return"], "final_std": ev["std_return"],
                      "train_wall_s": round(train_wall, 2), "wall_s": round(time.perf_counter() - t0, 2),
                      "run_dir": str(run_dir.relative_to(C.REPO_DIR)), "curve": eval_curve(run_dir)}))


def worker_population(args: argparse.Namespace) -> None:
    """All seeds of one (env, variant) as one population; each member evaluated like a single run."""
    env, variant = args.worker
    root = C.RUNS_DIR / ("smoke" if args.smoke else "") / "variants-population" / env / variant
    overrides = {**variant_config(env, variant), **(SMOKE if args.smoke else {})}
    episodes = SMOKE_EVAL_EPISODES if args.smoke else EVAL_EPISODES
    if args.evaluate_existing:
        records, _ = C.evaluate_population_folder(root, episodes=episodes, eval_seed=EVAL_SEED)
    else:
        records, _ = C.population_of_preset(env, args.seeds, root, overrides, eval_seed=EVAL_SEED, episodes=episodes)
    print(json.dumps({"members": [dict(r, env=env, variant=variant, config=overrides,
                                       curve=eval_curve(C.REPO_DIR / r["run_dir"])) for r in records]}))


def summarize(envs: list[str], variants: list[str], seeds: list[int], runs: list[dict], smoke: bool):
    text, summary = "", []
    for env in envs:
        thr = THRESHOLD[env]
        rows = []
        for v in variants:
            mine = [r for r in runs if r.get("env") == env and r.get("variant") == v and "error" not in r]
            finals = [r["final_mean"] for r in mine]
            curves = {r["seed"]: run_curve(r) for r in mine}
            to_thr = {r["seed"]: r["steps_to_threshold"] if curves[r["seed"]] is None else
                      next((step for step, ret in curves[r["seed"]] if ret >= thr), None) for r in mine}
            curves = {k: c for k, c in curves.items() if c is not None}
            reached = [x for x in to_thr.values() if x is not None]
            steps = sorted(set.intersection(*(set(st for st, _ in c) for c in curves.values()))) if curves else []
            mean_curve = [(st, *C.mean_std([dict(c)[st] for c in curves.values()])) for st in steps]
            m, sd = C.mean_std(finals)
            rows.append([v, f"{len(mine)}/{len(seeds)}", f"{m:.1f} ± {sd:.1f}" if finals else "-",
                         C.fmt_iqm_ci(C.iqm_ci(finals)),
                         ", ".join(f"{x:.1f}" for x in finals) or "-",
                         ", ".join(str(to_thr[s]) if to_thr[s] is not None else "never" for s in sorted(to_thr)) or "-",
                         C.mean_std(reached)[0] if reached else "never",
                         C.mean_std([r["wall_s"] for r in mine])[0] if mine else "-"])
            summary.append({"env": env, "variant": v, "config": variant_config(env, v), "finals": finals,
                            "final_stats": C.iqm_ci(finals),
                            "mean": m, "std": sd, "steps_to_threshold": to_thr, "threshold": thr,
                            "curve": mean_curve, "mean_wall_s": C.mean_std([r["wall_s"] for r in mine])[0]})
        text += f"## {env} (threshold {thr:g})\n\n" + C.markdown_table(
            ["variant", "runs ok", "final greedy mean ± std", "IQM [95% CI]", "per seed", f"env steps to eval ≥ {thr:g} (per seed)",
             "mean (seeds reaching it)", "wall s / run"], rows) + "\n\n"
    text += (f"Final greedy mean over {SMOKE_EVAL_EPISODES if smoke else EVAL_EPISODES} episodes (reset seeds from "
             f"{EVAL_SEED}); ± sample std over seeds. Threshold steps from each run's eval.csv.\n")
    if smoke:
        text += "\nSMOKE RUN: 300 env steps per run; the numbers are meaningless.\n"
    return text, summary


def merge_runs(path: Path, new_runs: list[dict], rerun: list[str]) -> tuple[list[dict], list[str], list[int]]:
    """``--update``: the merged runs (see ``_common.merge_runs``), and the variants and seeds present."""
    runs = C.merge_runs(path, new_runs, "variant", rerun)
    # Older records carry no curve; where their run folders are gone too, keep the threshold step that the
    # results file's summary gave them (their rows' mean curves then come from the seeds that have curves).
    earlier = {(s["env"], s["variant"]): s.get("steps_to_threshold") or {} for s in json.loads(path.read_text())["summary"]}
    for r in runs:
        if "curve" not in r and "steps_to_threshold" not in r:
            r["steps_to_threshold"] = earlier.get((r.get("env"), r.get("variant")), {}).get(str(r.get("seed")))
    present = {r.get("variant") for r in runs}
    return runs, [v for v in VARIANTS if v in present], sorted({r["seed"] for r in runs if "seed" in r})


def plot(summary: list[dict], envs: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(envs), figsize=(6.5 * len(envs), 4.5), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for s in (x for x in summary if x["env"] == env and x["curve"]):
            st = [p[0] for p in s["curve"]]
            mu = [p[1] for p in s["curve"]]
            sd = [p[2] for p in s["curve"]]
            line, = ax.plot(st, mu, marker=".", label=s["variant"])
            ax.fill_between(st, [a - b for a, b in zip(mu, sd)], [a + b for a, b in zip(mu, sd)],
                            color=line.get_color(), alpha=0.12)
        ax.axhline(THRESHOLD[env], color="gray", linestyle="--", linewidth=1)
        ax.set(title=env, xlabel="env steps", ylabel="greedy eval return (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path.relative_to(C.REPO_DIR)}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--envs", nargs="+", default=["CartPole-v1"], choices=sorted(THRESHOLD),
                   help="presets to run on (default: CartPole-v1)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="variants (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: 0 1 2; --smoke: 0)")
    p.add_argument("--jobs", type=int, default=1, help="trainings run in parallel, 1 torch thread each (default: 1)")
    p.add_argument("--smoke", action="store_true", help="300 env steps per run: checks that everything runs")
    p.add_argument("--update", action="store_true",
                   help="merge into the existing results of the same --envs, replacing the rerun variants' runs")
    p.add_argument("--population", action="store_true",
                   help="train each (env, variant)'s seeds as one population in one process")
    p.add_argument("--evaluate-existing", action="store_true",
                   help="--population: evaluate the population folders trained before (benchmarks/runs/"
                        "variants-population/ENV/VARIANT) instead of training them again")
    p.add_argument("--worker", nargs=2, metavar=("ENV", "VARIANT"), help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker and args.population:
        return worker_population(args)
    if args.worker:
        return worker(args)
    args.seeds = args.seeds or ([0] if args.smoke else list(range(10)) if args.population else [0, 1, 2])

    smoke = ["--smoke"] if args.smoke else []
    if args.population:
        again = ["--evaluate-existing"] if args.evaluate_existing else []
        jobs = [["--worker", env, v, "--population", "--seeds", *map(str, args.seeds), *smoke, *again]
                for env in args.envs for v in args.variants]
    else:
        jobs = [["--worker", env, v, "--seed", str(s), *smoke]
                for env in args.envs for s in args.seeds for v in args.variants]
    t0 = time.perf_counter()
    runs = C.run_many(Path(__file__).resolve(), jobs, jobs=args.jobs, threads=1)
    if args.population:
        runs = [member for r in runs for member in (r.get("members") or [r])]
    total = time.perf_counter() - t0
    out = C.results_dir(args.smoke)
    stem = "variants_" + "_".join(args.envs)
    variants, seeds = args.variants, args.seeds
    if args.update:
        runs, variants, seeds = merge_runs(out / f"{stem}.json", runs, args.variants)
    text, summary = summarize(args.envs, variants, seeds, runs, args.smoke)
    text += f"Wall of this invocation: {total:.0f} s with --jobs {args.jobs}"
    text += f" (rerun: {', '.join(args.variants)}).\n" if args.update else ".\n"
    if args.evaluate_existing:
        text += ("The rerun variants' populations were trained before and only evaluated by this invocation "
                 "(--evaluate-existing); their wall s / run is each population's training wall over its members.\n")
    print(text)
    (out / f"{stem}.md").write_text("# DQN variants (Rainbow-family ablation)\n\n" + text)
    plot(summary, args.envs, out / f"{stem}.png")
    C.write_json(out / f"{stem}.json", {"benchmark": "variants", "smoke": args.smoke, "jobs": args.jobs,
                                        "supports": SUPPORT, "thresholds": THRESHOLD, "machine": C.machine_info(),
                                        "total_wall_s": total, "summary": summary, "runs": runs})
    C.exit_with_failures(runs)


if __name__ == "__main__":
    main()
