"""`effgan sweep SPEC [--out DIR] [--resume] [--scheduler ADDRESS] [--workers N] [--device ...]`."""
from __future__ import annotations

import argparse
from pathlib import Path

from dynamics.assets import find_sweep_spec, sweep_specs
from dynamics.sweep.execute import Report, run_sweep
from dynamics.sweep.spec import Spec, load_spec

DEFAULT_ROOT = Path("runs")


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="a TOML sweep spec file, or the name of a packaged one ("
                   + ", ".join(sweep_specs()) + ")")
    add_run_options(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: compute only the chunks not yet on disk")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options `effgan sweep` and `effgan reproduce` share."""
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"output folder (results.zarr, results.nc, figures, chunks.log); default {DEFAULT_ROOT}/NAME")
    p.add_argument("--quick", action="store_true", help="use the spec's [quick] size")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the chunks on a running dask.distributed cluster, e.g. tcp://HOST:8786")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: one per CPU core; 1 on a GPU)")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="torch threads per CPU worker (default 1: parallelism comes from --workers)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the spec's device knob)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures the spec asks for")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def default_out(spec: Spec) -> Path:
    return DEFAULT_ROOT / (spec.name + ("-quick" if spec.quick else ""))


def execute(spec: Spec, args, resume: bool = False) -> tuple[Report, list[Path]]:
    """Run the spec with the shared options, then draw its figures into the output folder."""
    out = Path(args.out) if args.out else default_out(spec)
    if spec.figures and not args.no_figures:
        from app.plots.figures import check_spec_figures     # lazily: dynamics never loads the plotting stack
        check_spec_figures(spec)                       # before the sweep, not after it
    report = run_sweep(spec, out, resume=resume, scheduler=args.scheduler, workers=args.workers,
                       device=args.device, threads=args.threads, progress=not args.no_progress)
    figures = []
    if spec.figures and report.complete and not args.no_figures:
        from app.plots.figures import render_spec_figures     # lazily: dynamics never loads the plotting stack
        figures = render_spec_figures(report.store, spec.figures, report.out)
    return report, figures


def print_report(report: Report, figures: list[Path]) -> None:
    done = "complete" if report.complete else "incomplete"
    print(f"{report.points} points in {report.chunks} chunks ({done}); computed {len(report.computed)} chunks in "
          f"{report.seconds:.1f} s on {report.device}, workers {report.workers}"
          + (f"; {report.diverged} diverged" if report.diverged else ""))
    print(f"wrote {report.store}")
    if report.netcdf:
        print(f"wrote {report.netcdf}")
    for f in figures:
        print(f"wrote {f}")


def main_sweep(args) -> int:
    spec = load_spec(find_sweep_spec(args.spec), quick=args.quick)
    report, figures = execute(spec, args, resume=args.resume)
    print_report(report, figures)
    return 0
