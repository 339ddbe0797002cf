"""Training speed of the Rainbow-family options against plain DQN, with the hand-derived fast paths on and off.

Per (env, variant, mode) one fresh worker process trains ``DQN.from_preset(env, seed=0, torch_threads=1,
total_timesteps=--steps, **variant)`` without a run folder, checkpoints or periodic evaluation, and reports env
steps per second of ``learn()`` with the final greedy evaluation's time taken out. The workers run one at a time
(never two processes at once), and the two modes of a variant run back to back, so "before" and "after" come
from one invocation on one machine state:

  fast      the defaults: ``fast_path=true`` (hand-derived forward/backward of networks/mlp_fastpath.py and
            networks/head_fastpath.py) and, for the ``+round`` variants, ``per_round_sampling=true``
  autograd  ``fast_path=false`` and ``per_round_sampling=false``: every update through autograd, PER batches
            drawn one at a time. Noise resets are batched in both modes (that change has no switch).

Variants are benchmarks/variants.py's (config keys as in dqnkit/config.py), plus ``per+round`` and
``rainbow+round`` (the same with ``per_round_sampling=true``). Ratios are to plain DQN in the same mode, and
``speed-up`` is fast over autograd for the variant.

    python benchmarks/rainbow_speed.py                       # CartPole-v1 and LunarLander-v3, 20k env steps
    python benchmarks/rainbow_speed.py --envs CartPole-v1 --steps 50000
    python benchmarks/rainbow_speed.py --smoke               # 600 env steps, CartPole-v1, dqn and rainbow(+round)

Writes benchmarks/results/rainbow_speed.md and .json (smoke: benchmarks/results/smoke/). Timings depend on
what else the machine runs: run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from variants import VARIANTS, variant_config  # noqa: E402

ROUND = {"per+round": "per", "rainbow+round": "rainbow"}  # variant -> the variant it adds per_round_sampling to
ALL_VARIANTS = list(VARIANTS) + list(ROUND)
MODES = {"fast": {"fast_path": True}, "autograd": {"fast_path": False, "per_round_sampling": False}}
SMOKE_STEPS = 600
SMOKE_VARIANTS = ["dqn", "rainbow", "rainbow+round"]


def overrides_for(env: str, variant: str, mode: str, steps: int) -> dict:
    cfg = variant_config(env, ROUND.get(variant, variant))
    if variant in ROUND:
        cfg["per_round_sampling"] = True
    cfg.update(MODES[mode])
    smoke_start = {"learning_starts": min(200, steps // 3)} if steps < 2000 else {}
    return {**cfg, **smoke_start, "total_timesteps": steps, "eval_freq": 0, "eval_episodes": 1,
            "checkpoint_freq": 0, "tensorboard": False}


def worker(args: argparse.Namespace) -> None:
    from dqnkit import DQN
    env, variant, mode = args.worker
    overrides = overrides_for(env, variant, mode, args.steps)
    model = DQN.from_preset(env, seed=args.seed, torch_threads=1, verbose=False, **overrides)
    trainer = model.trainer
    spent = [0.0]
    evaluate = trainer.evaluate_and_log

    def timed_evaluate():
        t = time.perf_counter()
        try:
            return evaluate()
        finally:
            spent[0] += time.perf_counter() - t

    trainer.evaluate_and_log = timed_evaluate
    t0 = time.perf_counter()
    model.learn()
    wall = time.perf_counter() - t0
    train_s = wall - spent[0]
    agent = trainer.agent
    print(json.dumps({"env": env, "variant": variant, "mode": mode, "config": overrides,
                      "env_steps": model.num_timesteps, "updates": agent.updates, "train_s": round(train_s, 3),
                      "eval_s": round(spent[0], 3), "sps": model.num_timesteps / train_s,
                      "fast_layers": agent.fast_layers is not None, "fast_head": agent.fast_head is not None,
                      "batched_round": agent.batched_round}))


def summarize(envs: list[str], variants: list[str], runs: list[dict], steps: int) -> tuple[str, list[dict]]:
    ok = {(r["env"], r["variant"], r["mode"]): r for r in runs if "error" not in r}
    text, summary = [], []
    for env in envs:
        base = {m: ok.get((env, "dqn", m), {}).get("sps") for m in MODES}
        rows = []
        for v in variants:
            fast, slow = ok.get((env, v, "fast")), ok.get((env, v, "autograd"))
            rec = {"env": env, "variant": v}
            for mode, r in (("fast", fast), ("autograd", slow)):
                rec[f"{mode}_sps"] = r["sps"] if r else None
                rec[f"{mode}_x_dqn"] = r["sps"] / base[mode] if r and base[mode] else None
            rec["speedup"] = fast["sps"] / slow["sps"] if fast and slow else None
            summary.append(rec)
            rows.append([v, rec["fast_sps"], rec["fast_x_dqn"], rec["autograd_sps"], rec["autograd_x_dqn"],
                         rec["speedup"]])
        text.append(f"## {env}, {steps} env steps, seed 0, one torch thread, one process at a time\n")
        text.append(C.markdown_table(["variant", "fast: env steps/s", "fast: x DQN", "autograd: env steps/s",
                                      "autograd: x DQN", "speed-up (fast / autograd)"],
                                     [[c if not isinstance(c, float) else round(c, 2) for c in row]
                                      for row in rows]))
        text.append("")
    return "\n".join(text), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", nargs="+", default=["CartPole-v1", "LunarLander-v3"])
    ap.add_argument("--variants", nargs="+", default=ALL_VARIANTS, choices=ALL_VARIANTS)
    ap.add_argument("--steps", type=int, default=20_000, help="env steps per run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true",
                    help=f"{SMOKE_STEPS} env steps on CartPole-v1 for {', '.join(SMOKE_VARIANTS)} (checks it runs)")
    ap.add_argument("--worker", nargs=3, metavar=("ENV", "VARIANT", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.steps = SMOKE_STEPS
        if args.envs == ap.get_default("envs"):
            args.envs = ["CartPole-v1"]
        if args.variants == ap.get_default("variants"):
            args.variants = SMOKE_VARIANTS
    if args.worker:
        worker(args)
        return
    variants = ["dqn"] + [v for v in args.variants if v != "dqn"]  # the ratios need plain DQN
    jobs = [["--worker", env, v, mode, "--steps", str(args.steps), "--seed", str(args.seed)]
            for env in args.envs for v in variants for mode in MODES]
    runs = C.run_many(Path(__file__), jobs, jobs=1, threads=1)  # one process at a time
    text, summary = summarize(args.envs, variants, runs, args.steps)
    out = C.results_dir(args.smoke)
    head = ("# Rainbow-family training speed against plain DQN\n\n"
            f"`python benchmarks/rainbow_speed.py {' '.join(sys.argv[1:])}`".rstrip() + "\n\n"
            "env steps/s of `learn()` without its final evaluation; fast = hand-derived forward/backward "
            "(`fast_path=true`, and `per_round_sampling=true` in the `+round` variants), autograd = "
            "`fast_path=false, per_round_sampling=false`. x DQN: ratio to plain DQN in the same mode.\n\n")
    (out / "rainbow_speed.md").write_text(head + text)
    C.write_json(out / "rainbow_speed.json", {"machine": C.machine_info(), "steps": args.steps, "seed": args.seed,
                                              "summary": summary, "runs": runs})
    print(head + text)
    C.exit_with_failures(runs)


if __name__ == "__main__":
    main()
