"""Ape-X throughput on this machine: aggregate env steps/s with 1 and 2 actors, learner updates/s, weight lag.

Per (env, actors) one ``ApexTrainer`` (dqnkit/distributed/learner.py) trains without a run folder, periodic
evaluation or checkpoints, on one local Ray started here (``num_cpus`` = this machine's cores). The clock starts
at the first chunk inserted (actor start-up is not counted) and stops at the env-step target:

  aggregate env steps/s   env steps inserted into the replay per second of wall time
  per-actor env steps/s   each actor's env steps per second of its own acting time (chunk timings)
  learner updates/s       gradient updates per second of wall time (train_freq counts inserted transitions)
  weight lag              learner updates between the weights that produced a chunk and the learner's at insert,
                          averaged over the chunks

CartPole-v1 uses the CartPole-v1 preset; ALE/Pong-v5 (when ale-py and its ROMs load) the atari-nature preset with
the Atari preprocessing and a smaller replay. The projection for N actors in the Markdown is arithmetic on the
measured rates, clearly not a measurement: min(N x per-actor rate, the learner's intake at its replay ratio,
updates/s x train_freq / gradient_steps).

    python benchmarks/apex.py                        # CartPole-v1 (and Pong), 1 and 2 actors, 20k env steps
    python benchmarks/apex.py --envs ALE/Pong-v5 --steps 2000 --name apex_pong
    python benchmarks/apex.py --smoke                # 600 env steps, CartPole-v1 only -> results/smoke/

Writes benchmarks/results/apex.md and .json (``--name apex_pong`` for the Pong run, so it keeps CartPole's).
Timings depend on what else the machine runs: use an idle machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

sys.path.insert(0, str(C.REPO_DIR))  # this checkout's dqnkit, here and (through PYTHONPATH) in the Ray workers
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(C.REPO_DIR), os.environ.get("PYTHONPATH")) if p)

SMOKE_STEPS = 600


def pong_available() -> bool:
    try:
        import ale_py  # noqa: F401
        import gymnasium as gym
        gym.register_envs(ale_py)
        gym.make("ALE/Pong-v5").close()
        return True
    except Exception:  # noqa: BLE001 - no ROMs, no ale-py: skip Pong
        return False


def config_for(env: str, actors: int, steps: int):
    from dqnkit.presets import load_preset
    from dqnkit.presets.zoo import config_from_zoo

    values = dict(load_preset("atari-nature" if env.startswith("ALE/") else env))
    values.update(env_id=env, distributed="ray", actors=actors, total_timesteps=steps, eval_freq=0,
                  checkpoint_freq=0, tensorboard=False, eval_episodes=1, seed=0, torch_threads=1)
    values["learning_starts"] = min(int(values.get("learning_starts", 1000)), steps // 4)
    if env.startswith("ALE/"):
        values["buffer_size"] = 20_000
    return config_from_zoo(values)


def measure(env: str, actors: int, steps: int) -> dict:
    from dqnkit.distributed.learner import ApexTrainer

    cfg = config_for(env, actors, steps)
    trainer = ApexTrainer(cfg, None, verbosity="quiet")
    marks: dict = {}
    lags: list[float] = []

    def on_step(view):
        if "t0" not in marks:
            marks.update(t0=time.perf_counter(), s0=trainer.env_step, u0=trainer.agent.updates)
        lags.append(sum(trainer.fleet.lag) / len(trainer.fleet.lag))
        return True

    try:
        trainer.learn(callback=SimpleNamespace(on_step=on_step))
        dt = time.perf_counter() - marks["t0"]
        fleet = trainer.fleet
        per_actor = [s / t if t > 0 else 0.0 for s, t in zip(fleet.env_steps, fleet.seconds)]
        return {"env": env, "actors": actors, "env_steps": trainer.env_step, "seconds": round(dt, 2),
                "env_steps_per_s": (trainer.env_step - marks["s0"]) / dt,
                "updates_per_s": (trainer.agent.updates - marks["u0"]) / dt,
                "per_actor_env_steps_per_s": per_actor, "weight_lag_updates": sum(lags) / max(1, len(lags)),
                "train_freq": cfg.train_freq, "gradient_steps": cfg.gradient_steps,
                "chunk_steps": cfg.apex_chunk_steps, "num_envs": cfg.num_envs}
    finally:
        trainer.close()


def projection(row: dict, n: int) -> float:
    """Env steps/s for ``n`` actors from the measured rates (arithmetic, not a measurement)."""
    per_actor = sum(row["per_actor_env_steps_per_s"]) / len(row["per_actor_env_steps_per_s"])
    per_update = row["train_freq"] / max(1, row["gradient_steps"])  # env steps consumed per update
    learner_cap = row["updates_per_s"] * per_update if row["updates_per_s"] > 0 else float("inf")
    return min(n * per_actor, learner_cap)


def write_markdown(path: Path, rows: list[dict], info: dict, steps: int) -> None:
    table = C.markdown_table(
        ["env", "actors", "aggregate env steps/s", "per-actor env steps/s", "learner updates/s", "weight lag (updates)"],
        [[r["env"], r["actors"], round(r["env_steps_per_s"], 1),
          ", ".join(f"{x:.0f}" for x in r["per_actor_env_steps_per_s"]), round(r["updates_per_s"], 1),
          round(r["weight_lag_updates"], 1)] for r in rows])
    proj_rows = []
    for r in rows:
        if r["actors"] == max(x["actors"] for x in rows if x["env"] == r["env"]):
            proj_rows.append([r["env"], *(round(projection(r, n), 0) for n in (8, 32, 128))])
    text = (f"# Ape-X throughput (benchmarks/apex.py)\n\n{steps} env steps per case on {info['cpu_count']} cores, "
            f"{info['time']}, dqnkit {info['dqnkit']} ({info.get('git_rev')}), torch {info['torch']}.\n\n"
            f"{table}\n\n## Projection (not measured)\n\nArithmetic on the rates above: min(N x mean per-actor "
            "rate, learner updates/s x train_freq / gradient_steps). It assumes one core per actor, a learner that "
            "keeps its measured rate (a GPU learner is faster) and no network cost.\n\n"
            + C.markdown_table(["env", "N=8", "N=32", "N=128"], proj_rows) + "\n")
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000, help="env steps per case")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--envs", nargs="+", default=None, help="default CartPole-v1, plus ALE/Pong-v5 when available")
    p.add_argument("--smoke", action="store_true", help=f"{SMOKE_STEPS} env steps, CartPole-v1 only")
    p.add_argument("--name", default="apex", help="results stem: writes results/NAME.md and .json "
                                                   "(the Pong figures are apex_pong)")
    args = p.parse_args()
    steps = SMOKE_STEPS if args.smoke else args.steps
    envs = args.envs or (["CartPole-v1"] if args.smoke else
                         ["CartPole-v1"] + (["ALE/Pong-v5"] if pong_available() else []))
    import ray
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows = []
    try:
        for env in envs:
            for n in args.actors:
                row = measure(env, n, steps)
                print(f"{env} actors={n}: {row['env_steps_per_s']:.0f} env steps/s, "
                      f"{row['updates_per_s']:.0f} updates/s, lag {row['weight_lag_updates']:.1f}", file=sys.stderr)
                rows.append(row)
    finally:
        ray.shutdown()
    out = C.results_dir(args.smoke)
    info = C.machine_info()
    C.write_json(out / f"{args.name}.json", {"machine": info, "steps": steps, "rows": rows,
                                     "projection": {r["env"]: {n: projection(r, n) for n in (8, 32, 128)}
                                                    for r in rows}})
    write_markdown(out / f"{args.name}.md", rows, info, steps)


if __name__ == "__main__":
    main()
