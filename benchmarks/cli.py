"""What users get: whole-process timings, in one run, beside the plain autograd script.

  python -m benchmarks.cli [--repeats 3] [--steps 6000]

The workload of issue 14: ring of 8, N = M = 256, H = 128, gp0, B = 1, `--steps` steps. Each
row is a fresh process (imports, set-up, run, exit), the median of `--repeats` (taken round the
commands in turn: a shared machine's load drifts), after one run that is not timed (it fills the compile and page caches, as a user's first run would):
  * the plain autograd script (benchmarks/baseline.py's PlainSim) on one thread
    (OMP_NUM_THREADS=1): its fastest on shared cores (2 threads: 2.5x slower here), so the
    ratios do not flatter the engine;
  * `effgan run` with that workload and no speed knob (compile = auto: the untimed run builds
    the ahead-of-time package, the timed ones load it); with `--set compile=false` (eager) and
    `--set compile=true` (torch.compile, its caches warm);
  * `effgan run --steps 10`, `python -c "import torch"`, `effgan --help`.
Then the recording section: CPU seconds of `simulate` with record.every = 10 against no
recording, eager and compiled, in this process. Ratios are measured in this run; absolute
numbers hold for the machine and load printed (the load average: other programs share cores).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

PLAIN = ("from benchmarks.baseline import PlainSim\n"
         "sim = PlainSim(N=256, M=256, H=128)\n"
         "for _ in range({steps}):\n    sim.step()\n")


def effgan(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def commands(steps: int) -> dict[str, list[str]]:
    run = ["run", "--set", "particles=256", "--steps", str(steps)]
    return {
        "plain autograd script (1 thread)": [sys.executable, "-c", PLAIN.format(steps=steps)],
        "effgan run (no speed knob)": effgan(*run),
        "effgan run --set compile=false (eager)": effgan(*run, "--set", "compile=false"),
        "effgan run --set compile=true (cache warm)": effgan(*run, "--set", "compile=true"),
        "effgan run --steps 10": effgan("run", "--steps", "10"),
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "effgan --help": effgan("--help"),
    }


def wall(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run of cmd."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if "PlainSim" in cmd[-1] else None
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


def whole_process(steps: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds of each command, after one untimed run of each. The repeats
    go round the commands in turn, so that every row sees the same drift of a shared machine's
    load; CPU seconds (user + system) drift less with the load than wall seconds."""
    cmds = commands(steps)
    for cmd in cmds.values():
        wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    cpu: dict[str, list[float]] = {name: [] for name in cmds}
    loads = []
    for _ in range(repeats):
        for name, cmd in cmds.items():
            w, c = wall(cmd)
            times[name].append(w)
            cpu[name].append(c)
        loads.append(os.getloadavg()[0])
    out = {name: statistics.median(t) for name, t in times.items()}
    out_cpu = {name: statistics.median(t) for name, t in cpu.items()}
    for name, t in times.items():
        print(f"  {name:<46} {out[name]:7.2f} s   (runs {', '.join(f'{v:.2f}' for v in t)};"
              f" CPU {out_cpu[name]:.2f} s)", flush=True)
    print(f"  load average after each round: {', '.join(f'{v:.1f}' for v in loads)}")
    return out, out_cpu


def recording(steps: int) -> None:
    """CPU seconds of the run loop with and without recording every 10 steps (1 thread)."""
    import torch

    from dynamics.engine import build
    from dynamics.run import simulate
    torch.set_num_threads(1)
    for compiled in (False, True, "auto"):
        cpu = {}
        for every in (10, steps, 10, steps, 10, steps):           # interleaved: the load drifts
            cfg = {"particles": 256, "steps": steps, "record.every": every, "compile": compiled}
            sim = build(cfg)
            # compiled and warm (auto: a run of this length, which builds or finds its packages)
            warm = cfg if compiled == "auto" else {**cfg, "steps": 20}
            simulate(warm, sim=build(warm))
            c0 = time.process_time()
            simulate(cfg, sim=sim)
            cpu.setdefault(every, []).append(time.process_time() - c0)
        rec, bare = min(cpu[10]), min(cpu[steps])
        name = {False: "eager", True: "compiled", "auto": "auto (AOT)"}[compiled]
        print(f"  {name:<10}: {bare:6.2f} s CPU stepping, {rec:6.2f} s recording every 10"
              f" steps: recording costs {100 * (rec - bare) / bare:5.1f} % of the stepping")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--no-recording", action="store_true", help="skip the recording section")
    args = ap.parse_args(argv)
    from .engine import machine
    print(f"machine: {machine()}; load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"whole process, median of {args.repeats} (after one untimed run), N = M = 256, {args.steps:,} steps:")
    t, cpu = whole_process(args.steps, args.repeats)
    plain, torch_s = t["plain autograd script (1 thread)"], t['python -c "import torch"']
    plain_cpu, run_cpu = cpu["plain autograd script (1 thread)"], cpu["effgan run (no speed knob)"]
    above = run_cpu - cpu['python -c "import torch"']
    print(f"  CPU seconds: plain / effgan run: {plain_cpu / run_cpu:.2f}x   plain / compile=false: "
          f"{plain_cpu / cpu['effgan run --set compile=false (eager)']:.2f}x   effgan run - import torch: {above:.2f} s")
    print(f"  plain / effgan run: {plain / t['effgan run (no speed knob)']:.2f}x   "
          f"plain / compile=false: {plain / t['effgan run --set compile=false (eager)']:.2f}x   "
          f"plain / compile=true: {plain / t['effgan run --set compile=true (cache warm)']:.2f}x   "
          f"(target: effgan run <= plain / 3.6 = {plain / 3.6:.2f} s)")
    print(f"  effgan run --steps 10 - import torch: {t['effgan run --steps 10'] - torch_s:+.2f} s (target <= +1 s);"
          f"  effgan --help: {t['effgan --help']:.2f} s (target < 0.5 s)")
    if not args.no_recording:
        print(f"recording (in this process, {args.steps:,} steps, minimum of 3):")
        recording(args.steps)


if __name__ == "__main__":
    main()
