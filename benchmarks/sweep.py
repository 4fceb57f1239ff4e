"""Sweep benchmark: the full `collapse-phase` (2 critics × 20 r × 20 lr.disc × 3 seeds = 2400
runs of 4000 steps) on the CPU and, when there is one, on a GPU; and the speed-up of batched
execution over a loop of single `effgan run`s.

    python -m benchmarks.sweep                 # CPU: measured on a subset of chunks, extrapolated
    python -m benchmarks.sweep --full          # CPU: the whole sweep, measured
    python -m benchmarks.sweep --device cuda   # GPU: the whole sweep, measured
    python -m benchmarks.sweep --json out.json

Every number printed says whether it was MEASURED or EXTRAPOLATED (and from what).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "assets" / "sweeps" / "collapse-phase.toml"


def _spec():
    from dynamics.sweep import load_spec
    return load_spec(SPEC)


def full_sweep(device: str, workers: int | None) -> dict:
    """The whole sweep through `run_sweep`, into a temporary folder. MEASURED."""
    from dynamics.sweep import run_sweep
    spec = _spec()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = run_sweep(spec, Path(tmp) / "out", workers=workers, device=device, progress=True, netcdf=False)
        wall = time.perf_counter() - t0
    return {"kind": "MEASURED", "what": f"full collapse-phase on {rep.device}", "points": rep.points,
            "chunks": rep.chunks, "workers": rep.workers, "seconds": wall}


def subset_sweep(workers: int, per_worker: int) -> dict:
    """Chunks of both critics through the worker pool a sweep uses. The full sweep is
    EXTRAPOLATED two ways: from wall time per chunk (what this machine gives under its current
    load) and from CPU time per chunk (what `workers` dedicated cores would give)."""
    from dynamics.sweep import make_plan
    from dynamics.sweep.execute import _processes, _serial, _wants
    spec = _spec()
    plan = make_plan(spec, "cpu")
    groups = {}
    for c in plan.chunks:
        groups.setdefault(c.cfg["disc.activation"], []).append(c)
    n = max(2, workers * per_worker)                          # at least one chunk of each critic
    picked = [groups[a][i] for i in range((n + 1) // 2) for a in sorted(groups)][:n]
    wants = _wants(spec, plan)
    run = _serial(picked, wants, 1) if workers == 1 else _processes(picked, wants, workers, 1)
    t0 = time.perf_counter()
    results = [r for _, r in run]
    wall = time.perf_counter() - t0
    sec = sum(float(r["seconds"]) for r in results) / len(results)
    cpu = sum(float(r["cpu_seconds"]) for r in results) / len(results)
    member_steps = picked[0].size * spec.config["steps"]
    return {"kind": "EXTRAPOLATED", "what": f"full collapse-phase on cpu, {workers} worker(s) x 1 thread",
            "from": f"{len(picked)} of {len(plan.chunks)} chunks ({picked[0].size} members x {spec.config['steps']} "
                    f"steps each, both critics) in {wall:.1f} s wall",
            "points": plan.points, "chunks": len(plan.chunks), "workers": workers,
            "chunk_wall_seconds": sec, "chunk_cpu_seconds": cpu,
            "seconds": sec * len(plan.chunks) / workers, "seconds_dedicated": cpu * len(plan.chunks) / workers,
            "member_step_us": 1e6 * sec / member_steps, "member_step_cpu_us": 1e6 * cpu / member_steps}


def single_runs(k: int) -> dict:
    """A loop of `effgan run` processes, one per point (what a shell loop would do), and the
    same points as single-member in-process simulations, both on one thread. MEASURED on k
    points (both critics, wall and CPU time); the loop over all points is EXTRAPOLATED."""
    import torch

    from dynamics.knobs import resolve
    from dynamics.run import simulate
    from dynamics.sweep import make_plan
    spec = _spec()
    points = [("relu", 0.5, 0.01), ("sigmoid", 0.5, 0.01), ("relu", 0.9, 0.1), ("sigmoid", 0.1, 0.003)][:max(2, k)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    wall = {"cli": [], "sim": []}
    cpu = {"cli": [], "sim": []}
    for act, r, lr in points:
        sets = ["--set", f"disc.activation={act}", "--set", f"kernel.ratio={r}", "--set", f"lr.disc={lr}",
                "--set", "record.every=100", "--set", "device=cpu"]
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--preset", "ring8",
                                 "--steps", str(spec.config["steps"]), *sets, "--json"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)             # this child's own CPU time
        wall["cli"].append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError("effgan run failed")
        cpu["cli"].append(ru.ru_utime + ru.ru_stime)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        cfg = resolve(spec.config, {"disc.activation": act, "kernel.ratio": r, "lr.disc": lr, "device": "cpu",
                                    "compile": False})       # what a loop of single runs would use
        t0, c0 = time.perf_counter(), time.process_time()
        simulate(cfg)
        wall["sim"].append(time.perf_counter() - t0)
        cpu["sim"].append(time.process_time() - c0)
        torch.set_num_threads(before)
    n = make_plan(spec, "cpu").points
    mean = {f"{k}_{w}": sum(v) / len(v) for w, d in (("wall", wall), ("cpu", cpu)) for k, v in d.items()}
    return {"kind": "MEASURED per point, EXTRAPOLATED to the sweep", "points_measured": len(points), "points": n,
            **{f"per_point_{k}": v for k, v in mean.items()},
            **{f"loop_{k}": n * v for k, v in mean.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--full", action="store_true", help="run the whole sweep on the CPU (~30+ min on 2 cores)")
    p.add_argument("--workers", type=int, default=None, help="CPU worker processes (default: the cores)")
    p.add_argument("--per-worker", type=int, default=2, help="subset: chunks per worker")
    p.add_argument("--single", type=int, default=4, help="points timed as single runs (>= 2)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    out = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    if args.device.startswith("cuda"):
        out["sweep"] = full_sweep(args.device, 1)
    elif args.full:
        out["sweep"] = full_sweep("cpu", workers)
    else:
        out["sweep"] = subset_sweep(workers, args.per_worker)
    out["single"] = single_runs(args.single)
    s, single = out["sweep"], out["single"]
    one = None
    if "chunk_cpu_seconds" in s:                     # one core does every chunk: CPU time adds up
        one = {"seconds_dedicated": s["chunk_cpu_seconds"] * s["chunks"], "member_step_cpu_us": s["member_step_cpu_us"]}
    out["batched_1_core"] = one
    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    line = f"{s['kind']}: {s['what']}: {s['points']} points in {s['seconds']:.0f} s ({s['seconds'] / 60:.1f} min)"
    if "seconds_dedicated" in s:
        line += f"; on dedicated cores (CPU time) {s['seconds_dedicated']:.0f} s ({s['seconds_dedicated'] / 60:.1f} min)"
    print(line + (f"  [from {s['from']}]" if "from" in s else ""))
    if one:
        print(f"EXTRAPOLATED batched on 1 dedicated core: {one['seconds_dedicated']:.0f} s "
              f"({one['member_step_cpu_us']:.0f} us CPU per member-step)")
    print(f"MEASURED per point (mean of {single['points_measured']}): `effgan run` process "
          f"{single['per_point_cli_wall']:.2f} s wall / {single['per_point_cli_cpu']:.2f} s CPU; single-member "
          f"simulate {single['per_point_sim_wall']:.2f} s wall / {single['per_point_sim_cpu']:.2f} s CPU")
    print(f"EXTRAPOLATED loop over {single['points']} points: `effgan run` {single['loop_cli_wall']:.0f} s wall / "
          f"{single['loop_cli_cpu']:.0f} s CPU; in-process single runs {single['loop_sim_wall']:.0f} s wall / "
          f"{single['loop_sim_cpu']:.0f} s CPU")
    out["speedup"] = {"sweep_vs_effgan_run_loop_wall": single["loop_cli_wall"] / s["seconds"]}
    if one:
        out["speedup"].update({
            "batched_vs_effgan_run_loop_1_core_cpu": single["loop_cli_cpu"] / one["seconds_dedicated"],
            "batched_vs_single_simulate_1_core_cpu": single["loop_sim_cpu"] / one["seconds_dedicated"],
            "sweep_2_workers_vs_effgan_run_loop_cpu": single["loop_cli_cpu"] / s["seconds_dedicated"]
            if "seconds_dedicated" in s else None})
    print("speed-up (EXTRAPOLATED): " + ", ".join(f"{k} {v:.1f}x" for k, v in out["speedup"].items() if v))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
