"""Learning parity: dqnkit against Stable-Baselines3's DQN with the same hyperparameters, env by env.

Each case is one env and one hyperparameter set written once, in rl-baselines3-zoo's format (SB3's DQN
keyword names plus ``n_timesteps``, ``env_wrapper``, ``policy_kwargs`` as the zoo spells them).
``translate(case)`` turns it into both libraries' arguments: dqnkit's config (through
``dqnkit.presets.zoo.config_from_zoo``, which reads zoo entries as ``dqnkit train --config`` does) and SB3's ``DQN(...)`` keywords plus its
``learn()`` budget. tests/benchmarks/test_parity_harness.py checks that the two sides agree on every shared
hyperparameter, read back from a built SB3 model and a built dqnkit config.

Per case and seed both libraries train in fresh subprocesses (one torch thread each), dqnkit and SB3
alternating, the one that goes first flipping from seed to seed. Both are evaluated by one function,
``dqnkit.envs.rollout.run_episodes``: greedy (argmax Q) episodes on a separate env with reset seeds
10_000, 10_001, ..., at the same env-step points (every ``n_timesteps / 10``) and once more at the end.

- dqnkit trains in chunks, ``model.learn(every)``, which continues exactly (its schedules run on absolute
  env steps); its own periodic evaluation is off (eval_freq=0, evaluate_and_log patched to a no-op).
- SB3 transposes image observations (MiniGrid's 7x7x3) to channels-first; for an MLP that only permutes the
  inputs, and its ``predict`` transposes the evaluation env's raw observations the same way.
- SB3 gets one ``learn(n_timesteps)`` (its epsilon schedule runs on each call's progress); a callback
  evaluates at the points. SB3 collects whole rollouts of ``train_freq`` steps, so it may stop a few
  steps past the budget; dqnkit stops at it.

Per case the report gives, for each library, the greedy return at every point and at the end with the mean,
the IQM and a 95% percentile-bootstrap CI of the mean over seeds (``dqnkit.analysis.stats``), and two verdicts:
``final`` (last evaluation) and ``curve`` (mean over all points, the area under the learning curve):
"worse" when dqnkit's CI lies wholly below SB3's, "better" when wholly above, "same" when they overlap.

Cases (``--cases``; default all): the four classic-control/Box2D envs with the rl-zoo configs (CartPole-v1,
Acrobot-v1, MountainCar-v0, LunarLander-v3), FrozenLake-v1 8x8 (slippery, the default, and not), three
MiniGrid rooms behind ImgObsWrapper with the parity issue's config (Empty-5x5, Empty-Random-6x6,
Empty-8x8) and GridWorld-v0 with dqnkit's preset.

    pip install -e ".[bench,box2d]"
    python benchmarks/parity.py --seeds 0 1 2 3 4 --jobs 2            # every case (a few hours on 2 cores)
    python benchmarks/parity.py --cases MiniGrid-Empty-5x5-v0 --seeds 0 1 2 3 4 5 6 7 8 9 --update
    python benchmarks/parity.py --smoke                                 # tiny budgets: checks that it runs
    python benchmarks/parity.py --seeds 0 1 2 3 4 --resume              # after an interruption: skips finished runs

Each finished run is appended to benchmarks/results/parity_runs.jsonl at once; ``--resume`` reuses them.

``--dqnkit-set key=value`` changes dqnkit's side only (e.g. ``policy_kwargs.normalize_images=false`` to
measure a fix's effect); such runs are stored under their own label and never mixed with the defaults.
Writes benchmarks/results/parity.{md,json,png} (smoke: benchmarks/results/smoke/). With --update the runs of
the cases given replace those cases' runs in the existing parity.json, and the report is rebuilt from all.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

EVAL_SEED = 10_000
POINTS = 10  # evaluations during training, every n_timesteps / POINTS env steps (plus one at the end)

_ZOO_CLASSIC = {
    # rl-baselines3-zoo hyperparams/dqn.yml, as dqnkit's presets ship them untuned (see dqnkit/presets/)
    "CartPole-v1": dict(n_timesteps=5e4, learning_rate=2.3e-3, batch_size=64, buffer_size=100000, learning_starts=1000,
                        gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                        exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs="dict(net_arch=[256, 256])"),
    "Acrobot-v1": dict(n_timesteps=1e5, learning_rate=6.3e-4, batch_size=128, buffer_size=50000, learning_starts=0,
                       gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
                       exploration_fraction=0.12, exploration_final_eps=0.1, policy_kwargs="dict(net_arch=[256, 256])"),
    "MountainCar-v0": dict(n_timesteps=1.2e5, learning_rate=4e-3, batch_size=128, buffer_size=10000, learning_starts=1000,
                           gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8,
                           exploration_fraction=0.2, exploration_final_eps=0.07,
                           policy_kwargs="dict(net_arch=[256, 256])"),
    "LunarLander-v3": dict(n_timesteps=1e5, learning_rate=6.3e-4, batch_size=128, buffer_size=50000, learning_starts=0,
                           gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
                           exploration_fraction=0.12, exploration_final_eps=0.1,
                           policy_kwargs="dict(net_arch=[256, 256])"),
}
# The parity issue's MiniGrid config, also used for FrozenLake.
_SPARSE = dict(learning_rate=5e-4, buffer_size=50000, learning_starts=1000, batch_size=64, train_freq=4,
               target_update_interval=500, gamma=0.99, exploration_fraction=0.3, exploration_final_eps=0.05,
               policy_kwargs="dict(net_arch=[64, 64])")
_IMG = "minigrid.wrappers.ImgObsWrapper"

# name -> (env id, zoo-format hyperparameters incl. n_timesteps and env_kwargs/env_wrapper, eval episodes)
CASES: dict[str, dict[str, Any]] = {
    **{env: {"env_id": env, "hyper": hp, "episodes": 20} for env, hp in _ZOO_CLASSIC.items()},
    "FrozenLake-v1-8x8": {"env_id": "FrozenLake-v1", "episodes": 100,
                          "hyper": {**_SPARSE, "n_timesteps": 1e5, "env_kwargs": {"map_name": "8x8"}}},
    "FrozenLake-v1-8x8-not-slippery": {"env_id": "FrozenLake-v1", "episodes": 10,
                                       "hyper": {**_SPARSE, "n_timesteps": 5e4,
                                                 "env_kwargs": {"map_name": "8x8", "is_slippery": False}}},
    "MiniGrid-Empty-5x5-v0": {"env_id": "MiniGrid-Empty-5x5-v0", "episodes": 10,
                              "hyper": {**_SPARSE, "n_timesteps": 4e4, "env_wrapper": _IMG}},
    "MiniGrid-Empty-Random-6x6-v0": {"env_id": "MiniGrid-Empty-Random-6x6-v0", "episodes": 20,
                                     "hyper": {**_SPARSE, "n_timesteps": 6e4, "env_wrapper": _IMG}},
    "MiniGrid-Empty-8x8-v0": {"env_id": "MiniGrid-Empty-8x8-v0", "episodes": 10,
                              "hyper": {**_SPARSE, "n_timesteps": 8e4, "env_wrapper": _IMG}},
    "GridWorld-v0": {"env_id": "GridWorld-v0", "episodes": 10,
                     "hyper": dict(n_timesteps=6000, learning_rate=1e-3, batch_size=64, buffer_size=10000,
                                   learning_starts=500, gamma=0.99, target_update_interval=200, train_freq=1,
                                   gradient_steps=1, exploration_fraction=0.5, exploration_final_eps=0.05,
                                   policy_kwargs="dict(net_arch=[64, 64])")},
}
SMOKE_STEPS = 600

# zoo keys that are not DQN(...) keywords
_NOT_SB3 = {"n_timesteps", "env_wrapper", "env_kwargs", "policy", "eval_freq", "eval_episodes"}


def translate(case: dict, smoke: bool = False, dqnkit_overrides: dict | None = None) -> tuple[dict, dict, int]:
    """``(dqnkit config dict, SB3 DQN keywords, env-step budget)`` for one case, from its one zoo entry.

    dqnkit reads the zoo entry as it reads any rl-zoo file (``config_from_zoo``), with evaluation,
    checkpoints and TensorBoard off; SB3 gets the same keys minus those that are not DQN arguments, its
    ``policy_kwargs`` parsed from the zoo's ``"dict(...)"`` string, and ``seed``/``device`` from the caller.
    """
    from dqnkit.presets.zoo import config_from_zoo, parse_policy_kwargs

    hyper = dict(case["hyper"])
    if smoke:
        hyper.update(n_timesteps=SMOKE_STEPS, learning_starts=min(int(hyper.get("learning_starts", 0)), 200))
    steps = int(hyper["n_timesteps"])
    dq = config_from_zoo({**hyper, "env_id": case["env_id"], "eval_freq": 0, "checkpoint_freq": 0,
                           "tensorboard": False, "torch_threads": 1, **(dqnkit_overrides or {})}).to_dict()
    sb3 = {k: v for k, v in hyper.items() if k not in _NOT_SB3}
    if isinstance(sb3.get("policy_kwargs"), str):
        sb3["policy_kwargs"] = parse_policy_kwargs(sb3["policy_kwargs"])
    for key in ("buffer_size", "learning_starts", "batch_size", "train_freq", "gradient_steps",
                "target_update_interval"):
        if key in sb3:
            sb3[key] = int(sb3[key])
    return dq, sb3, steps


def make_case_env(case: dict, one_hot: bool, smoke: bool = False):
    """A callable building the case's env as both libraries see it (dqnkit one-hot encodes Discrete
    observations itself; SB3 gets the raw env and one-hot encodes inside its policy)."""
    from dqnkit.envs import make_env

    hyper = case["hyper"]
    wrappers = hyper.get("env_wrapper")
    wrappers = [wrappers] if isinstance(wrappers, str) else wrappers

    def build(render_mode=None):
        return make_env(case["env_id"], env_kwargs=hyper.get("env_kwargs"), wrappers=wrappers, one_hot=one_hot,
                        render_mode=render_mode)
    return build


class Evaluator:
    """Greedy evaluations at fixed env-step points, their time kept apart from training time."""

    def __init__(self, make_env: Callable, episodes: int):
        self.make_env, self.episodes = make_env, episodes
        self.evals: list[dict] = []
        self.eval_s = 0.0
        self.t0 = time.perf_counter()

    def __call__(self, env_step: int, policy: Callable) -> None:
        from dqnkit.envs.rollout import run_episodes

        t = time.perf_counter()
        res = run_episodes(policy, self.make_env, self.episodes, seed=EVAL_SEED)
        self.eval_s += time.perf_counter() - t
        self.evals.append({"env_step": int(env_step), "mean_return": res["mean_return"]})


def worker_dqnkit(case: dict, seed: int, smoke: bool, overrides: dict) -> tuple[Evaluator, dict]:
    from dqnkit import DQN

    cfg, _, steps = translate(case, smoke, overrides)
    cfg["seed"] = seed
    env_id = cfg.pop("env_id")
    model = DQN(env_id, **cfg)
    model.trainer.evaluate_and_log = lambda: None  # evaluation happens here, by the shared function
    ev = Evaluator(model.make_eval_env, case["episodes"])
    policy = lambda obs: model.q_values(obs).argmax(axis=1)  # noqa: E731
    every = max(1, steps // POINTS)
    while model.num_timesteps < steps:
        model.learn(min(every, steps - model.num_timesteps))
        ev(model.num_timesteps, policy)
    return ev, {"env_steps": model.num_timesteps, "updates": model.trainer.agent.updates}


def worker_sb3(case: dict, seed: int, smoke: bool) -> tuple[Evaluator, dict]:
    import numpy as np
    import stable_baselines3
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3.common.callbacks import BaseCallback

    _, kwargs, steps = translate(case, smoke)
    make = make_case_env(case, one_hot=False)
    model = SB3DQN("MlpPolicy", make(), seed=seed, device="cpu", verbose=0, **kwargs)
    ev = Evaluator(make, case["episodes"])
    policy = lambda obs: np.asarray(model.predict(obs, deterministic=True)[0]).reshape(-1)  # noqa: E731
    every = max(1, steps // POINTS)

    class AtPoints(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % every == 0 and self.num_timesteps < steps:
                ev(self.num_timesteps, policy)
            return True

    model.learn(total_timesteps=steps, callback=AtPoints())
    ev(model.num_timesteps, policy)
    return ev, {"env_steps": model.num_timesteps, "updates": model._n_updates, "sb3": stable_baselines3.__version__}


def worker(args: argparse.Namespace) -> None:
    import torch
    torch.set_num_threads(1)
    case = CASES[args.case]
    overrides = _overrides(args.dqnkit_set)
    if args.worker == "dqnkit":
        ev, extra = worker_dqnkit(case, args.seed, args.smoke, overrides)
    else:
        ev, extra = worker_sb3(case, args.seed, args.smoke)
    wall = time.perf_counter() - ev.t0
    print(json.dumps({"case": args.case, "library": args.worker, "label": label(args.worker, args.dqnkit_set),
                      "seed": args.seed, **extra, "train_s": round(wall - ev.eval_s, 2), "eval_s": round(ev.eval_s, 2),
                      "final": ev.evals[-1]["mean_return"], "evals": ev.evals}))


def _overrides(pairs: list[str] | None) -> dict:
    from dqnkit.presets.zoo import parse_overrides
    return parse_overrides(pairs or [])


def label(library: str, pairs: list[str] | None) -> str:
    return library if library == "sb3" or not pairs else f"dqnkit[{','.join(sorted(pairs))}]"


# ------------------------------------------------------------------ statistics and report
def summarize(values: list[float]) -> dict:
    from dqnkit.analysis.stats import bootstrap_ci, iqm

    lo, hi = bootstrap_ci(values)
    return {"n": len(values), "mean": sum(values) / len(values), "iqm": iqm(values), "ci": [lo, hi],
            "values": values}


def verdict(ours: dict, theirs: dict) -> str:
    """From two 95% bootstrap CIs of the mean: "worse" / "better" when they do not overlap, else "same"."""
    if ours["ci"][1] < theirs["ci"][0]:
        return "worse"
    if ours["ci"][0] > theirs["ci"][1]:
        return "better"
    return "same"


def case_report(runs: list[dict]) -> dict:
    """Per label: per-point and final summaries; verdicts of every dqnkit label against sb3."""
    by_label: dict[str, list[dict]] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    out: dict[str, Any] = {"labels": {}}
    for label, rs in sorted(by_label.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        points = [e["env_step"] for e in rs[0]["evals"][:-1]]
        per_point = []
        for i, step in enumerate(points):
            vals = [r["evals"][i]["mean_return"] for r in rs if len(r["evals"]) > i]
            per_point.append({"env_step": step, **summarize(vals)})
        out["labels"][label] = {
            "seeds": [r["seed"] for r in rs],
            "points": per_point,
            "final": summarize([r["final"] for r in rs]),
            "curve": summarize([sum(e["mean_return"] for e in r["evals"]) / len(r["evals"]) for r in rs]),
            "train_s": sum(r["train_s"] for r in rs) / len(rs),
        }
    sb = out["labels"].get("sb3")
    out["verdicts"] = {}
    if sb is not None:
        for label, s in out["labels"].items():
            if label != "sb3":
                out["verdicts"][label] = {"final": verdict(s["final"], sb["final"]),
                                          "curve": verdict(s["curve"], sb["curve"])}
    return out


def _cell(s: dict) -> str:
    return f"{s['mean']:.3g} / {s['iqm']:.3g} [{s['ci'][0]:.3g}, {s['ci'][1]:.3g}]"


def markdown(report: dict, meta: dict) -> str:
    lines = ["# Learning parity: dqnkit vs Stable-Baselines3 DQN, same hyperparameters", "",
             f"Command: `{meta['command']}`. Greedy return, cells are mean / IQM [95% bootstrap CI of the mean] "
             "over seeds. Verdict from the CIs: worse / better when they do not overlap, else same. `final` = the "
             "last evaluation, `curve` = the mean over all evaluation points (area under the learning curve).", "",
             "| case | env steps | seeds | dqnkit final | SB3 final | verdict (final) | dqnkit curve | SB3 curve | "
             "verdict (curve) | train s / run (dqnkit, SB3) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, rep in report.items():
        labels = rep["labels"]
        if "sb3" not in labels:
            continue
        sb = labels["sb3"]
        for label, s in labels.items():
            if label == "sb3":
                continue
            v = rep["verdicts"][label]
            steps = rep.get("env_steps", "")
            shown = name if label == "dqnkit" else f"{name} ({label})"
            lines.append(f"| {shown} | {steps} | {len(s['seeds'])} | {_cell(s['final'])} | {_cell(sb['final'])} | "
                         f"**{v['final']}** | {_cell(s['curve'])} | {_cell(sb['curve'])} | **{v['curve']}** | "
                         f"{s['train_s']:.0f}, {sb['train_s']:.0f} |")
    lines += ["", "## Per evaluation point (mean / IQM [95% CI])", ""]
    for name, rep in report.items():
        labels = rep["labels"]
        order = sorted(labels, key=lambda k: (k != "dqnkit", k != "sb3", k))
        lines += [f"### {name}", "", "| env step | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
        n = max(len(labels[k]["points"]) for k in order)
        for i in range(n):
            step = next(labels[k]["points"][i]["env_step"] for k in order if len(labels[k]["points"]) > i)
            cells = [_cell(labels[k]["points"][i]) if len(labels[k]["points"]) > i else "-" for k in order]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
        lines.append("| final | " + " | ".join(_cell(labels[k]["final"]) for k in order) + " |")
        lines.append("")
    lines += [f"Machine: {meta['machine'].get('platform')}, torch {meta['machine'].get('torch')}, "
              f"dqnkit at {meta['machine'].get('git_rev')}, {meta['machine'].get('time')}."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    colours = {"dqnkit": "tab:blue", "sb3": "tab:orange"}
    for ax, name in zip(axes.ravel(), names):
        for label, s in report[name]["labels"].items():
            x = [p["env_step"] for p in s["points"]]
            m = [p["mean"] for p in s["points"]]
            lo = [p["ci"][0] for p in s["points"]]
            hi = [p["ci"][1] for p in s["points"]]
            c = colours.get(label, None)
            ax.plot(x, m, label=f"{label} (n={len(s['seeds'])})", color=c)
            ax.fill_between(x, lo, hi, alpha=0.2, color=c)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("env steps", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    fig.suptitle("greedy return: mean and 95% bootstrap CI over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--libraries", nargs="+", default=["dqnkit", "sb3"], choices=["dqnkit", "sb3"])
    p.add_argument("--jobs", type=int, default=2, help="runs at once (learning results do not depend on it)")
    p.add_argument("--dqnkit-set", action="append", metavar="KEY=VALUE", help="override a dqnkit config field")
    p.add_argument("--update", action="store_true", help="merge into the existing parity.json instead of replacing it")
    p.add_argument("--resume", action="store_true",
                   help="skip the runs already recorded in parity_runs.jsonl (each finished run is appended there)")
    p.add_argument("--smoke", action="store_true", help=f"{SMOKE_STEPS} env steps per run: checks that it runs")
    p.add_argument("--worker", choices=["dqnkit", "sb3"], help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    script = Path(__file__).resolve()
    extra = [x for pair in (args.dqnkit_set or []) for x in ("--dqnkit-set", pair)]
    arg_lists = []
    for name in args.cases:
        for i, seed in enumerate(args.seeds):
            order = args.libraries if i % 2 == 0 else list(reversed(args.libraries))
            for lib in order:
                arg_lists.append(["--worker", lib, "--case", name, "--seed", str(seed)]
                                 + (extra if lib == "dqnkit" else []) + (["--smoke"] if args.smoke else []))
    out_dir = C.results_dir(args.smoke)
    log_path = out_dir / "parity_runs.jsonl"
    recorded = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()] \
        if args.resume and log_path.is_file() else []
    if not args.resume:
        log_path.write_text("")
    have = {(r["case"], r["library"], r["seed"], r["label"]) for r in recorded if "error" not in r}
    wanted_label = label("dqnkit", args.dqnkit_set)

    def key(a: list[str]) -> tuple:
        lib = a[1]
        return (a[3], lib, int(a[5]), "sb3" if lib == "sb3" else wanted_label)
    todo = [a for a in arg_lists if key(a) not in have]
    if args.resume:
        print(f"--resume: {len(arg_lists) - len(todo)} of {len(arg_lists)} runs already in {log_path.name}",
              file=sys.stderr)

    def save(record: dict) -> None:  # each finished run at once, so an interrupted benchmark loses nothing
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
    new = C.run_many(script, todo, jobs=args.jobs, on_result=save)
    wanted = {key(a) for a in arg_lists}
    runs = [r for r in recorded if "error" not in r and (r["case"], r["library"], r["seed"], r["label"]) in wanted]
    runs += new

    json_path = out_dir / "parity.json"
    new_keys = {(r["case"], r["label"], r["seed"]) for r in runs if "error" not in r}
    old = json.loads(json_path.read_text())["runs"] if args.update and json_path.is_file() else []
    kept = [r for r in old if (r["case"], r["label"], r["seed"]) not in new_keys]
    all_runs = kept + [r for r in runs if "error" not in r]
    report = {}
    for name in CASES:
        rs = [r for r in all_runs if r["case"] == name]
        if rs:
            report[name] = case_report(rs)
            report[name]["env_steps"] = SMOKE_STEPS if args.smoke else int(CASES[name]["hyper"]["n_timesteps"])
    meta = {"command": "python benchmarks/parity.py " + " ".join(sys.argv[1:]), "machine": C.machine_info()}
    C.write_json(json_path, {"benchmark": "parity", "smoke": args.smoke, "meta": meta, "cases": CASES,
                             "report": report, "runs": all_runs})
    (out_dir / "parity.md").write_text(markdown(report, meta))
    plot(report, out_dir / "parity.png")
    print(markdown(report, meta))
    C.exit_with_failures(runs)


if __name__ == "__main__":
    main()
