"""`effgan reproduce NAME [--quick] [--out DIR]`: named experiments, end to end.

Each experiment is a sweep spec in `assets/sweeps/NAME.toml` (full size, with a [quick]
table) plus a summary of the physics it shows, written to `summary.json` beside the data
(`results.zarr`, `results.nc`) and the figures. Run times on this project's 2 shared CPU
cores (measured with a load average of 5-9 from other jobs; `benchmarks/sweep.py`):

  collapse-phase       modes covered over r × lr.disc, ReLU vs sigmoid critic (notes §5.2)
                       --quick: 2 × 4 × 3 points, 1 seed, N = 32, 2000 steps: 20-45 s.
                       full: 2 × 20 × 20 points × 3 seeds, N = 64, 4000 steps (160 chunks of 15):
                       EXTRAPOLATED from 4 chunks, ~30 min on 2 dedicated cores (CPU time,
                       ~400 us per member-step), 1.5-2 h wall on the loaded machine.
  critical-damping     t_conv against γ for the linear critic, γ_c marked (notes §5.3)
                       --quick: 9 γ × 2 seeds, 3000 steps: ~5 s; full 33 γ × 5 seeds, 6000 steps:
                       55 s measured (39 s of it the sweep).
  kernel-universality  relu_ntk spectrum against d_z, two-level limit marked (notes §7)
                       --quick: 6 d_z × 3 seeds: ~3 s; full 14 d_z × 10 seeds: 25 s measured
                       (9 s of it the sweep; the rest imports and the figure).

The plotting stack stays out: the app passes in the sweep runner that draws the figures
(app/cli_reproduce.py), so `dynamics` never imports it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from .. import assets, theory
from ..knobs import ConfigError
from ..sweep.spec import Spec, load_spec

SWEEPS = assets.root() / "sweeps"
COLLAPSED = 0.5                  # a point is collapsed when it covers at most this fraction of the modes


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    doc: str
    summarize: Callable[[xr.Dataset], dict]

    def spec(self, quick: bool) -> Spec:
        return load_spec(SWEEPS / f"{self.name}.toml", quick=quick)


# ---------------------------------------------------------------- physics summaries
def collapse_summary(ds: xr.Dataset) -> dict:
    """Per critic type and lr.disc: modes covered against r (seed mean) and the collapse
    threshold r_c, the smallest r covering at most COLLAPSED of the modes (None: never)."""
    cov = ds["final_modes_covered"].mean("seed")
    K = int(ds["final_modes_total"].max()) if "final_modes_total" in ds else json.loads(ds.attrs["config"])["target.modes"]
    out = {"modes_total": K, "kernel.ratio": ds["kernel.ratio"].values.tolist(), "lr.disc": ds["lr.disc"].values.tolist(),
           "by_activation": {}}
    for act in ds["disc.activation"].values:
        c = cov.sel({"disc.activation": act}).transpose("lr.disc", "kernel.ratio").values
        r = ds["kernel.ratio"].values
        r_c = [float(r[np.argmax(row <= COLLAPSED * K)]) if (row <= COLLAPSED * K).any() else None for row in c]
        out["by_activation"][str(act)] = {"modes_covered": np.round(c, 3).tolist(), "r_c": r_c,
                                          "mean_modes_covered": float(np.nanmean(c))}
    out["diverged_points"] = int(ds["final_diverged"].sum())
    return out


def damping_summary(ds: xr.Dataset) -> dict:
    """t_conv (seed mean) against γ, where its minimum lies relative to γ_c, how much slower
    the ends of the range are; never-converged points count as the run length."""
    cfg = json.loads(ds.attrs["config"])
    t = ds["final_convergence_step"].astype(float)
    t = t.where(t >= 0, float(cfg["steps"]))                     # never converged: at least the run length
    mean = t.mean("seed").values
    g = ds["reg.strength"].values
    gc = theory.gamma_c(cfg)
    best = int(np.argmin(mean))
    return {"gamma_c": gc, "reg.strength": g.tolist(), "t_conv": mean.tolist(),
            "t_conv_theory": theory.damping_time(g, cfg, eps=0.05 * cfg["target.radius"],
                                                 e0=cfg["target.radius"] - cfg["init.shift"]).tolist(),
            "gamma_best": float(g[best]), "best_over_gamma_c": float(g[best] / gc), "t_best": float(mean[best]),
            "slowdown_low_end": float(mean[0] / mean[best]), "slowdown_high_end": float(mean[-1] / mean[best]),
            "never_converged": int((ds["final_convergence_step"] < 0).sum()),
            "diverged_points": int(ds["final_diverged"].sum())}


def spectrum_summary(ds: xr.Dataset) -> dict:
    """Per d_z: top eigenvalue and the bulk's spread (std of all but the top, seed mean),
    against the two-level limit."""
    cfg = json.loads(ds.attrs["config"])
    top_th, rel_th = theory.kernel_levels(cfg)
    lam = ds["spectrum"]
    top = lam.isel(eig=0).mean("seed").values
    bulk = lam.isel(eig=slice(1, None))
    spread = (bulk.std("eig") / rel_th).mean("seed").values
    return {"kernel.latent_dim": ds["kernel.latent_dim"].values.tolist(), "top": top.tolist(),
            "top_theory": top_th, "relative_theory": rel_th, "g2_over_g1": 1 - rel_th / cfg["kernel.g1"],
            "bulk_median": bulk.median("eig").mean("seed").values.tolist(),
            "bulk_relative_spread": spread.tolist(),
            "top_relative_error_last": float(abs(top[-1] - top_th) / top_th)}


EXPERIMENTS = {e.name: e for e in [
    Experiment("collapse-phase", "modes covered over coupling r and lr.disc, ReLU vs sigmoid critic",
               collapse_summary),
    Experiment("critical-damping", "convergence time against the penalty γ (linear critic), γ_c marked",
               damping_summary),
    Experiment("kernel-universality", "relu_ntk spectrum against d_z collapsing onto two levels", spectrum_summary),
]}


# ---------------------------------------------------------------- command line
# The app (app/cli_reproduce.py) passes in its sweep options, runner and figure drawer:
# `dynamics` never imports the app.
def add_reproduce_arguments(p: argparse.ArgumentParser, add_run_options: Callable) -> None:
    p.add_argument("name", metavar="NAME", nargs="?", default=None,
                   help=", ".join([*EXPERIMENTS, *companion_experiments()]))
    p.add_argument("--list", action="store_true", help="list the experiments")
    add_run_options(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")


def companion_experiments() -> dict:
    """The companion papers' experiments (separation, ipm-vs-kl, ct-balance, double-descent):
    closed-form or engine runs that are not grid sweeps, each with its own `run`."""
    from .companion import EXPERIMENTS as COMPANION
    return COMPANION


def main_reproduce(args, *, execute: Callable, print_report: Callable, root: Path, draw: Callable) -> int:
    companion = companion_experiments()
    if args.list or args.name is None:
        for e in EXPERIMENTS.values():
            print(f"{e.name:<20} {e.doc}")
        for e in companion.values():
            doc = " ".join(e.doc.split())
            print(f"{e.name:<20} {doc[:100]}{'…' if len(doc) > 100 else ''}")
            print(f"{'':<20} after {e.citation}")
        return 0
    if args.name in companion:
        for flag, value in (("--resume", args.resume), ("--scheduler", args.scheduler), ("--workers", args.workers),
                            ("--threads", args.threads), ("--device", args.device)):
            if value:
                raise ConfigError(f"{flag}: {args.name} runs in this process in seconds to minutes, on the CPU; "
                                  "allowed --out, --quick, --no-figures")
        out = Path(args.out) if args.out else root / (args.name + ("-quick" if args.quick else ""))
        if (out / "results.nc").exists():
            raise ConfigError(f"--out: {out} already holds results; allowed a new folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError:
            raise ConfigError(f"--out: cannot create {out}; allowed a writable folder") from None
        summary = companion[args.name].run(args.quick, out, figures=None if args.no_figures else draw)
        print(f"{args.name}: done in {summary['seconds']} s")
        for name in ["results.nc", *summary["figures"], "summary.json"]:
            print(f"wrote {out / name}")
        return 0
    exp = EXPERIMENTS.get(args.name)
    if exp is None:
        raise ConfigError(f"NAME: unknown experiment {args.name!r}; allowed "
                          f"{', '.join(list(EXPERIMENTS) + list(companion))}")
    report, figures = execute(exp.spec(args.quick), args, resume=args.resume)
    if not report.complete:
        print_report(report, figures)
        return 1
    from ..sweep.store import open_results
    summary = exp.summarize(open_results(report.store))
    path = report.out / "summary.json"
    path.write_text(json.dumps(summary, indent=1, default=_jsonable))
    print_report(report, figures)
    print(f"wrote {path}")
    print(headline(exp.name, summary))
    return 0


def headline(name: str, s: dict) -> str:
    """One line of the physics, for the terminal."""
    if name == "collapse-phase":
        parts = [f"{a}: r_c = {v['r_c']}" for a, v in s["by_activation"].items()]
        return "collapse threshold per lr.disc " + str([f"{x:.3g}" for x in s["lr.disc"]]) + ": " + "; ".join(parts)
    if name == "critical-damping":
        return (f"gamma_c = {s['gamma_c']:.3f}; fastest at gamma = {s['gamma_best']:.3f} "
                f"({s['best_over_gamma_c']:.2f} gamma_c, {s['t_best']:.0f} steps); ends "
                f"{s['slowdown_low_end']:.1f}x and {s['slowdown_high_end']:.1f}x slower")
    return (f"top eigenvalue {s['top'][-1]:.3f} vs g1+(N-1)g2 = {s['top_theory']:.3f}; bulk spread "
            f"{s['bulk_relative_spread'][0]:.3f} -> {s['bulk_relative_spread'][-1]:.3f} (relative to g1-g2)")


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    raise TypeError(type(v).__name__)
