"""The Nature CNN's update and acting forward on CPU, by torch threads and network layout.

One ``Agent.update`` of the atari-nature preset's network (batch 32 of random uint8 84x84x4 frames, the
round's target forward included, Huber loss, Adam, gradient-norm clip) and one acting forward for 2 envs,
with 1 and 2 torch threads, for two layouts of the same network:

- ``textbook``: NCHW weights, frames cast to float and divided by 255 before the first convolution (the
  Nature CNN as dqnkit ran it before its fast layout, and as most libraries run it);
- ``dqnkit``: :class:`dqnkit.networks.NatureCNN` as it is, channels-last weights and input, the 1/255 on
  the first layer's weights.
 Each figure is the mean of ``--updates`` calls after 5 warm-up
calls, all in one process, one after another, so the rows compare side by side. The per-env-step column
models ``train_freq`` 4 with ``num_envs`` 2 (one forward acts for 2 env steps): a quarter of an update
plus half an acting forward, emulator and replay not included. The presets run one env, which adds the
other half of an acting forward.

    python benchmarks/atari_update.py                 # about a minute on 2 cores

Writes benchmarks/results/atari_update.{md,json}.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

LAYOUTS = ("textbook", "dqnkit")


def textbook_forward(torso):
    """NatureCNN's forward as it was before the fast layout: NCHW, the frames divided by 255."""
    return lambda x: torso.conv(x.float() / 255.0)


def measure(threads: int, layout: str, n_updates: int) -> dict:
    from dqnkit.learner.agent import Agent
    from dqnkit.presets import load_preset
    from dqnkit.presets.zoo import config_from_zoo
    from dqnkit.types import Batch

    torch.set_num_threads(threads)
    values = load_preset("atari-nature")  # config_from_zoo maps the zoo's names itself
    values.pop("env_id", None)
    agent = Agent(config_from_zoo({**values, "seed": 0, "torch_threads": threads}), (4, 84, 84), 6,
                  torso="nature_cnn", input_scale=1 / 255)
    if layout == "textbook":
        for net in (agent.online, agent.target):
            net.to(memory_format=torch.contiguous_format)
            net.torso.forward = textbook_forward(net.torso)
        agent.optimizer.state.clear()  # no step taken yet; recreated in the new layout by the first step
    gen = torch.Generator().manual_seed(0)
    frames = lambda: torch.randint(0, 255, (32, 4, 84, 84), dtype=torch.uint8, generator=gen)  # noqa: E731
    batch = Batch(obs=frames(), action=torch.randint(0, 6, (32,), generator=gen), reward=torch.zeros(32),
                  next_obs=frames(), terminated=torch.zeros(32), discount=torch.full((32,), 0.99),
                  is_weight=torch.ones(32), index=np.arange(32))
    act_obs = np.random.default_rng(0).integers(0, 255, (2, 4, 84, 84), dtype=np.uint8)
    rng = np.random.default_rng(0)

    def update() -> None:
        agent.update(batch, target=agent.fixed_targets(batch))

    def act() -> None:
        agent.act(act_obs, 0.0, rng)

    for fn in (update, act):
        for _ in range(5):
            fn()
    t0 = time.perf_counter()
    for _ in range(n_updates):
        update()
    update_ms = (time.perf_counter() - t0) / n_updates * 1e3
    t0 = time.perf_counter()
    for _ in range(5 * n_updates):
        act()
    act_ms = (time.perf_counter() - t0) / (5 * n_updates) * 1e3
    return {"threads": threads, "layout": layout, "update_ms": round(update_ms, 2),
            "act_ms": round(act_ms, 3), "per_env_step_ms": round(update_ms / 4 + act_ms / 2, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--updates", type=int, default=40, help="timed updates per setting (default 40)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    rows = [measure(t, layout, args.updates) for t in args.threads for layout in LAYOUTS]
    base = rows[0]["update_ms"]
    table = C.markdown_table(
        ["torch threads", "layout", "update ms", "x (1 thread, textbook)", "acting forward ms (2 envs)",
         "learner + acting ms per env step"],
        [[r["threads"], r["layout"], r["update_ms"],
          f"{base / r['update_ms']:.2f}x", r["act_ms"], r["per_env_step_ms"]] for r in rows])
    out = C.results_dir(False)
    C.write_json(out / "atari_update.json", {"machine": C.machine_info(), "args": vars(args), "rows": rows})
    text = f"# Nature CNN update on CPU\n\n`python benchmarks/atari_update.py`\n\n{table}\n"
    (out / "atari_update.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
