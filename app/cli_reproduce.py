"""`effgan reproduce NAME [--quick] [--out DIR]`: the experiments live in `dynamics.experiments`;
the app hands each run its hooks (the sweep runner, which draws the sweep figures and reports
what it wrote, and the companion papers' figure drawer), so `dynamics` never imports the
plotting stack."""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from dynamics.experiments import EXPERIMENTS, Hooks
from dynamics.knobs import ConfigError

from . import cli_sweep

SWEEP_ONLY = ("resume", "scheduler", "workers", "threads", "device")   # options an in-process run refuses


def add_reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", nargs="?", default=None, help=", ".join(EXPERIMENTS))
    p.add_argument("--list", action="store_true", help="list the experiments")
    cli_sweep.add_run_options(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")


def main_reproduce(args) -> int:
    if args.list and args.name in EXPERIMENTS:     # one experiment: its whole description
        _describe(EXPERIMENTS[args.name], whole=True)
        return 0
    if args.list or args.name is None:
        for e in EXPERIMENTS.names():
            _describe(EXPERIMENTS[e])
        print("(effgan reproduce --list NAME: the whole description of one)")
        return 0
    if args.name not in EXPERIMENTS:
        raise ConfigError(f"NAME: unknown experiment {args.name!r}; allowed {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[args.name]
    out = Path(args.out) if args.out else cli_sweep.DEFAULT_ROOT / (exp.name + ("-quick" if args.quick else ""))
    if not exp.sweep:
        _prepare_in_process(exp.name, args, out)
    summary = exp.run(out, args.quick, _hooks(args))
    if summary is None:                       # an incomplete sweep: its report says what is missing
        return 1
    if exp.sweep:                             # the sweep's report came first; then its summary
        for name in [*summary.get("figures", []), "summary.json"]:     # figures the experiment drew itself
            print(f"wrote {out / name}")
        print(exp.headline(summary))
    else:                                     # an in-process run: its headline, then what it wrote
        print(exp.headline(summary))
        for name in ["results.nc", *summary["figures"], "summary.json"]:
            print(f"wrote {out / name}")
    return 0


def _describe(e, whole: bool = False) -> None:
    doc = " ".join(e.doc.split())
    if whole:
        print(e.name)
        print(textwrap.fill(doc, 100, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False))
    else:
        print(f"{e.name:<20} {doc[:100]}{'…' if len(doc) > 100 else ''}")
    if e.paper != "main":                     # the companion papers are credited; the main paper is the tool's own
        print(f"{'':<20} after {e.citation}")


def _prepare_in_process(name: str, args, out: Path) -> None:
    for option in SWEEP_ONLY:
        if getattr(args, option):
            raise ConfigError(f"--{option}: {name} runs in this process in seconds to minutes, on the CPU; "
                              "allowed --out, --quick, --no-figures")
    if (out / "results.nc").exists():
        raise ConfigError(f"--out: {out} already holds results; allowed a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise ConfigError(f"--out: cannot create {out}; allowed a writable folder") from None


def _hooks(args) -> Hooks:
    def sweep(spec, out: Path):
        report, figures = cli_sweep.execute(spec, argparse.Namespace(**{**vars(args), "out": out}),
                                            resume=args.resume)
        cli_sweep.print_report(report, figures)
        return report
    def draw(kind: str, ds, out: Path) -> list:
        from .plots.companion import draw      # lazily: a sweep or --no-figures never loads the plotting stack
        return draw(kind, ds, out)
    return Hooks(sweep=sweep, draw=None if args.no_figures else draw, progress=not args.no_progress)
