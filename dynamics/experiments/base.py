"""The one contract every `effgan reproduce` experiment fills, the one registry, and the two
builders: `sweep_experiment` (a packaged sweep spec plus a physics summary) and `finish` (the
last step of an experiment that runs in this process: results.nc, its figure, summary.json)."""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import xarray as xr

from .. import assets
from ..papers import CITATIONS
from ..registry import Registry

SWEEPS = assets.root() / "sweeps"


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What the app hands a run, so `dynamics` never imports the app or the plotting stack.

    sweep(spec, out) -> sweep.execute.Report: run the spec with the app's sweep options, draw
    and report what it wrote. draw(kind, ds, out) -> files: draw a figure; None: no figures."""
    sweep: Callable | None = None
    draw: Callable | None = None
    progress: bool = True          # a line on stderr per phase of an in-process run


def phase(hooks: Hooks, experiment: str, text: str) -> None:
    """Say what a phase of a long in-process run does and roughly how long it takes."""
    if hooks.progress:
        print(f"{experiment}: {text}", file=sys.stderr, flush=True)


def steps_progress(hooks: Hooks, label: str, steps: int):
    """A `run.Progress` for a simulation phase (a time estimate once it is over ~10 s), or None."""
    from ..run import Progress
    return Progress(steps, label) if hooks.progress else None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """name: the `effgan reproduce` NAME; doc: what it shows, one line (`--list` shows its first
    100 characters); paper: the key of `papers.CITATIONS` it reproduces; run(out, quick, hooks)
    -> the summary written to out/summary.json (None: a sweep left incomplete);
    headline(summary) -> the line the terminal prints; sweep: it runs through `hooks.sweep` and
    takes the sweep options (--resume, --workers, ...), else it runs in this process."""
    name: str
    doc: str
    paper: str
    run: Callable[[Path, bool, Hooks], dict | None]
    headline: Callable[[dict], str]
    sweep: bool = False

    @property
    def citation(self) -> str:
        return CITATIONS[self.paper]


EXPERIMENTS: Registry[Experiment] = Registry("NAME")


def register(e: Experiment) -> Experiment:
    return EXPERIMENTS.add(e.name, e)


# ---------------------------------------------------------------- sweep-based experiments
def sweep_experiment(name: str, doc: str, summarize: Callable[[xr.Dataset], dict],
                     headline: Callable[[dict], str], paper: str = "main") -> Experiment:
    """An experiment whose data is the sweep `assets/sweeps/NAME.toml` (full size, with a
    [quick] table) and whose summary is `summarize(results)`."""
    def run(out: Path, quick: bool, hooks: Hooks) -> dict | None:
        from ..sweep.spec import load_spec
        from ..sweep.store import open_results
        report = hooks.sweep(load_spec(SWEEPS / f"{name}.toml", quick=quick), out)
        if not report.complete:
            return None
        summary = summarize(open_results(report.store))
        (report.out / "summary.json").write_text(json.dumps(summary, indent=1, default=_numpy_scalar))
        return summary
    return Experiment(name, doc, paper, run, headline, sweep=True)


def _numpy_scalar(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(type(v).__name__)


# ---------------------------------------------------------------- experiments run in this process
def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def done_in(summary: dict, physics: str = "") -> str:
    """The headline of an experiment run in this process: its name, the one line of physics it
    shows, and its wall time."""
    return f"{summary['experiment']}: {physics + '; ' if physics else ''}done in {summary['seconds']} s"


def jsonable(v):
    """Tensors, arrays and numpy scalars as JSON values; non-finite floats as null."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    return v


def finish(name: str, ds: xr.Dataset, cfg: dict, summary: dict, out: Path, draw: str, hooks: Hooks,
           started: float) -> dict:
    """Write results.nc, the figure(s) of kind `draw` (drawn by hooks.draw(draw, ds, out);
    hooks.draw None: no figures) and summary.json; return the summary."""
    from ..results import versions, write_netcdf
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds.attrs.update(experiment=name, config=json.dumps(cfg, sort_keys=True),
                    versions=json.dumps(versions()))
    write_netcdf(ds, out / "results.nc")
    figures = hooks.draw(draw, ds, out) if hooks.draw is not None else []
    summary = {"experiment": name, **summary, "figures": [Path(f).name for f in figures],
               "seconds": round(time.perf_counter() - started, 2)}
    summary = jsonable(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# CT's 8gaussians (Zheng & Zhou's data_loader.py): 8 centres on the circle of radius 2, sd 0.02,
# everything divided by 1.414; ct-balance runs on it and ipm-vs-kl drops its modes.
RING_MODES = 8
RING_STD = 0.02 / 1.414
