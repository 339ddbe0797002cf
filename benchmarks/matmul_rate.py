"""GFLOP/s of the matmuls behind an MLP update on this CPU: torch's fp32 matmul (MKL) against oneDNN's linear
(``torch._C._nn.mkldnn_linear``, inputs converted each call) and a oneDNN convolution, at 1 and 2 threads; and
a population's stacked layer (16 members) as one ``baddbmm`` against ``dqnkit.networks.batched.stacked_linear``
(oneDNN member by member, what a round's target pass takes from 256 rows per member).

The figure behind the README's speed notes (how far an update is from this CPU's arithmetic). Prints a table.

    python benchmarks/matmul_rate.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def rate(fn, flop: float) -> float:
    """GFLOP/s of ``fn``, which does ``flop`` floating-point operations, timed over about 3 GFLOP of calls."""
    return flop / C.timed_ms(fn, max(5, int(3e9 / flop)), warmup=3) / 1e6


def main() -> None:
    print("| threads | op | shape (rows x in -> out) | GFLOP/s |\n|---|---|---|---|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.no_grad():
            for rows in (64, 256, 512, 1024, 8192):
                h, w, b = torch.randn(rows, 256), torch.randn(256, 256), torch.randn(256)
                flop = 2.0 * rows * 256 * 256
                print(f"| {threads} | addmm (MKL) | {rows} x 256 -> 256 | {rate(lambda: torch.addmm(b, h, w.t()), flop):.0f} |")
                mk = lambda: torch._C._nn.mkldnn_linear(h.to_mkldnn(), w.to_mkldnn(), b.to_mkldnn())  # noqa: E731
                print(f"| {threads} | mkldnn_linear (oneDNN) | {rows} x 256 -> 256 | {rate(mk, flop):.0f} |")
            from dqnkit.networks.batched import stacked_linear
            for rows in (256, 512, 1024):
                x, w, b = torch.randn(16, rows, 256), torch.randn(16, 256, 256), torch.randn(16, 256)
                flop = 2.0 * 16 * rows * 256 * 256
                bmm = lambda: torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))  # noqa: E731
                print(f"| {threads} | baddbmm, 16 members | {rows} x 256 -> 256 | {rate(bmm, flop):.0f} |")
                print(f"| {threads} | stacked_linear, 16 members | {rows} x 256 -> 256 | "
                      f"{rate(lambda: stacked_linear(x, w, b), flop):.0f} |")
            x, conv = torch.randn(32, 4, 84, 84), torch.nn.Conv2d(4, 32, 8, 4)
            print(f"| {threads} | Nature CNN conv1 forward (oneDNN) | batch 32 | {rate(lambda: conv(x), 2.0 * 32 * 3276800):.0f} |")


if __name__ == "__main__":
    main()
