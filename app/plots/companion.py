"""Figures of the companion-paper gallery (`dynamics.experiments.companion`), drawn headless with
HoloViews' matplotlib backend. One function per experiment: `NAME(ds, out_dir) -> [png paths]`,
taking the experiment's results Dataset (`out_dir/results.nc`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from app.plots.figures import CYCLE, save

DPI = 130


def _hv():
    """HoloViews on the Agg canvas with the matplotlib backend (loaded on first use)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import holoviews as hv
    hv.extension("matplotlib", logo=False)
    hv.Store.set_current_backend("matplotlib")
    return hv


def _box(ratio: float):
    """Plot hook: fixed box shape whatever the axis scales."""
    def hook(plot, element):
        ax = plot.handles["axis"]
        ax.set_aspect("auto")
        ax.set_box_aspect(ratio)
    return hook


def _write(hv, panels, out_dir, name: str, cols: int) -> list[Path]:
    layout = hv.Layout(panels).cols(cols).opts(sublabel_format="", fig_inches=4.0)
    return [save(layout, Path(out_dir) / f"{name}.png", dpi=DPI)]


def _band(hv, x, samples, kdim, vdim, color, label, log=False):
    """Median line, min-max band and the samples as dots; samples: (len(x), S)."""
    s = np.asarray(samples, float)
    lo, hi, mid = s.min(1), s.max(1), np.median(s, 1)
    if log:
        lo = np.where(lo > 0, lo, np.nan)
    return [hv.Area((x, lo, hi), kdims=[kdim], vdims=[vdim, "hi"]).opts(color=color, alpha=0.2, linewidth=0),
            hv.Scatter((np.repeat(x, s.shape[1]), s.ravel()), kdim, vdim).opts(color=color, s=6, alpha=0.5),
            hv.Curve((x, mid), kdim, vdim, label=label).opts(color=color, linewidth=2)]


