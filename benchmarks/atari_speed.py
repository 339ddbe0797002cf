"""Atari training speed on CPU, with a profile of where one env step's time goes.

One worker process per (code, repeat) trains ``DQN.from_preset(--preset, env_id=--env)`` with a small replay
(``--buffer``), no checkpoints and no periodic evaluation. It first fills ``--learning-starts`` env steps
(random actions, no updates; not timed), then times ``--steps`` more env steps of ordinary training (an update
every ``train_freq`` steps, 4 in atari-nature), with the final greedy evaluation's time taken out. Timers
around the trainer's own calls split that time:

  env          ``envs.step``: the emulator and the Atari preprocessing (frame skip, max-pool, resize, stack)
  acting       ``agent.act``: the acting forward and epsilon-greedy
  replay add   ``buffer.add``
  sampling     ``buffer.sample``: the frame-stack gathers of the batches
  target       ``agent.round_targets``: the target network's forward and the TD targets
  update       ``agent.update``: the online forward, the backward, the gradient clip and Adam's step
  other        the rest of the loop (schedules, logging, target sync)

``--compare-with DIR`` also runs the workers with dqnkit imported from DIR (a git worktree of another commit,
``git worktree add DIR <commit>``), one process at a time and alternating, so "before" and "after" come from
one invocation on one machine state.

    python benchmarks/atari_speed.py                                   # Pong, 4,000 timed env steps, ~1 min
    python benchmarks/atari_speed.py --compare-with /tmp/before --repeats 2

Needs ``pip install -e ".[atari]"``. Writes benchmarks/results/atari_speed.{md,json}. Run it on an otherwise
idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PARTS = ("env", "acting", "replay add", "sampling", "target", "update")


def timed(fn, totals: dict, key: str):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t
    return wrapper


def worker(args: argparse.Namespace) -> None:
    import dqnkit
    from dqnkit import DQN
    overrides = {"env_id": args.env, "learning_starts": args.learning_starts, "buffer_size": args.buffer,
                 "total_timesteps": args.learning_starts + args.steps, "eval_freq": 0, "eval_episodes": 1,
                 "checkpoint_freq": 0, "tensorboard": False, "exploration_fraction": 0.001,
                 "torch_threads": args.threads}
    model = DQN.from_preset(args.preset, seed=args.seed, verbose=0, **overrides)
    trainer = model.trainer
    totals = dict.fromkeys((*PARTS, "evaluation"), 0.0)
    trainer.evaluate_and_log = timed(trainer.evaluate_and_log, totals, "evaluation")
    model.learn(args.learning_starts)  # the replay fill: random actions, no updates
    for key in totals:
        totals[key] = 0.0
    trainer.envs.step = timed(trainer.envs.step, totals, "env")
    trainer.agent.act = timed(trainer.agent.act, totals, "acting")
    trainer.buffer.add = timed(trainer.buffer.add, totals, "replay add")
    trainer.buffer.sample = timed(trainer.buffer.sample, totals, "sampling")
    trainer.agent.round_targets = timed(trainer.agent.round_targets, totals, "target")
    trainer.agent.update = timed(trainer.agent.update, totals, "update")
    updates0, t0 = trainer.agent.updates, time.perf_counter()
    model.learn(args.steps)
    train_s = time.perf_counter() - t0 - totals["evaluation"]
    # the final evaluation's own env steps and acting forwards ran inside the timers too
    parts = {k: totals[k] for k in PARTS}
    print(json.dumps({"code": args.code, "env_steps": args.steps, "updates": trainer.agent.updates - updates0,
                      "train_s": round(train_s, 3), "eval_s": round(totals["evaluation"], 3),
                      "sps": args.steps / train_s, "parts_s": parts, "torch_threads": args.threads,
                      "dqnkit": str(Path(dqnkit.__file__).parent)}))


def short_commit(directory: str) -> str:
    proc = subprocess.run(["git", "-C", directory, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def run(args: argparse.Namespace, code: str, pythonpath: str | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", code, "--env", args.env, "--preset", args.preset,
           "--steps", str(args.steps), "--learning-starts", str(args.learning_starts), "--buffer", str(args.buffer),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    env = C.child_env(args.threads if args.threads > 0 else os.cpu_count() or 1)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(C.REPO_DIR))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"worker {code} failed ({proc.returncode}):\n" + "\n".join((proc.stderr or "").splitlines()[-15:]))
    rec = json.loads(lines[-1])
    print(f"{code}: {rec['sps']:.1f} env steps/s", flush=True)
    return rec


def summarize(runs: list[dict]) -> str:
    """One row per code: env steps/s over all its runs, and milliseconds per env step by part."""
    rows = []
    for code in dict.fromkeys(r["code"] for r in runs):
        mine = [r for r in runs if r["code"] == code]
        steps = sum(r["env_steps"] for r in mine)
        train = sum(r["train_s"] for r in mine)
        parts = {k: sum(r["parts_s"][k] for r in mine) for k in PARTS}
        other = train - sum(parts.values())
        ms = lambda s: f"{s / steps * 1e3:.2f}"  # noqa: E731
        rows.append([code, len(mine), f"{steps / train:.1f}", *[ms(parts[k]) for k in PARTS], ms(other),
                     ms(train)])
    return C.markdown_table(["code", "runs", "env steps/s", *[f"{k} ms" for k in PARTS], "other ms",
                             "total ms per env step"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--env", default="ALE/Pong-v5")
    ap.add_argument("--preset", default="atari-nature")
    ap.add_argument("--steps", type=int, default=4000, help="timed env steps after the replay fill (default 4000)")
    ap.add_argument("--learning-starts", type=int, default=1000)
    ap.add_argument("--buffer", type=int, default=10_000, help="replay capacity (default 10,000)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: the preset's, one per core)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--compare-with", metavar="DIR", help="also run dqnkit from DIR (another commit's worktree)")
    ap.add_argument("--worker", metavar="CODE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.code = args.worker
        worker(args)
        return
    codes = [("this tree", None)]
    if args.compare_with:
        codes.insert(0, (f"{Path(args.compare_with).name} ({short_commit(args.compare_with)})",
                         str(Path(args.compare_with).resolve())))
    runs = [run(args, code, path) for _ in range(args.repeats) for code, path in codes]
    table = summarize(runs)
    text = (f"# Atari training speed\n\n`python benchmarks/atari_speed.py {' '.join(sys.argv[1:])}`".rstrip()
            + f"\n\n{args.preset} on {args.env}: {args.steps} env steps timed after a {args.learning_starts}-step "
            "replay fill, the final evaluation taken out; milliseconds per env step by part "
            "(see the script's docstring).\n\n" + table + "\n")
    out = C.results_dir(False)
    C.write_json(out / "atari_speed.json", {"machine": C.machine_info(), "args": vars(args), "runs": runs})
    (out / "atari_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
