"""Population training against sequential runs: the CartPole-v1 preset, 16 seeds, in one process or one by one.

Three ways to train the same 16 seeds of the CartPole-v1 preset (rl-zoo config: 5e4 env steps, train_freq 256,
128 gradient steps per round, batch 64), each in fresh subprocesses with one torch thread
(``--threads 2``: two, in every mode alike):

  * ``population``: ``DQN.population("CartPole-v1", seeds=range(16), **preset).learn()``: one process, one
    batched network of 16 members, the NumPy-vectorised CartPole (16 sub-envs, one generator each);
  * ``dqnkit``: 16 single runs one after another (``DQN.from_preset(...).learn()``);
  * ``sb3``: Stable-Baselines3's DQN with the same hyperparameters, ``--sb3-runs`` runs one after another
    (default 4), its total for 16 runs EXTRAPOLATED from their mean wall time and labelled as such.

All three run once with the preset's [256, 256] network and once with [64, 64] (``--nets``). Each run
evaluates only once, at its last env step (10 greedy episodes, the preset's eval protocol), so evaluation
costs the same in every mode and is inside the wall times. Aggregate throughput = total env steps of all
16 seeds / total wall time. The speed-ups compare aggregate throughputs measured in the same invocation,
one process at a time (nothing else should run on the machine).

    python benchmarks/population.py                           # 16 seeds, both nets (about 1 h on 2 cores)
    python benchmarks/population.py --seeds 16 --dqnkit-runs 4 --nets 256   # sequential dqnkit extrapolated too
    python benchmarks/population.py --smoke                   # 2 seeds, 600 env steps: checks that it runs

Writes benchmarks/results/population.{md,json} (smoke: benchmarks/results/smoke/).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PRESET = "CartPole-v1"
SMOKE = dict(total_timesteps=600, learning_starts=200)


THREADS = 1  # torch intra-op threads of every worker (--threads)


def _config(net: int, smoke: bool) -> dict:
    from dqnkit.presets.zoo import parse_policy_kwargs
    values = C.preset_values(PRESET, as_published=True)  # rl-zoo's config, as SB3 gets it
    values.update(SMOKE if smoke else {})
    kwargs = values.get("policy_kwargs") or {}
    kwargs = parse_policy_kwargs(kwargs) if isinstance(kwargs, str) else dict(kwargs)
    values["policy_kwargs"] = dict(kwargs, net_arch=[net, net])
    values.update(eval_freq=int(values["total_timesteps"]), eval_episodes=10, checkpoint_freq=0,
                  torch_threads=THREADS)
    return values


def worker_population(net: int, seeds: list[int], smoke: bool) -> dict:
    from dqnkit import DQN
    values = _config(net, smoke)
    env = values.pop("env_id")
    t0 = time.perf_counter()
    members = DQN.population(env, seeds=seeds, **values).learn()
    wall = time.perf_counter() - t0
    finals = [(m.get("last_eval") or {}).get("mean_return") for m in members]
    return {"mode": "population", "net": net, "runs": len(seeds), "wall_s": round(wall, 2),
            "env_steps": int(values["total_timesteps"]) * len(seeds), "finals": finals}


def worker_dqnkit(net: int, seed: int, smoke: bool) -> dict:
    from dqnkit import DQN
    values = _config(net, smoke)
    env = values.pop("env_id")
    t0 = time.perf_counter()
    model = DQN(env, seed=seed, **values)
    model.learn()
    wall = time.perf_counter() - t0
    final = (model.trainer.last_eval or {}).get("mean_return")
    steps = model.num_timesteps
    model.close()
    return {"mode": "dqnkit", "net": net, "seed": seed, "wall_s": round(wall, 2), "env_steps": steps,
            "finals": [final]}


def worker_sb3(net: int, seed: int, smoke: bool) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN as SB3DQN

    from dqnkit.envs.rollout import run_episodes
    torch.set_num_threads(THREADS)
    values = _config(net, smoke)
    keys = ["learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma", "target_update_interval",
            "train_freq", "gradient_steps", "exploration_fraction", "exploration_final_eps"]
    t0 = time.perf_counter()
    model = SB3DQN("MlpPolicy", gym.make(PRESET), seed=seed, device="cpu", verbose=0,
                   policy_kwargs={"net_arch": [net, net]}, **{k: values[k] for k in keys})
    model.learn(int(values["total_timesteps"]))
    ev = run_episodes(lambda obs: model.predict(obs, deterministic=True)[0], lambda: gym.make(PRESET), 10,
                      seed=10_000)
    wall = time.perf_counter() - t0
    final = ev["mean_return"]
    return {"mode": "sb3", "net": net, "seed": seed, "wall_s": round(wall, 2),
            "env_steps": int(model.num_timesteps), "finals": [final]}


def summarize(results: list[dict], n_seeds: int) -> tuple[str, list[dict]]:
    rows, summary = [], []
    for net in sorted({r["net"] for r in results if "net" in r}, reverse=True):
        mine = [r for r in results if r["net"] == net and "error" not in r]
        per_mode = {}
        for mode in ("population", "dqnkit", "sb3"):
            runs = [r for r in mine if r["mode"] == mode]
            if not runs:
                continue
            wall = sum(r["wall_s"] for r in runs)
            steps = sum(r["env_steps"] for r in runs)
            n_runs = sum(r.get("runs", 1) for r in runs)
            extrapolated = n_runs < n_seeds
            total_wall = wall * n_seeds / n_runs  # equal to wall when every seed ran
            finals = [f for r in runs for f in r["finals"] if f is not None]
            per_mode[mode] = dict(mode=mode, net=net, runs=n_runs, extrapolated=extrapolated,
                                  wall_16=total_wall, steps_per_s=steps / wall, finals=finals)
        base = per_mode.get("population")
        for mode, m in per_mode.items():
            ratio = base["steps_per_s"] / m["steps_per_s"] if base else None
            fm, fsd = C.mean_std(m["finals"])
            label = f"{mode} ({m['runs']} run{'s' if m['runs'] > 1 else ''} measured, " \
                    f"{n_seeds} extrapolated)" if m["extrapolated"] else mode
            rows.append([f"[{net}, {net}]", label, f"{m['wall_16']:.0f}", f"{m['steps_per_s']:.0f}",
                         "-" if mode == "population" else f"{ratio:.2f}x",
                         f"{fm:.1f} ± {fsd:.1f}", f"{sum(f >= 475 for f in m['finals'])}/{len(m['finals'])}"])
            summary.append(dict(m, population_speedup=ratio))
    header = ["net", "mode", f"wall s for {n_seeds} seeds", "aggregate env steps/s", "population speed-up",
              "final greedy mean ± std", "members ≥ 475"]
    return C.markdown_table(header, rows), summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seeds", type=int, default=16, help="population size: seeds 0..N-1 (default 16)")
    p.add_argument("--nets", type=int, nargs="+", default=[256, 64], help="hidden width of the 2-layer MLP")
    p.add_argument("--dqnkit-runs", type=int, default=None, help="sequential dqnkit runs (default: all seeds)")
    p.add_argument("--sb3-runs", type=int, default=4, help="sequential SB3 runs, extrapolated (default 4)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of every run, all modes alike (default 1; 2 = both cores of this VM); "
                        "results go to population_threads<N>.{md,json} when not 1")
    p.add_argument("--name", default=None,
                   help="results file stem (default population, or population_threads<N>)")
    p.add_argument("--smoke", action="store_true", help="2 seeds, 600 env steps: checks that it runs")
    p.add_argument("--worker", choices=["population", "dqnkit", "sb3"], help=argparse.SUPPRESS)
    p.add_argument("--net", type=int, default=256, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    global THREADS
    THREADS = args.threads
    if args.smoke:
        args.seeds, args.dqnkit_runs, args.sb3_runs = 2, 1, 1
    if args.worker == "population":
        print(json.dumps(worker_population(args.net, list(range(args.seeds)), args.smoke)))
        return
    if args.worker in ("dqnkit", "sb3"):
        fn = worker_dqnkit if args.worker == "dqnkit" else worker_sb3
        print(json.dumps(fn(args.net, args.seed, args.smoke)))
        return

    script = Path(__file__).resolve()
    smoke = (["--smoke"] if args.smoke else []) + ["--threads", str(args.threads)]
    n_dqnkit = args.seeds if args.dqnkit_runs is None else min(args.dqnkit_runs, args.seeds)
    jobs = []
    for net in args.nets:
        jobs.append(["--worker", "population", "--net", str(net), "--seeds", str(args.seeds), *smoke])
        jobs += [["--worker", "dqnkit", "--net", str(net), "--seed", str(s), *smoke] for s in range(n_dqnkit)]
        jobs += [["--worker", "sb3", "--net", str(net), "--seed", str(s), *smoke]
                 for s in range(min(args.sb3_runs, args.seeds))]
    t0 = time.perf_counter()
    results = C.run_many(script, jobs, jobs=1)
    failed = [r for r in results if "error" in r]
    table, summary = summarize(results, args.seeds)
    out = C.results_dir(args.smoke)
    stem = args.name or ("population" if args.threads == 1 else f"population_threads{args.threads}")
    C.write_json(out / f"{stem}.json", {"machine": C.machine_info(), "args": vars(args), "runs": results,
                                           "summary": summary})
    text = (f"# Population vs sequential training: {PRESET} preset, {args.seeds} seeds\n\n{table}\n\n"
            f"{args.threads} torch thread(s) per process, one process at a time. "
            "Extrapolated rows ran fewer seeds and scale "
            f"their wall time to {args.seeds}. Speed-up = population's aggregate env steps/s / that row's.\n"
            f"Each run evaluates once, at its end (10 greedy episodes); total {time.perf_counter() - t0:.0f} s.\n")
    if failed:
        text += f"\n{len(failed)} run(s) failed: see {stem}.json.\n"
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
