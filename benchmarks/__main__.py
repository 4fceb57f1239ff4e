"""The speed table: `python -m benchmarks [--seconds S] [--device cpu|cuda|all]`.

Rows: steps/s (B = 1) and simulation-steps/s (B > 1) against B and N, for the engine and, in
the same run, the plain autograd step (benchmarks/baseline.py) one simulation at a time; the
engine eager and fused (`compile = true`, the compiling first step not timed). Columns also
give, for the better of eager and fused, the achieved FLOP/s (counted from the step's matrix
products) and bytes/s (the state each step must read and write once: particles, critic
weights) with their fractions of the device's peaks, measured in the same run with a large
matrix product and a large copy. Small steps sit far below both peaks: they are bound by
latency (kernel launches, Python, synchronisation of threads), which is what fusing cuts.
Then the scale section (benchmarks/scale.py): ms per step of relu_ntk and rbf at N = 1k, 10k,
100k (cached Θ against Θ formed block by block) and of two_number at N = 1e6, with each row's
fraction of the peak FLOP/s and bytes/s and its peak memory. `--scale-max-n 10000` keeps it to
a minute on a CPU; the full CPU section takes several minutes (the 100k rows form 1e10 kernel
entries per move).
What a user gets as whole processes (start-up, `effgan run`, beside the plain script):
`python -m benchmarks.cli`.
"""
from __future__ import annotations

import argparse
import time

import torch

from dynamics.engine import build

from . import scale
from .baseline import PlainSim
from .engine import machine, rate
from .scale import H, peak_copy, peak_matmul
from .scale import critic_flops as step_flops


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


def state_bytes(B: int, N: int, d: int = 2, itemsize: int = 4) -> float:
    """Bytes a step must move at least: the particles and the critic's weights (W (H, d),
    bias (H,), readout (H,)), each read and written once."""
    return 2.0 * B * (N * d + H * (d + 2)) * itemsize


def plain_rate(device, N, seconds):
    """Steps/s of the plain autograd step (benchmarks/baseline.py) on this device."""
    sim = PlainSim(N=N, M=N, device=device)
    return rate(sim.step, seconds) if device.type == "cpu" else _cuda_rate(sim.step, seconds)


def engine_rate(device, B, N, seconds, fused=False):
    """Steps/s of a batch of B (the first step, which compiles when fused, is not timed)."""
    sim = build({"particles": N, "disc.width": H, "reg.kind": "gp0", "dtype": "float32", "device": device.type,
                 "compile": fused})
    box = [sim.init([{"seed": s} for s in range(B)])]

    def step():
        box[0] = sim.step(box[0])
    step()
    if device.type == "cpu":
        return rate(step, seconds)
    return _cuda_rate(step, seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "all"])
    ap.add_argument("--scale-max-n", type=int, default=1_000_000, help="scale section: skip rows with more particles"
                    " (0: no scale section)")
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
        print(f"{'B':>6} {'N=M':>6} {'eager sim-steps/s':>18} {'fused sim-steps/s':>18} {'plain sim-steps/s':>18}"
              f" {'best/plain':>10} {'GFLOP/s':>9} {'% peak':>7} {'GB/s':>7} {'% peak':>7}")
        grid = [(1, 64), (1, 256), (1, 1024), (16, 64), (64, 64), (256, 64)]
        if name == "cuda":
            grid += [(4096, 64), (16384, 64), (1, 100_000)]
        for B, N in grid:
            e = B * engine_rate(device, B, N, args.seconds)
            f = B * engine_rate(device, B, N, args.seconds, fused=True) if N <= 1024 else float("nan")
            p = plain_rate(device, N, args.seconds / 2) if N <= 1024 else float("nan")
            best = max(e, f) if f == f else e
            fl, by = step_flops(1, N, N) * best, state_bytes(1, N) * best
            print(f"{B:>6} {N:>6} {e:>18.0f} {f:>18.0f} {p:>18.0f} {best / p:>10.1f} {fl / 1e9:>9.2f}"
                  f" {100 * fl / peak:>6.1f}% {by / 1e9:>7.2f} {100 * by / bw:>6.1f}%")
        if args.scale_max_n:
            scale.table(device, args.seconds, args.scale_max_n, peak=peak, bw=bw)


if __name__ == "__main__":
    main()
