"""Replay memory for Atari: bytes per transition and sample throughput, dqnkit vs Stable-Baselines3.

Fills each buffer with the same real Pong transitions (``dqnkit.envs.atari.make_atari_env``, Nature
preprocessing, 4 x 84 x 84 uint8 stacks, uniformly random actions), then reports

  * bytes per transition = (sum of ``nbytes`` of the buffer's NumPy arrays) / capacity: what the buffer
    allocates for ``capacity`` transitions (NumPy's zeros are lazily committed, so this is the size it
    takes once full, not the process's current RSS);
  * sample throughput: batches of 32 per second (``sample(32)``, torch CPU tensors out), after the fill.

Buffers: dqnkit ``ReplayBuffer(frame_stack=4)`` (each frame once; uniform, and prioritised with n_step=3)
and Stable-Baselines3 ``ReplayBuffer(optimize_memory_usage=True, handle_timeout_termination=False)``
(each *stack* once; SB3 refuses timeout handling with this option, Stable-Baselines3 #934).
SB3 is not a dependency of dqnkit: ``pip install "stable-baselines3>=2.3"`` (check with ``--dry-run`` that
it keeps your torch); without it the SB3 row is skipped with that message.

    python benchmarks/replay_memory.py --capacity 100000 --fill 20000
    python benchmarks/replay_memory.py --smoke          # 2,000-slot buffers, 1,500 steps: checks it runs

The per-transition figure does not depend on the fill and barely on the capacity (the sum tree rounds
up to a power of two; the side tables are a few entries). A 1M-transition SB3 buffer needs 28 GB, more
than many machines have, hence the 100k default.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))

from dqnkit.config import Config  # noqa: E402
from dqnkit.envs.atari import make_atari_env  # noqa: E402
from dqnkit.replay import ReplayBuffer, owned_nbytes  # noqa: E402

BATCH = 32


def pong_transitions(steps: int, seed: int):
    """Yields (obs, action, reward, terminated, truncated, next_obs, episode_end) from random play."""
    cfg = Config.from_dict({"env_id": "ALE/Pong-v5", "frame_stack": 4, "sticky_action_prob": 0.25})
    env = make_atari_env("ALE/Pong-v5", cfg, seed=seed)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n))
        next_obs, reward, terminated, truncated, info = env.step(action)
        learn_terminated = terminated or info["life_loss"]
        yield obs, action, reward, learn_terminated, truncated, next_obs, terminated or truncated
        obs = env.reset()[0] if (terminated or truncated) else next_obs
    env.close()


def sample_rate(sample, seconds: float) -> float:
    sample()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sample()
        n += 1
    return n / (time.perf_counter() - t0)


def make_dqnkit(capacity: int, prioritized: bool, n_step: int) -> ReplayBuffer:
    return ReplayBuffer(capacity, 1, (4, 84, 84), np.uint8, n_step=n_step, gamma=0.99,
                        prioritized=prioritized, alpha=0.5, seed=0, frame_stack=4)


def dqnkit_nbytes(buf: ReplayBuffer) -> int:
    tree = getattr(buf.sampler, "tree", None)
    return owned_nbytes(buf.storage) + (owned_nbytes(tree) if tree is not None else 0)


def make_sb3(capacity: int):
    try:
        from gymnasium import spaces
        from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
    except ImportError:
        return None
    return SB3ReplayBuffer(capacity, spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(6), device="cpu",
                           n_envs=1, optimize_memory_usage=True, handle_timeout_termination=False)


def sb3_nbytes(rb) -> int:
    return sum(v.nbytes for v in vars(rb).values() if isinstance(v, np.ndarray) and v.base is None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capacity", type=int, default=100_000, help="buffer capacity in transitions")
    p.add_argument("--fill", type=int, default=20_000, help="Pong transitions added before sampling")
    p.add_argument("--seconds", type=float, default=3.0, help="sampling time per buffer")
    p.add_argument("--smoke", action="store_true", help="tiny run that checks the script works")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = p.parse_args()
    if args.smoke:
        args.capacity, args.fill, args.seconds = 2_000, 1_500, 0.3

    buffers = {
        "dqnkit uniform n=1": make_dqnkit(args.capacity, False, 1),
        "dqnkit PER n=3": make_dqnkit(args.capacity, True, 3),
    }
    sb3 = make_sb3(args.capacity)
    t0 = time.perf_counter()
    for obs, action, reward, term, trunc, next_obs, end in pong_transitions(args.fill, seed=0):
        for buf in buffers.values():
            buf.add(obs[None], [action], [reward], [term], [trunc], next_obs[None], episode_end=[end])
        if sb3 is not None:
            sb3.add(obs[None], next_obs[None], np.array([action]), np.array([reward]), np.array([term]), [{}])
    fill_s = time.perf_counter() - t0

    rows = []
    for name, buf in buffers.items():
        nbytes = dqnkit_nbytes(buf)
        rows.append({"buffer": name, "bytes_per_transition": nbytes / args.capacity, "total_MB": nbytes / 1e6,
                     "batches_per_s": sample_rate(lambda b=buf: b.sample(BATCH, 0.4), args.seconds)})
    if sb3 is not None:
        nbytes = sb3_nbytes(sb3)
        rows.append({"buffer": "SB3 optimize_memory_usage", "bytes_per_transition": nbytes / args.capacity,
                     "total_MB": nbytes / 1e6, "batches_per_s": sample_rate(lambda: sb3.sample(BATCH), args.seconds)})

    print(f"capacity {args.capacity:,} transitions, filled with {args.fill:,} Pong steps ({fill_s:.1f} s), "
          f"batch {BATCH}; {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'buffer':28s} {'bytes/transition':>17s} {'allocated MB':>13s} {'batches/s':>10s}")
    for r in rows:
        print(f"{r['buffer']:28s} {r['bytes_per_transition']:17,.1f} {r['total_MB']:13,.1f} "
              f"{r['batches_per_s']:10,.0f}")
    if sb3 is None:
        print('Stable-Baselines3 not installed: pip install "stable-baselines3>=2.3" for its row '
              "(check with --dry-run that it keeps your torch)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"capacity": args.capacity, "fill": args.fill, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
