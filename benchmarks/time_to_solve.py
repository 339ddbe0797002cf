"""Time to solve: training seconds until the greedy policy is good, dqnkit's presets against Stable-Baselines3.

For each env, a threshold on the greedy mean return (CartPole-v1 475, Acrobot-v1 -100, LunarLander-v3 200) and
contenders: dqnkit's presets for that env (``CartPole-v1-fast`` and ``CartPole-v1`` for CartPole) and SB3's DQN
with the rl-baselines3-zoo config (benchmarks/parity.py's cases, translated by its ``translate``). Per seed,
each contender trains in a fresh subprocess with one torch thread; every ``EVERY[env]`` env steps training
pauses for a greedy evaluation (``EPISODES`` episodes on a separate env, reset seeds 10_000, 10_001, ...), and
the run stops at the first evaluation at or above the threshold, or at its budget.

Reported per contender: seeds solved, median and range over seeds of the training seconds to solve
(evaluation time excluded, since it is not training; it is reported beside), env steps to solve, and the
process wall. dqnkit and SB3 alternate seed by seed in one invocation, one run at a time, so the figures
are side by side on one machine.

    python benchmarks/time_to_solve.py                          # all envs, seeds 0-9 (hours on 2 cores)
    python benchmarks/time_to_solve.py --envs CartPole-v1 --seeds 0 1 2 3 4 5 6 7 8 9
    python benchmarks/time_to_solve.py --envs Acrobot-v1 --update   # add Acrobot's rows to the saved results
    python benchmarks/time_to_solve.py --smoke                  # tiny budgets: checks that it runs

Writes benchmarks/results/time_to_solve.{md,json} (smoke: benchmarks/results/smoke/).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import parity as P  # noqa: E402

THRESHOLD = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "LunarLander-v3": 200.0}
PRESETS = {"CartPole-v1": ["CartPole-v1-fast", "CartPole-v1"], "Acrobot-v1": ["Acrobot-v1"],
           "LunarLander-v3": ["LunarLander-v3"]}
EVERY = {"CartPole-v1": 1000, "Acrobot-v1": 2500, "LunarLander-v3": 5000}
EPISODES, EVAL_SEED = 20, 10_000
SMOKE_STEPS, SMOKE_EVERY, SMOKE_EPISODES = 600, 300, 2


class Clock:
    """Training time with evaluations cut out; stops the run at the first evaluation >= threshold."""

    def __init__(self, env_id: str, threshold: float, episodes: int):
        import gymnasium as gym
        self.make_env = lambda: gym.make(env_id)
        self.threshold, self.episodes = threshold, episodes
        self.t0, self.eval_s = time.perf_counter(), 0.0
        self.solved_at: tuple[float, int] | None = None
        self.evals: list[tuple[int, float]] = []

    def check(self, env_step: int, policy) -> bool:
        from dqnkit.envs.rollout import run_episodes
        t = time.perf_counter()
        train_s = t - self.t0 - self.eval_s  # training time so far: wall minus earlier evaluations
        ret = run_episodes(policy, self.make_env, self.episodes, seed=EVAL_SEED)["mean_return"]
        self.eval_s += time.perf_counter() - t
        self.evals.append((int(env_step), float(ret)))
        if ret >= self.threshold and self.solved_at is None:
            self.solved_at = (train_s, int(env_step))
        return self.solved_at is not None

    def record(self, **extra) -> dict:
        solved = self.solved_at is not None
        return {**extra, "solved": solved, "train_s_to_solve": round(self.solved_at[0], 2) if solved else None,
                "env_steps_to_solve": self.solved_at[1] if solved else None, "eval_s": round(self.eval_s, 2),
                "evals": self.evals}


def worker_dqnkit(env_id: str, preset: str, seed: int, smoke: bool) -> dict:
    from dqnkit import DQN
    overrides = dict(eval_freq=0, checkpoint_freq=0, tensorboard=False, torch_threads=1)
    if smoke:
        overrides.update(total_timesteps=SMOKE_STEPS, learning_starts=100)
    model = DQN.from_preset(preset, seed=seed, **overrides)
    steps = int(model.config.total_timesteps)
    clock = Clock(env_id, THRESHOLD[env_id], SMOKE_EPISODES if smoke else EPISODES)
    policy = lambda obs: model.q_values(obs).argmax(axis=1)  # noqa: E731
    every = SMOKE_EVERY if smoke else EVERY[env_id]
    while model.num_timesteps < steps:
        model.learn(min(every, steps - model.num_timesteps))
        if clock.check(model.num_timesteps, policy):
            break
    model.close()
    return clock.record(env=env_id, contender=f"dqnkit {preset}", seed=seed, budget=steps)


def worker_sb3(env_id: str, seed: int, smoke: bool) -> dict:
    import numpy as np
    import stable_baselines3
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3.common.callbacks import BaseCallback

    case = P.CASES[env_id]
    _, kwargs, steps = P.translate(case, smoke)
    make = P.make_case_env(case, one_hot=False)
    model = SB3DQN("MlpPolicy", make(), seed=seed, device="cpu", verbose=0, **kwargs)
    clock = Clock(env_id, THRESHOLD[env_id], SMOKE_EPISODES if smoke else EPISODES)
    policy = lambda obs: np.asarray(model.predict(obs, deterministic=True)[0]).reshape(-1)  # noqa: E731
    every = SMOKE_EVERY if smoke else EVERY[env_id]

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % every == 0:
                return not clock.check(self.num_timesteps, policy)
            return True

    model.learn(total_timesteps=steps, callback=Check())
    return clock.record(env=env_id, contender=f"SB3 {stable_baselines3.__version__} rl-zoo", seed=seed,
                        budget=steps)


def summarize(results: list[dict]) -> str:
    rows = []
    for env_id in THRESHOLD:
        mine = [r for r in results if r.get("env") == env_id]
        for contender in dict.fromkeys(r["contender"] for r in mine):
            runs = [r for r in mine if r["contender"] == contender]
            solved = [r for r in runs if r["solved"]]
            secs = [r["train_s_to_solve"] for r in solved]
            steps = [r["env_steps_to_solve"] for r in solved]
            rows.append([env_id, f"≥ {THRESHOLD[env_id]:g}", contender, f"{len(solved)}/{len(runs)}",
                         f"{statistics.median(secs):.1f}" if secs else "-",
                         f"{min(secs):.1f}–{max(secs):.1f}" if secs else "-",
                         f"{statistics.median(steps):,.0f}" if steps else "-",
                         f"{statistics.mean(r['eval_s'] for r in runs):.1f}",
                         f"{statistics.mean(r['process_wall_s'] for r in runs):.1f}",
                         ", ".join(sorted({r.get("cpu", "not recorded") for r in runs}))])
    return C.markdown_table(["env", "greedy mean", "contender", "solved", "median train s to solve",
                             "range (solved seeds)", "median env steps", "eval s / run (excluded)",
                             "process wall s / run", "CPU"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--envs", nargs="+", default=list(THRESHOLD), choices=list(THRESHOLD))
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--no-sb3", action="store_true", help="dqnkit's presets only")
    p.add_argument("--smoke", action="store_true", help=f"{SMOKE_STEPS} env steps: checks that it runs")
    p.add_argument("--update", action="store_true",
                   help="keep the saved runs of other envs, contenders and seeds, replacing those run now")
    p.add_argument("--worker", nargs=2, metavar=("ENV", "CONTENDER"), help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        import torch
        torch.set_num_threads(1)
        env_id, who = args.worker
        rec = worker_sb3(env_id, args.seed, args.smoke) if who == "sb3" else \
            worker_dqnkit(env_id, who, args.seed, args.smoke)
        print(json.dumps({**rec, "cpu": C.cpu_name()}))
        return
    if args.smoke:
        args.seeds = args.seeds[:1]
    smoke = ["--smoke"] if args.smoke else []
    jobs = []
    for env_id in args.envs:
        for i, seed in enumerate(args.seeds):
            mine = [[env_id, preset] for preset in PRESETS[env_id]] + ([] if args.no_sb3 else [[env_id, "sb3"]])
            for who in (mine if i % 2 == 0 else mine[::-1]):  # who goes first flips from seed to seed
                jobs.append(["--worker", *who, "--seed", str(seed), *smoke])
    results = C.run_many(Path(__file__).resolve(), jobs, jobs=1)
    out = C.results_dir(args.smoke)
    if args.update and (out / "time_to_solve.json").exists():
        key = lambda r: (r.get("env"), r.get("contender"), r.get("seed"))  # noqa: E731
        fresh = {key(r) for r in results if "error" not in r}
        saved = json.loads((out / "time_to_solve.json").read_text())["runs"]
        results = [r for r in saved if "error" not in r and key(r) not in fresh] + results
    ok = [r for r in results if "error" not in r]
    table = summarize(ok)
    text = (f"# Time to solve\n\n{table}\n\nTraining seconds until the first greedy evaluation ({EPISODES} episodes, "
            f"reset seeds from {EVAL_SEED}) at or above the threshold, evaluation time excluded; evaluations every "
            f"{', '.join(f'{k} {v:,}' for k, v in EVERY.items())} env steps. One torch thread, one run at a time.\n")
    (out / "time_to_solve.md").write_text(text)
    C.write_json(out / "time_to_solve.json", {"machine": C.machine_info(), "args": vars(args), "runs": results})
    print(text)
    C.exit_with_failures(results)


if __name__ == "__main__":
    main()
