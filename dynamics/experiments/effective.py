"""The main paper's experiments (Durr et al. 2023): each a sweep spec in
`assets/sweeps/NAME.toml` (full size, with a [quick] table) plus a summary of the physics it
shows, written to `summary.json` beside the data (`results.zarr`, `results.nc`) and the
figures; run times are in BENCHMARKS.md.

  collapse-phase       modes covered over r × lr.disc, ReLU vs sigmoid critic: the collapse
                       threshold r_c rises with lr.disc, and the smooth (sigmoid) critic
                       collapses at smaller r, or needs a larger lr.disc, than the ReLU one
  critical-damping     t_conv against γ for the linear critic: the linearised dynamics is a
                       damped oscillator, fastest at γ_c = 2 √(lr.gen λ̄ / lr.disc),
                       λ̄ = (g1 + (N−1) g2)/N
  kernel-universality  relu_ntk spectrum against d_z: as d_z grows it collapses onto the two
                       levels g1 + (N−1) g2 (once) and g1 − g2 (N−1 times)
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from .. import theory
from .base import register, sweep_experiment

COLLAPSED = 0.5                  # a point is collapsed when it covers at most this fraction of the modes


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


# ---------------------------------------------------------------- headlines: one line of the physics
def collapse_headline(s: dict) -> str:
    parts = [f"{a}: r_c = {v['r_c']}" for a, v in s["by_activation"].items()]
    return "collapse threshold per lr.disc " + str([f"{x:.3g}" for x in s["lr.disc"]]) + ": " + "; ".join(parts)


def damping_headline(s: dict) -> str:
    return (f"gamma_c = {s['gamma_c']:.3f}; fastest at gamma = {s['gamma_best']:.3f} "
            f"({s['best_over_gamma_c']:.2f} gamma_c, {s['t_best']:.0f} steps); ends "
            f"{s['slowdown_low_end']:.1f}x and {s['slowdown_high_end']:.1f}x slower")


def spectrum_headline(s: dict) -> str:
    return (f"top eigenvalue {s['top'][-1]:.3f} vs g1+(N-1)g2 = {s['top_theory']:.3f}; bulk spread "
            f"{s['bulk_relative_spread'][0]:.3f} -> {s['bulk_relative_spread'][-1]:.3f} (relative to g1-g2)")


register(sweep_experiment("collapse-phase", "modes covered over coupling r and lr.disc, ReLU vs sigmoid critic",
                          collapse_summary, collapse_headline))
register(sweep_experiment("critical-damping", "convergence time against the penalty γ (linear critic), γ_c marked",
                          damping_summary, damping_headline))
register(sweep_experiment("kernel-universality", "relu_ntk spectrum against d_z collapsing onto two levels",
                          spectrum_summary, spectrum_headline))
