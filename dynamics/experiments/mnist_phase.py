"""`mnist-phase`: the one figure of Durr et al. (PRX 2023) whose settings are public, "Mode
Collapse: MNIST Data with ReLU Discriminator", with the authors' protocol (preset `mnist`).

A sweep (`assets/sweeps/mnist-phase.toml`) over φ = g2/g1 (their 0 and 25 log-spaced values
0.01 … 0.977) × η_D = lr.disc (18 values 1e-4 · 10^(k/12), 1e-4 … 2.61e-3): 468 runs of
T = 1000 particle steps with 20 critic steps each, batched along the engine's leading axis
(both are hyper knobs), resumable (--resume), ≈ 14 TFLOP a run: a GPU job. Each run is a dot
coloured by center_kl = KL(p‖uniform), p the share of particles whose cosine-nearest target is
image k (0: one particle per image; log 100 ≈ 4.61: all on one). The summary gives, per η_D
row, the collapse boundary φ_c: the smallest φ whose particles are fully collapsed, mean |cos|
between particles > 0.9 (the authors' collapsed runs; diverse ones sit near 0.3).
The authors found φ_c ≈ 0.4 at η_D ≈ 1e-4, ≈ 0.8 at 5e-4–8e-4 and no full collapse for
η_D ≥ 1e-3: a faster critic protects against collapse.

--quick (< 10 minutes on 2 CPU cores) keeps the protocol except for what `reduced` names:
grid 3 × 3 (φ ∈ {0, 0.376, 0.977}, η_D ∈ {1e-4, 4.64e-4, 2.61e-3}), T = 20 particle steps
instead of 1000; each step is the full protocol's (20 critic steps, 200 before the first). The
figure's title says the same, read off the two specs. T = 20 is an early state: the fast critics'
coupled runs have collapsed by then, the slow critic's (η_D = 1e-4) are still partial and, run on
with the same protocol, collapse fully by step ~160, so the quick headline's trend is the early one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import xarray as xr

from .base import SWEEPS, Experiment, Hooks, _numpy_scalar, register

NAME = "mnist-phase"
SPEC = SWEEPS / f"{NAME}.toml"
COLLAPSED_COS = 0.9              # full collapse: mean |cos| between particles above this (the authors' 0.30 → 1)
SHOWN = ("steps", "disc.steps", "disc.steps_first", "particles", "real", "disc.widths")   # named first


def reduced(quick, full) -> str:
    """What a quick spec changes against the full one, in words: the grid, then every knob that
    differs (the protocol's pieces first). Empty when nothing is reduced."""
    parts = []
    size = lambda s: " × ".join(str(len(a.values)) for a in s.axes)
    if [a.values for a in quick.axes] != [a.values for a in full.axes]:
        parts.append(f"grid {size(quick)} instead of {size(full)}")
    keys = [k for k in SHOWN if quick.config[k] != full.config[k]]
    keys += sorted(k for k in full.config if k not in SHOWN and k not in ("record.every", "record.snapshots")
                   and quick.config[k] != full.config[k])
    names = {"steps": "T", "disc.steps": "critic steps", "disc.steps_first": "first critic steps"}
    parts += [f"{names.get(k, k)} = {quick.config[k]} instead of {full.config[k]}" for k in keys]
    if len(quick.seeds) != len(full.seeds):
        parts.append(f"{len(quick.seeds)} seeds instead of {len(full.seeds)}")
    return ", ".join(parts)


def summarize(ds: xr.Dataset) -> dict:
    """Per η_D row (seed mean): center_kl and mean |cos| against φ, and the collapse boundary
    φ_c (None: no run of the row fully collapsed); the direction of φ_c with η_D."""
    kl = ds["final_center_kl"].mean("seed").transpose("lr.disc", "kernel.ratio").values
    cos = ds["final_mean_abs_cos"].mean("seed").transpose("lr.disc", "kernel.ratio").values
    phi, eta = ds["kernel.ratio"].values, ds["lr.disc"].values
    phi_c = [float(phi[np.argmax(row > COLLAPSED_COS)]) if (row > COLLAPSED_COS).any() else None for row in cos]
    return {"kernel.ratio": phi.tolist(), "lr.disc": eta.tolist(), "log_K": math.log(int(ds["final_modes_total"].max())),
            "center_kl": np.round(kl, 4).tolist(), "mean_abs_cos": np.round(cos, 4).tolist(),
            "collapsed_cos": COLLAPSED_COS, "phi_c": phi_c, "trend": trend(phi_c),
            "diverged_points": int(ds["final_diverged"].sum())}


def trend(phi_c: list) -> str:
    """How the boundary moves from the slowest to the fastest critic: 'rises' (a faster critic
    protects, the authors' result), 'falls', 'flat'; no collapse counts as beyond every φ."""
    a, b = (math.inf if v is None else v for v in (phi_c[0], phi_c[-1]))
    if a == b:
        return "flat" if a != math.inf else "none collapsed"
    return "rises" if b > a else "falls"


def headline(s: dict) -> str:
    rows = "; ".join(f"{e:.3g}: {'none' if c is None else f'{c:.3g}'}" for e, c in zip(s["lr.disc"], s["phi_c"]))
    said = {"rises": "a faster critic protects, as the authors found",
            "falls": "a faster critic collapses sooner, the reverse of the authors' result",
            "flat": "the same boundary for every critic rate", "none collapsed": "no run collapsed"}[s["trend"]]
    quick = f" [quick: {s['reduced']}]" if s.get("reduced") else ""
    return (f"full collapse (mean |cos| > {s['collapsed_cos']}) from g2/g1 = phi_c per eta_D: {rows}; "
            f"phi_c {s['trend']} with eta_D: {said}{quick}")


def run(out: Path, quick: bool, hooks: Hooks, spec=None) -> dict | None:
    """Run the sweep (the packaged spec, or `spec`: a test's tiny one through the same path),
    summarise it, draw the diagram through hooks.draw and write summary.json."""
    from ..sweep.spec import load_spec
    from ..sweep.store import open_results
    full = load_spec(SPEC)
    spec = spec or (load_spec(SPEC, quick=True) if quick else full)
    report = hooks.sweep(spec, out)
    if not report.complete:
        return None
    ds = open_results(report.store)
    ds.attrs["reduced"] = reduced(spec, full)
    summary = {"experiment": NAME, **summarize(ds), "reduced": ds.attrs["reduced"]}
    figures = hooks.draw("mnist_phase", ds, report.out) if hooks.draw is not None else []
    summary["figures"] = [Path(f).name for f in figures]
    (report.out / "summary.json").write_text(json.dumps(summary, indent=1, default=_numpy_scalar))
    return summary


register(Experiment(NAME, "MNIST collapse over g2/g1 × η_D, the authors' protocol; --quick: 3 × 3 grid, T = 20 "
                    "not 1000 (dots: KL(p||uniform))",
                    "main", run, headline, sweep=True))
