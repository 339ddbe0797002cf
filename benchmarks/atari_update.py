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

A second table says how near the CPU's limit the update is: each layer's forward and backward alone at
batch 32 (channels-last, as dqnkit runs them), in GFLOP/s, beside a 2048x2048 matmul's GFLOP/s on as many
threads (about the most this CPU's float32 units deliver through MKL).

    python benchmarks/atari_update.py                 # about a minute on 2 cores

Writes benchmarks/results/atari_update.{md,json}.
"""
from __future__ import annotations

import argparse
import sys
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

    update_ms = C.timed_ms(update, n_updates)
    act_ms = C.timed_ms(act, 5 * n_updates)
    return {"threads": threads, "layout": layout, "update_ms": round(update_ms, 2),
            "act_ms": round(act_ms, 3), "per_env_step_ms": round(update_ms / 4 + act_ms / 2, 2)}


LAYERS = [  # the Nature CNN's layers at batch 32: name, input shape (C, H, W), out channels, kernel, stride
    ("conv1 8x8/4", (4, 84, 84), 32, 8, 4), ("conv2 4x4/2", (32, 20, 20), 64, 4, 2),
    ("conv3 3x3/1", (64, 9, 9), 64, 3, 1)]


def layer_rates(threads: int, n: int) -> list[dict]:
    """GFLOP/s of each layer's forward and backward alone (2 flops per multiply-add), and of a large matmul."""
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    rows, cl = [], torch.channels_last
    for name, (c, h, w), out, k, stride in LAYERS:
        x = torch.randn(32, c, h, w).contiguous(memory_format=cl)
        weight = torch.randn(out, c, k, k).contiguous(memory_format=cl).requires_grad_()
        bias = torch.zeros(out, requires_grad=True)
        x.requires_grad_(name != LAYERS[0][0])  # the first layer needs no input gradient
        y = F.conv2d(x, weight, bias, stride=stride)
        macs = y.numel() * c * k * k
        g = torch.randn_like(y)
        fwd = C.timed_ms(lambda: F.conv2d(x, weight, bias, stride=stride), n)
        both = C.timed_ms(lambda: F.conv2d(x, weight, bias, stride=stride).backward(g), n)
        bwd_macs = macs * (2 if x.requires_grad else 1)
        rows.append({"threads": threads, "layer": name, "forward_ms": round(fwd, 3),
                     "forward_gflops": round(2 * macs / fwd / 1e6, 1), "backward_ms": round(both - fwd, 3),
                     "backward_gflops": round(2 * bwd_macs / (both - fwd) / 1e6, 1)})
    fc_x, fc_w = torch.randn(32, 3136), torch.randn(512, 3136)
    fc = C.timed_ms(lambda: fc_x @ fc_w.t(), 20 * n)
    rows.append({"threads": threads, "layer": "fc 3136->512 (forward)", "forward_ms": round(fc, 3),
                 "forward_gflops": round(2 * 32 * 3136 * 512 / fc / 1e6, 1), "backward_ms": None,
                 "backward_gflops": None})
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    mm = C.timed_ms(lambda: a @ b, max(3, n // 4))
    rows.append({"threads": threads, "layer": "matmul 2048x2048x2048 (reference)", "forward_ms": round(mm, 3),
                 "forward_gflops": round(2 * 2048 ** 3 / mm / 1e6, 1), "backward_ms": None, "backward_gflops": None})
    return rows


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
    rates = [r for t in args.threads for r in layer_rates(t, args.updates)]
    rate_table = C.markdown_table(
        ["torch threads", "layer (batch 32, channels-last)", "forward ms", "forward GFLOP/s", "backward ms",
         "backward GFLOP/s"],
        [[r["threads"], r["layer"], r["forward_ms"], r["forward_gflops"], r["backward_ms"] or "-",
          r["backward_gflops"] or "-"] for r in rates])
    out = C.results_dir(False)
    C.write_json(out / "atari_update.json", {"machine": C.machine_info(), "args": vars(args), "rows": rows,
                                             "layer_rates": rates})
    text = (f"# Nature CNN update on CPU\n\n`python benchmarks/atari_update.py {' '.join(sys.argv[1:])}`".rstrip()
            + f"\n\n{table}\n\n## Each layer alone, against a large matmul\n\n{rate_table}\n")
    (out / "atari_update.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
