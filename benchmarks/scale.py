"""Speed and memory at scale: `python -m benchmarks.scale [--device cpu|cuda|all] [--seconds S] [--max-n N]`.

Rows (B = 1, ring target in d = 2, the default critic: ReLU MLP H = 128, ipm + gp0, float32):
  * relu_ntk and rbf (d_z = 16) at N = 1k, 10k, 100k: Θ cached as an N×N tensor (dense) where
    that fits in half the free memory; Θ formed block by block at every move (blocked, eager);
    Θ never stored and the step compiled, each move one fused pairwise reduction (fused);
  * two_number at N = 1e6 with real = 1e5 and real = N, eager (-) and compiled (fused).
Columns: ms per engine step, ms per kernel move alone, the move's achieved GFLOP/s and GB/s and
their fractions of the device's peak matmul FLOP/s and copy bytes/s (measured in this run), the
whole step's counted GFLOP/s, and the row's peak memory above the idle process. Each row runs in
its own process, so its memory is its own (CPU: max RSS; CUDA: max allocated).

Counting: FLOPs are 2·m·n·k per matrix product plus one per elementwise operation of the kernel
(a transcendental counts one); bytes are the unavoidable traffic only: Θ read once (dense), the
codes and forces (blocked), x and F (two_number); a cached Θ small enough for the last-level
cache is read faster than the DRAM copy peak (over 100 %). The critic's FLOPs (step column)
count its matrix products only. A row whose first call takes over FIRST_IS_ENOUGH seconds is timed by
that one call. Absolute numbers hold for the machine printed; fractions are against peaks taken
on the same machine in the same run.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

H, D, DZ = 128, 2, 16
FIRST_IS_ENOUGH = 2.0
ROWS = [(kind, N, mode, 0) for kind in ("relu_ntk", "rbf") for N in (1_000, 10_000, 100_000)
        for mode in ("dense", "blocked", "fused")] \
    + [("two_number", 1_000_000, mode, real) for real in (100_000, 0) for mode in ("-", "fused")]


# ---------------------------------------------------------------- device peaks and timing
def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, seconds: float, warm: int = 3) -> float:
    """Seconds per call of fn(): one call if it alone takes FIRST_IS_ENOUGH, else the mean over
    at least `seconds` after `warm` calls."""
    t0 = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - t0
    if first > FIRST_IS_ENOUGH:
        return first
    for _ in range(warm):
        fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if n % 5 == 0 or first > 0.05:
            sync(device)
            dt = time.perf_counter() - t0
            if dt > seconds:
                return dt / n


def peak_matmul(device, seconds: float = 1.0) -> float:
    """FLOP/s of a large float32 matrix product (2·n³ per product)."""
    n = 4096 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device)
    return 2 * n**3 / timed(lambda: a @ a, device, seconds)


def peak_copy(device, seconds: float = 1.0) -> float:
    """Bytes/s of a large copy (read + write counted), 256 MiB on a GPU, 64 MiB on a CPU."""
    mb = 256 if device.type == "cuda" else 64
    a = torch.empty(mb * 2**20 // 4, device=device)
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / timed(lambda: b.copy_(a), device, seconds)


def critic_flops(B: int, N: int, M: int) -> float:
    """Multiply-adds ×2 of one gp0 step of the one-hidden-layer critic (matrix products only)."""
    n = N + M
    ascent = 2 * n * H * D + 2 * n * H + 2 * (2 * D + 2) * n * H + 2 * n * H + 2 * n * H * D
    forces = 2 * N * H * D + 2 * N * H + 2 * N * H * D
    return B * (ascent + forces)


def move_cost(kind: str, mode: str, B: int, N: int, depth: int = 1, itemsize: int = 4) -> tuple[float, float]:
    """(FLOPs, bytes) of one kernel move x += step·Θ F as counted in the module docstring."""
    if kind == "two_number":
        return 5.0 * B * N * D, 3.0 * B * N * D * itemsize
    if mode == "dense":
        return 2.0 * B * N * N * D, float(B * N * N * itemsize)
    # blocked and fused: the same pairwise arithmetic, only the codes and forces must travel
    elementwise = {"rbf": 4, "relu_ntk": 2 + 10 * depth}[kind]
    return float(B * N * N * (2 * DZ + 2 * D + elementwise)), float(B * N * (DZ + 2 * D) * itemsize)


def free_bytes(device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


# ---------------------------------------------------------------- one row (in its own process)
def measure(kind: str, N: int, mode: str, real: int, device_name: str, seconds: float) -> dict:
    from dynamics import kernels
    from dynamics.engine import build
    device = torch.device(device_name)
    idle = _rss(now=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    kernels.DENSE_MAX_BYTES = 1 << 62 if mode == "dense" else 0
    fused = mode == "fused"
    sim = build({"kernel.kind": kind, "particles": N, "real": real, "kernel.latent_dim": DZ, "disc.width": H,
                 "reg.kind": "gp0", "dtype": "float32", "device": device_name, "compile": fused})
    t0 = time.perf_counter()
    box = [sim.init()]
    sync(device)
    init = time.perf_counter() - t0
    assert ("theta" in box[0].kernel) == (mode == "dense") or kind == "two_number"

    def step():
        box[0] = sim.step(box[0])
    if fused:                                    # the first step compiles: not timed
        step()
        sync(device)
    per_step = timed(step, device, seconds)
    s = box[0]
    _, F = sim.forces(s)
    lr = s.hyper["lr.gen"] / N
    move = sim.kernel.move
    if fused:                                    # the move alone, compiled as inside the step
        move = torch.compile(lambda ks, x, F, lr, h: sim.kernel.move(ks, x, F, lr, h), dynamic=False)
        move(s.kernel, s.x, F, lr, s.hyper)
    per_move = timed(lambda: move(s.kernel, s.x, F, lr, s.hyper), device, seconds)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _rss() - idle
    return {"init_s": init, "step_s": per_step, "move_s": per_move, "peak_bytes": peak,
            "alive": bool(s.alive.all())}


def _rss(now: bool = False) -> int:
    """Peak (or, with now, current) resident set of this process in bytes."""
    if now:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024        # Linux reports KiB


def run_row(kind, N, mode, real, device, seconds, timeout=1800) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.scale", "--row", f"{kind},{N},{mode},{real}", "--device", device.type,
           "--seconds", str(seconds)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1]
        return {"error": last[:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the table
def table(device, seconds: float, max_n: int, peak: float | None = None, bw: float | None = None) -> None:
    peak = peak or peak_matmul(device)
    bw = bw or peak_copy(device)
    free = free_bytes(device)
    print(f"\n[{device.type}] scale: peak matmul {peak / 1e9:.1f} GFLOP/s, copy {bw / 1e9:.1f} GB/s (measured now); "
          f"B = 1, d = {D}, float32, critic H = {H} gp0, d_z = {DZ}")
    print(f"{'kernel':>10} {'N':>9} {'M':>9} {'Θ':>8} {'init s':>8} {'ms/step':>10} {'ms/move':>10}"
          f" {'move GFLOP/s':>13} {'%peak':>6} {'move GB/s':>10} {'%peak':>6} {'step GFLOP/s':>13} {'%peak':>6}"
          f" {'peak mem':>9}")
    for kind, N, mode, real in ROWS:
        if N > max_n:
            continue
        M = real or N
        label = f"{kind:>10} {N:>9} {M:>9} {mode:>8}"
        if mode == "dense" and 4 * N * N > free / 2:
            print(f"{label}  dense Θ needs {4 * N * N / 1e9:.0f} GB: does not fit (half of {free / 1e9:.0f} GB free)")
            continue
        r = run_row(kind, N, mode, real, device, seconds)
        if "error" in r:
            print(f"{label}  failed: {r['error']}")
            continue
        fl, by = move_cost(kind, mode, 1, N)
        step_fl = critic_flops(1, N, M) + fl
        print(f"{label} {r['init_s']:>8.2f} {1e3 * r['step_s']:>10.2f} {1e3 * r['move_s']:>10.2f}"
              f" {fl / r['move_s'] / 1e9:>13.2f} {100 * fl / r['move_s'] / peak:>5.1f}%"
              f" {by / r['move_s'] / 1e9:>10.2f} {100 * by / r['move_s'] / bw:>5.1f}%"
              f" {step_fl / r['step_s'] / 1e9:>13.2f} {100 * step_fl / r['step_s'] / peak:>5.1f}%"
              f" {_size(r['peak_bytes']):>9}" + ("" if r["alive"] else "  (diverged)"))


def _size(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="timing window per measurement")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "all"])
    ap.add_argument("--max-n", type=int, default=1_000_000, help="skip rows with more particles")
    ap.add_argument("--row", default=None, help=argparse.SUPPRESS)       # internal: one row, JSON out
    args = ap.parse_args(argv)
    if args.row:
        kind, N, mode, real = args.row.split(",")
        print(json.dumps(measure(kind, int(N), mode, int(real), args.device, args.seconds)))
        return
    from .engine import machine
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}")
    for name in (["cpu", "cuda"] if args.device == "all" else [args.device]):
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not available on this machine, no GPU rows")
            continue
        if name == "cuda":
            print(f"gpu: {torch.cuda.get_device_name(0)}")
        table(torch.device(name), args.seconds, args.max_n)


if __name__ == "__main__":
    main()
