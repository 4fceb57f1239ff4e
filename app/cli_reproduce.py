"""`effgan reproduce NAME [--quick] [--out DIR]`: the experiments live in `dynamics.experiments`;
the app hands them its sweep options, the sweep runner (which draws the sweep figures) and the
companion papers' figure drawer, so `dynamics` never imports the plotting stack."""
from __future__ import annotations

import argparse

from dynamics.experiments import effective

from . import cli_sweep


def add_reproduce_arguments(p: argparse.ArgumentParser) -> None:
    effective.add_reproduce_arguments(p, cli_sweep.add_run_options)


def main_reproduce(args) -> int:
    from .plots.companion import draw
    return effective.main_reproduce(args, execute=cli_sweep.execute, print_report=cli_sweep.print_report,
                                    root=cli_sweep.DEFAULT_ROOT, draw=draw)
