"""The speed table: `python -m benchmarks [--seconds S] [--device cpu|cuda|all]`.

Rows: steps/s (B = 1) and simulation-steps/s (B > 1) against B and N, for the engine and, in
the same run, the plain autograd step (benchmarks/baseline.py) one simulation at a time.
Columns also give the achieved FLOP/s (counted from the step's matrix products) and the
fraction of the device's peak, measured in the same run with a large matrix product.
"""
from __future__ import annotations

import argparse
import time

import torch

from dynamics.engine import build

from .baseline import PlainSim
from .engine import machine, rate

H, D = 128, 2


def step_flops(B: int, N: int, M: int) -> float:
    """Multiply-adds ×2 of one gp0 step of the one-hidden-layer critic (matrix products only)."""
    n = N + M
    ascent = 2 * n * H * D + 2 * n * H + 2 * (2 * D + 2) * n * H + 2 * n * H + 2 * n * H * D
    forces = 2 * N * H * D + 2 * N * H + 2 * N * H * D
    return B * (ascent + forces)


def peak_matmul(device, seconds=1.0) -> float:
    a = torch.randn(2048, 2048, device=device)
    r = rate(lambda: a @ a, seconds, warm=3) if device.type == "cpu" else _cuda_rate(lambda: a @ a, seconds)
    return r * 2 * 2048**3


def peak_copy(device, seconds=1.0) -> float:
    a = torch.empty(64 * 2**20 // 4, device=device)
    b = torch.empty_like(a)
    r = rate(lambda: b.copy_(a), seconds, warm=3) if device.type == "cpu" else _cuda_rate(lambda: b.copy_(a), seconds)
    return r * 2 * a.numel() * 4


def _cuda_rate(fn, seconds):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            fn()
        n += 10
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def engine_rate(device, B, N, seconds):
    sim = build({"particles": N, "disc.width": H, "reg.kind": "gp0", "dtype": "float32", "device": device.type})
    box = [sim.init([{"seed": s} for s in range(B)])]

    def step():
        box[0] = sim.step(box[0])
    if device.type == "cpu":
        return rate(step, seconds)
    return _cuda_rate(step, seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "all"])
    args = ap.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}")
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not available on this machine, no GPU rows")
            continue
        device = torch.device(name)
        if name == "cuda":
            print(f"gpu: {torch.cuda.get_device_name(0)}")
        peak, bw = peak_matmul(device), peak_copy(device)
        print(f"\n[{name}] peak matmul {peak / 1e9:.1f} GFLOP/s, copy {bw / 1e9:.1f} GB/s (measured now)")
        print(f"{'B':>6} {'N=M':>6} {'engine sim-steps/s':>20} {'plain sim-steps/s':>18} {'ratio':>7}"
              f" {'GFLOP/s':>9} {'% peak':>7}")
        grid = [(1, 64), (1, 256), (1, 1024), (16, 64), (64, 64), (256, 64)]
        if name == "cuda":
            grid += [(4096, 64), (16384, 64), (1, 100_000)]
        for B, N in grid:
            e = B * engine_rate(device, B, N, args.seconds)
            p = rate(PlainSim(N=N, M=N).step, args.seconds / 2) if name == "cpu" and N <= 1024 else float("nan")
            fl = step_flops(1, N, N) * e
            print(f"{B:>6} {N:>6} {e:>20.0f} {p:>18.0f} {e / p:>7.1f} {fl / 1e9:>9.2f} {100 * fl / peak:>6.1f}%")


if __name__ == "__main__":
    main()
