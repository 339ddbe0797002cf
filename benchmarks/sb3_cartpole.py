"""dqnkit vs Stable-Baselines3 DQN on CartPole-v1 with the rl-baselines3-zoo config: speed and sample efficiency.

Stable-Baselines3 is not a dependency of dqnkit; install it for this benchmark only, without replacing torch:

    pip install --dry-run "stable-baselines3>=2.3"   # check that it keeps the installed torch
    pip install "stable-baselines3>=2.3"             # if it wants another torch: add --no-deps, then
                                                     # pip install cloudpickle pandas matplotlib

What it measures, per framework, seed and torch thread count (each run in a fresh subprocess, dqnkit and SB3
alternating, the one that goes first flipping from seed to seed):
  * train wall time of the 50k-step run (evaluation time excluded) and total wall (evaluation included);
    both start after the model is built (construction time is not counted),
  * env steps per second of training (env steps / train wall),
  * train time (and env step) to the first greedy evaluation with mean return >= 475,
  * the final greedy evaluation mean.
Evaluation is the same function for both: every 5,000 env steps, 10 greedy episodes on a separate
CartPole-v1 env with reset seeds 10_000..10_009, with the training clock paused.
  * dqnkit trains in 5,000-step chunks (``model.learn(5000)`` continues from the current step; its epsilon
    schedule and cadences are in absolute env steps, so chunking is exact). Its own periodic evaluation is
    switched off (eval_freq=0, evaluate_and_log patched to a no-op), so it costs nothing inside learn().
  * SB3 gets ``learn(total_timesteps=50000)`` once (chunked learn() would restart its exploration schedule,
    which runs on each call's progress_remaining); a BaseCallback evaluates every 5,000 steps.
  * Both get a final evaluation after learn() returns. SB3 collects whole rollouts of train_freq=256 steps, so
    it stops at 50,176 env steps with 193 training rounds; dqnkit stops at 50,000 with 192.

Config (rl-zoo dqn.yml CartPole-v1): n_timesteps 5e4, lr 2.3e-3, batch 64, buffer 100000, learning_starts 1000,
gamma 0.99, target_update_interval 10, train_freq 256, gradient_steps 128, exploration_fraction 0.16,
exploration_final_eps 0.04, net_arch [256, 256]; SB3 defaults otherwise (Adam, Huber loss, max_grad_norm 10),
which are dqnkit's defaults too (the worker checks the dqnkit config against this list).

Full run (about 1 + 2.5 min per seed and thread count on a 2-core machine; keep the machine otherwise idle):

    python benchmarks/sb3_cartpole.py --seeds 0 1 2 --threads 1 2

Smoke test (600 env steps, checks that everything runs; timings meaningless):

    python benchmarks/sb3_cartpole.py --smoke

Writes benchmarks/results/sb3_cartpole.json (smoke: benchmarks/results/smoke/).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ZOO = dict(total_timesteps=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
           gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
           exploration_final_eps=0.04, net_arch=[256, 256])
SMOKE = dict(total_timesteps=600, learning_starts=200)
EVAL_EVERY, EVAL_EPISODES, EVAL_SEED, SOLVED = 5000, 10, 10_000, 475.0
SMOKE_EVAL_EVERY, SMOKE_EVAL_EPISODES = 300, 3
DQNKIT_DEFAULTS = dict(loss="huber", optimizer="adam", adam_eps=1e-8, max_grad_norm=10.0, tau=1.0,
                       exploration_initial_eps=1.0, exploration_schedule="linear", double_q=False, dueling=False,
                       prioritized_replay=False, n_step=1, noisy=False, distributional=False, num_envs=1,
                       learning_rate_schedule="constant")


def greedy_eval(act: Callable[[Any], int], episodes: int) -> list[float]:
    """Greedy returns of ``episodes`` CartPole-v1 episodes with reset seeds EVAL_SEED, EVAL_SEED+1, ..."""
    import gymnasium as gym
    env = gym.make("CartPole-v1")
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(int(act(obs)))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return returns


class Clock:
    """Wall clock of a training run whose evaluation time is kept apart."""

    def __init__(self, episodes: int):
        self.episodes = episodes
        self.evals: list[dict] = []
        self.eval_s = 0.0
        self.t0 = time.perf_counter()

    def train_s(self) -> float:
        return time.perf_counter() - self.t0 - self.eval_s

    def evaluate(self, env_step: int, act: Callable[[Any], int]) -> None:
        train_s = self.train_s()
        t = time.perf_counter()
        returns = greedy_eval(act, self.episodes)
        self.eval_s += time.perf_counter() - t
        self.evals.append({"env_step": int(env_step), "train_s": round(train_s, 3),
                           "mean_return": sum(returns) / len(returns)})


def worker_dqnkit(cfg: dict, seed: int, threads: int, every: int, episodes: int) -> tuple[Clock, dict]:
    from dqnkit import DQN
    # the preset holds the zoo values themselves, plus dqnkit's tuning, which zoo_overrides takes off
    overrides = {**C.zoo_overrides("CartPole-v1"), **{k: v for k, v in cfg.items() if k in SMOKE}}
    model = DQN.from_preset("CartPole-v1", seed=seed, torch_threads=threads, eval_freq=0, checkpoint_freq=0,
                            tensorboard=False, **overrides)
    got = model.config.to_dict()
    want = {**{k: v for k, v in cfg.items() if k != "net_arch"}, **DQNKIT_DEFAULTS}
    wrong = {k: (got[k], v) for k, v in want.items() if got[k] != v}
    if model.config.net_arch != cfg["net_arch"]:
        wrong["net_arch"] = (model.config.net_arch, cfg["net_arch"])
    if wrong:
        raise SystemExit(f"dqnkit preset differs from the benchmark config (got, want): {wrong}")
    model.trainer.evaluate_and_log = lambda: None  # no internal evaluation inside learn()
    act = model.predict
    clock = Clock(episodes)
    while model.num_timesteps < cfg["total_timesteps"]:
        model.learn(min(every, cfg["total_timesteps"] - model.num_timesteps))
        if model.num_timesteps < cfg["total_timesteps"]:
            clock.evaluate(model.num_timesteps, act)
    clock.evaluate(model.num_timesteps, act)
    return clock, {"env_steps": model.num_timesteps, "updates": model.trainer.agent.updates}


def worker_sb3(cfg: dict, seed: int, threads: int, every: int, episodes: int) -> tuple[Clock, dict]:
    import gymnasium as gym
    import stable_baselines3
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3.common.callbacks import BaseCallback

    model = SB3DQN("MlpPolicy", gym.make("CartPole-v1"), learning_rate=cfg["learning_rate"],
                   buffer_size=cfg["buffer_size"], learning_starts=cfg["learning_starts"],
                   batch_size=cfg["batch_size"], gamma=cfg["gamma"], train_freq=cfg["train_freq"],
                   gradient_steps=cfg["gradient_steps"], target_update_interval=cfg["target_update_interval"],
                   exploration_fraction=cfg["exploration_fraction"],
                   exploration_final_eps=cfg["exploration_final_eps"],
                   policy_kwargs=dict(net_arch=list(cfg["net_arch"])), seed=seed, device="cpu", verbose=0)
    act = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
    total = cfg["total_timesteps"]

    class PausedEval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % every == 0 and self.num_timesteps < total:
                clock.evaluate(self.num_timesteps, act)
            return True

    clock = Clock(episodes)
    model.learn(total_timesteps=total, callback=PausedEval())
    clock.evaluate(model.num_timesteps, act)
    return clock, {"env_steps": model.num_timesteps, "updates": model._n_updates, "sb3": stable_baselines3.__version__}


def worker(args: argparse.Namespace) -> None:
    import torch
    threads = args.threads[0]
    torch.set_num_threads(threads)
    cfg = {**ZOO, **(SMOKE if args.smoke else {})}
    every = SMOKE_EVAL_EVERY if args.smoke else EVAL_EVERY
    episodes = SMOKE_EVAL_EPISODES if args.smoke else EVAL_EPISODES
    run = worker_dqnkit if args.worker == "dqnkit" else worker_sb3
    clock, extra = run(cfg, args.seed, threads, every, episodes)
    wall = time.perf_counter() - clock.t0
    train_s = wall - clock.eval_s
    solved = next((e for e in clock.evals if e["mean_return"] >= SOLVED), None)
    print(json.dumps({"framework": args.worker, "seed": args.seed, "threads": threads,
                      "torch_threads_seen": torch.get_num_threads(), **extra,
                      "train_s": round(train_s, 3), "total_wall_s": round(wall, 3), "eval_s": round(clock.eval_s, 3),
                      "env_steps_per_s": round(extra["env_steps"] / train_s, 1),
                      "train_s_to_solved": solved["train_s"] if solved else None,
                      "env_step_solved": solved["env_step"] if solved else None,
                      "final_eval_mean": clock.evals[-1]["mean_return"], "evals": clock.evals}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (default: 0)")
    p.add_argument("--threads", type=int, nargs="+", default=[1],
                   help="torch intra-op thread counts to compare, e.g. 1 2 (default: 1)")
    p.add_argument("--frameworks", nargs="+", default=["dqnkit", "sb3"], choices=["dqnkit", "sb3"])
    p.add_argument("--smoke", action="store_true", help="600 env steps, evaluation every 300: checks it runs")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default: benchmarks/results/sb3_cartpole.json)")
    p.add_argument("--worker", choices=["dqnkit", "sb3"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    script = Path(__file__).resolve()
    runs: list[dict] = []
    for i, seed in enumerate(args.seeds):
        for threads in args.threads:
            order = args.frameworks if i % 2 == 0 else list(reversed(args.frameworks))
            for fw in order:
                wargs = ["--worker", fw, "--seed", str(seed), "--threads", str(threads)] + (["--smoke"] if args.smoke else [])
                runs.extend(C.run_many(script, [wargs], jobs=1, threads=threads))
    ok = [r for r in runs if "error" not in r]

    header = ["framework", "seed", "threads", "train wall s", "env-steps/s", "updates",
              "train s to eval>=475", "env step", "final eval mean"]
    rows = [[r["framework"], r["seed"], r["threads"], r["train_s"], r["env_steps_per_s"], r["updates"],
             r["train_s_to_solved"] if r["train_s_to_solved"] is not None else "never",
             r["env_step_solved"] or "-", r["final_eval_mean"]] for r in ok]
    print(C.markdown_table(header, rows))

    ratios = []
    for threads in args.threads:
        pairs = []
        for seed in args.seeds:
            by = {r["framework"]: r for r in ok if r["seed"] == seed and r["threads"] == threads}
            if "dqnkit" in by and "sb3" in by:
                pairs.append((by["sb3"]["train_s"] / by["dqnkit"]["train_s"],
                              by["sb3"]["env_steps_per_s"] / by["dqnkit"]["env_steps_per_s"]))
        if pairs:
            wall, sps = C.mean_std([a for a, _ in pairs]), C.mean_std([b for _, b in pairs])
            ratios.append({"threads": threads, "seeds": len(pairs), "sb3_over_dqnkit_train_wall": wall[0],
                           "sb3_over_dqnkit_train_wall_std": wall[1], "sb3_over_dqnkit_env_steps_per_s": sps[0],
                           "sb3_over_dqnkit_env_steps_per_s_std": sps[1]})
            print(f"\nthreads={threads}, {len(pairs)} seed(s): SB3/dqnkit train wall = {wall[0]:.2f} "
                  f"(± {wall[1]:.2f}), SB3/dqnkit env-steps/s = {sps[0]:.2f} (± {sps[1]:.2f})")
    for r in runs:
        if "error" in r:
            print(f"FAILED: {' '.join(r['cmd'][2:])}: {r['error']}", file=sys.stderr)

    out = args.out or C.results_dir(args.smoke) / "sb3_cartpole.json"
    C.write_json(out, {"benchmark": "sb3_cartpole", "smoke": args.smoke, "config": {**ZOO, **(SMOKE if args.smoke else {})},
                       "eval": {"every": SMOKE_EVAL_EVERY if args.smoke else EVAL_EVERY,
                                "episodes": SMOKE_EVAL_EPISODES if args.smoke else EVAL_EPISODES,
                                "seeds_from": EVAL_SEED, "solved_at": SOLVED},
                       "machine": C.machine_info(), "runs": runs, "ratios": ratios})
    if len(ok) < len(runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