# ---------------------------------------------------------------- separation
def separation(ds: xr.Dataset, out_dir) -> list[Path]:
    """Left: d_F1/d_F2 against d with sqrt(N_{k,d}) and the finite-sample estimates (F1, F2 and
    their nulls). Right: mean P_k(x_d) of particles leaving μ under each critic, ν's and μ's
    means marked."""
    hv = _hv()
    d = hv.Dimension("d", label="sphere dimension d")
    r = hv.Dimension("ratio", label="d_F1 / d_F2")
    th = ds.d_theory.values
    ds_s = ds.d_sample.values
    finite = (ds.f1 / ds.f2).values
    left = [hv.Curve((th, ds.sqrt_n_harmonics.values), d, r, label="√N_{k,d}").opts(color="black", linestyle="--"),
            hv.Scatter((th, ds.theory_ratio.values), d, r, label="quadrature").opts(color=CYCLE[0], s=60),
            hv.Scatter((np.repeat(ds_s, finite.shape[1]), finite.ravel()), d, r, label="finite n (F2 at its floor)")
            .opts(color=CYCLE[1], s=30, marker="s")]
    ipm = hv.Dimension("ipm", label="IPM estimate")
    mid = []
    for i, (key, label) in enumerate([("f1", "F1"), ("f1_null", "F1 null"), ("f2", "F2"), ("f2_null", "F2 null")]):
        v = ds[key].values
        col = CYCLE[i // 2]
        mid.append(hv.Scatter((np.repeat(ds_s, v.shape[1]), v.ravel()), d, ipm, label=label)
                   .opts(color=col, s=30, marker="o" if "null" not in key else "X"))
    mid += [hv.Curve((th, ds.theory_f1.values), d, ipm, label="F1 theory").opts(color=CYCLE[0], linestyle="--"),
            hv.Curve((th, ds.theory_f2.values), d, ipm, label="F2 theory").opts(color=CYCLE[1], linestyle="--")]
    step = hv.Dimension("step")
    p = hv.Dimension("mean_p", label="mean P_k(x_d / |x|)")
    steps = ds.snapshot_step.values
    right = []
    for i, cr in enumerate(ds.critic.values):
        right += _band(hv, steps, ds.mean_p.sel(critic=cr).values.T, step, p, CYCLE[i], str(cr))
    ends = [float(steps.min()), float(steps.max())]
    right += [hv.Curve((ends, [ds.attrs["nu_mean_p"]] * 2), step, p, label="ν (target)")
              .opts(color="black", linestyle="--"),
              hv.Curve((ends, [ds.attrs["mu_mean_p"]] * 2), step, p, label="μ (start)")
              .opts(color="gray", linestyle=":")]
    small = {"legend": 7}
    panels = [hv.Overlay(left).opts(logy=True, title="d_F1 / d_F2 against √N(k, d)", legend_position="top_left",
                                    fontsize=small, hooks=[_box(0.8)]),
              hv.Overlay(mid).opts(logy=True, title=f"IPMs at n = {ds.attrs.get('n', '')}", fontsize=small,
                                   legend_position="bottom_left", legend_cols=2, hooks=[_box(0.8)]),
              hv.Overlay(right).opts(title="particles from μ towards ν (engine)", legend_position="right",
                                     fontsize=small, hooks=[_box(0.8)])]
    return _write(hv, panels, out_dir, "separation", 3)


# ---------------------------------------------------------------- ipm-vs-kl
def ipm_vs_kl(ds: xr.Dataset, out_dir) -> list[Path]:
    """Test IPM against KL(p‖q) (log axis; q = p, where KL = 0, left out) and against W1 with
    the line IPM = W1, coloured by the number of dropped modes; Spearman ρ in the titles."""
    from scipy.stats import spearmanr
    hv = _hv()
    y = hv.Dimension("test_ipm", label="test IPM (ReLU neuron)")
    ipm, dropped = ds.test_ipm.values, ds.dropped.values
    panels = []
    for key, label, short in (("kl_pq", "KL(p ‖ q)  [nats]", "KL(p ‖ q)"), ("w1", "W1 (exact assignment)", "W1")):
        x = hv.Dimension(key, label=label)
        xs = ds[key].values
        keep = xs > 0 if key == "kl_pq" else np.ones(len(xs), bool)
        rho = spearmanr(xs, ipm)[0]
        layers = [hv.Points((xs[keep], ipm[keep], dropped[keep]), kdims=[x, y], vdims=["dropped"])
                  .opts(color="dropped", cmap="viridis", s=45, colorbar=key == "w1", clim=(0, 7))]
        if key == "w1":
            span = [0.0, float(xs.max())]
            layers.append(hv.Curve((span, span), x, y, label="IPM = W1").opts(color="black", linestyle="--"))
        panels.append(hv.Overlay(layers).opts(logx=key == "kl_pq", title=f"test IPM vs {short}: Spearman {rho:.2f}",
                                              legend_position="top_left", hooks=[_box(0.8)]))
    return _write(hv, panels, out_dir, "ipm_vs_kl", 2)


# ---------------------------------------------------------------- ct-balance
def ct_balance(ds: xr.Dataset, out_dir) -> list[Path]:
    """Top: final particles (seed 0) for ρ = 0, 0.5, 1, engine with and without the step clip and
    the clipped prototype, each mode
    circled at the high-quality radius. Bottom: modes covered and high-quality fraction against step."""
    hv = _hv()
    centers = np.array(json.loads(ds.attrs["centers"]))
    radius = float(ds.attrs["radius"])             # circles: where a particle counts as on a mode
    panels = []
    for run in ds.run.values:
        for rho in ds.rho.values:
            x = ds.positions.sel(run=run, rho=rho).isel(seed=0, snapshot=-1).values
            cov = int(ds.modes_covered.sel(run=run, rho=rho).isel(seed=0, snapshot=-1))
            q = float(ds.quality.sel(run=run, rho=rho).isel(seed=0, snapshot=-1))
            rings = [hv.Ellipse(cx, cy, 2 * radius).opts(color="0.55", linewidth=1) for cx, cy in centers]
            el = hv.Overlay(rings + [hv.Points(x, ["x", "y"]).opts(
                color=CYCLE[int(np.argmax(ds.rho.values == rho))], s=10, alpha=0.6)])
            panels.append(el.opts(xlim=(-2, 2), ylim=(-2, 2), aspect="equal",
                                  title=f"{run}, ρ = {rho:g}: {cov}/8 modes, quality {q:.2f}"))
    step = hv.Dimension("step")
    for key, label in (("modes_covered", "modes covered (of 8)"), ("quality", "high-quality fraction")):
        v = hv.Dimension(key, label=label)
        layers = []
        for i, rho in enumerate(ds.rho.values):
            for run, dash in zip(ds.run.values, ("-", ":", "--")):
                m = ds[key].sel(run=run, rho=rho).mean("seed").values
                layers.append(hv.Curve((ds.snapshot_step.values, m), step, v, label=f"ρ = {rho:g} ({run})")
                              .opts(color=CYCLE[i], linestyle=dash))
        panels.append(hv.Overlay(layers).opts(legend_position="right" if key == "quality" else "bottom_right",
                                              show_legend=key == "quality", title=label, hooks=[_box(0.8)]))
    return _write(hv, panels, out_dir, "ct_balance", len(ds.rho))


# ---------------------------------------------------------------- double-descent
def double_descent(ds: xr.Dataset, out_dir) -> list[Path]:
    """Left: W2² error against q (log-log), pseudo-supervised and metric learners, q = n
    marked. Right: κ(ZᵀZ) with its Marchenko–Pastur limit."""
    hv = _hv()
    q = hv.Dimension("q", label="latent dimension q")
    e = hv.Dimension("w2", label="W2² generalisation error")
    qs = ds.q.values.astype(float)
    n = ds.attrs["n"]
    tr = ds.pseudo.transpose("q", "trial").values
    left = _band(hv, qs, np.quantile(tr, [0.25, 0.5, 0.75], 1).T, q, e, CYCLE[0], "pseudo-supervised", log=True)
    left += _band(hv, qs, np.quantile(ds.metric.transpose("q", "trial").values, [0.25, 0.5, 0.75], 1).T,
                  q, e, CYCLE[1], "metric learner", log=True)
    lo, hi = float(np.nanmin(tr[tr > 0])), float(np.nanmax(tr))
    left.append(hv.Curve(([n, n], [lo, hi]), q, e, label=f"q = n = {n}").opts(color="black", linestyle="--"))
    k = hv.Dimension("kappa", label="κ(ZᵀZ)")
    kap = ds.kappa.transpose("q", "trial").values
    right = _band(hv, qs, np.quantile(kap, [0.25, 0.5, 0.75], 1).T, q, k, CYCLE[2], "median (IQR)", log=True)
    mp = ds.kappa_mp.values
    ok = np.isfinite(mp)
    right.append(hv.Curve((qs[ok], mp[ok]), q, k, label="Marchenko–Pastur").opts(color="black", linestyle=":"))
    panels = [hv.Overlay(left).opts(logx=True, logy=True, title="double descent (median, IQR)",
                                    legend_position="top_right", hooks=[_box(0.8)]),
              hv.Overlay(right).opts(logx=True, logy=True, title="conditioning of the codes",
                                     legend_position="top_right", hooks=[_box(0.8)])]
    return _write(hv, panels, out_dir, "double_descent", 2)


def draw(kind: str, ds: xr.Dataset, out_dir) -> list[Path]:
    """The drawer `dynamics.experiments.companion` runs take as `figures`: kind names a function above."""
    return {"separation": separation, "ipm_vs_kl": ipm_vs_kl, "ct_balance": ct_balance,
            "double_descent": double_descent}[kind](ds, out_dir)
