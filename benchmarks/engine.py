"""Engine speed against a plain autograd implementation of the same step, in one run.

  python -m benchmarks.engine [--threads T] [--seconds S]

ring8, ReLU critic H = 128, ipm + gp0, float32, two_number kernel:
  * B = 1,  N = M = 256: steps/s of the engine (eager, fused with compile = true, and the
    ahead-of-time package of compile = auto, cached) and of the plain step, on 1 thread (a
    single small simulation gains nothing from a second);
  * B = 64, N = M = 64:  simulation-steps/s of one batched engine run (eager and fused), of a
    loop of 64 single engine runs, and of the plain step run one simulation at a time.
Ratios are measured in this run; absolute numbers hold for the machine printed. The fused
rows exclude the one-off compile (printed), which torch caches on disk for later runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from dynamics import aot
from dynamics.engine import build

from .baseline import PlainSim


def rate(step, seconds: float, warm: int = 20) -> float:
    """Calls of step() per second, over at least `seconds`."""
    for _ in range(warm):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(20):
            step()
        n += 20
        dt = time.perf_counter() - t0
        if dt > seconds:
            return n / dt


def engine_stepper(cfg, B):
    sim = build(cfg)
    box = [sim.init([{"seed": s} for s in range(B)])]

    def step():
        box[0] = sim.step(box[0])
    t0 = time.perf_counter()
    with aot.allow_build():                       # as a run of known length: compile = auto decides here
        step()                                    # the first step compiles under compile = true (auto: builds or loads)
    step.first = time.perf_counter() - t0
    return step


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="threads for the B = 64 rows (default: all)")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    threads = args.threads or torch.get_num_threads()
    base = {"particles": 256, "disc.width": 128, "reg.kind": "gp0", "dtype": "float32", "device": "cpu",
            "compile": False}
    fused = {**base, "compile": True}
    print(f"machine: {machine()}")

    torch.set_num_threads(1)
    e1 = rate(engine_stepper(base, 1), args.seconds)
    stepper = engine_stepper(fused, 1)
    f1 = rate(stepper, args.seconds)
    ahead = engine_stepper({**base, "compile": "auto", "steps": 6000}, 1)     # a run long enough for auto
    a1 = rate(ahead, args.seconds)
    p1 = rate(PlainSim(N=256, M=256).step, args.seconds)
    print(f"B=1,  N=M=256, 1 thread: engine eager {e1:7.0f} steps/s   fused {f1:7.0f} steps/s "
          f"(first step, compiling: {stepper.first:.1f} s)   plain autograd {p1:6.0f} steps/s")
    print(f"               ahead of time (compile = auto) {a1:7.0f} steps/s (first step: {ahead.first:.1f} s)")
    print(f"               eager / plain {e1 / p1:5.1f}x   fused / plain {f1 / p1:5.1f}x   auto / plain {a1 / p1:5.1f}x"
          f"   (targets >= 2,000 steps/s, issue 6: >= 5,000)")

    small = {**base, "particles": 64}
    loop = rate(engine_stepper(small, 1), args.seconds)          # a loop of single runs: one at a time
    p64 = rate(PlainSim(N=64, M=64).step, args.seconds)
    torch.set_num_threads(threads)
    e64 = 64 * rate(engine_stepper(small, 64), args.seconds)
    stepper = engine_stepper({**small, "compile": True}, 64)
    f64 = 64 * rate(stepper, args.seconds)
    print(f"B=64, N=M=64, {threads} thread(s): engine batched eager {e64:7.0f} sim-steps/s   fused {f64:7.0f}"
          f" (first step {stepper.first:.1f} s)")
    print(f"               loop of single engine runs {loop:6.0f}   plain autograd {p64:6.0f}  (1 thread)")
    best = max(e64, f64)
    print(f"               batched / loop of singles {best / loop:5.1f}x   batched / plain {best / p64:5.1f}x"
          f"   (targets >= 20,000 sim-steps/s, >= 10x)")


if __name__ == "__main__":
    main()
