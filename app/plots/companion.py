"""Figures of the companion-paper gallery (the companion-paper modules of `dynamics.experiments`), drawn headless with
HoloViews' matplotlib backend in the figure style (`app.plots.style`), two columns wide. One
function per experiment: `NAME(ds, out_dir) -> [png paths]`, taking the experiment's results
Dataset (`out_dir/results.nc`); each draws what its paper plots (axes, scales, the quantity on
the colour axis) and writes the paper's citation into the file's metadata.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import xarray as xr

from app.plots import style
from app.plots.figures import CYCLE, _hv, _shape, save
from dynamics.papers import CITATIONS, SHORT

DPI = style.DPI
PAPERS = {"separation": "A", "ipm_vs_kl": "B", "ct_balance": "C", "double_descent": "D"}   # CITATIONS keys


def _write(hv, panels, out_dir, name: str, cols: int, vspace: float = 0.1) -> list[Path]:
    layout = hv.Layout(panels).cols(cols).opts(sublabel_format="", fig_inches=4.0, vspace=vspace)
    paper = PAPERS[name]
    return [save(layout, Path(out_dir) / f"{name}.png", dpi=DPI, width="double",
                 title=f"{name.replace('_', '-')} (after {SHORT[paper]})", citation=CITATIONS[paper])]


def _band(hv, x, samples, kdim, vdim, color, label, log=False):
    """Median line, min-max band and the samples as dots; samples: (len(x), S)."""
    s = np.asarray(samples, float)
    lo, hi, mid = s.min(1), s.max(1), np.median(s, 1)
    if log:
        lo = np.where(lo > 0, lo, np.nan)
    return [hv.Area((x, lo, hi), kdims=[kdim], vdims=[vdim, "hi"]).opts(color=color, alpha=0.2, linewidth=0),
            hv.Scatter((np.repeat(x, s.shape[1]), s.ravel()), kdim, vdim).opts(color=color, s=14, alpha=0.6),
            hv.Curve((x, mid), kdim, vdim, label=label).opts(color=color, linewidth=2)]


# ---------------------------------------------------------------- separation
def separation(ds: xr.Dataset, out_dir) -> list[Path]:
    """As paper A plots it. Left: d_F1/d_F2 against sqrt(N_{k,d}) (log-log), the quadrature
    and the finite-sample ratios, with the line ratio = sqrt(N_{k,d}). Middle: the F1 and F2
    IPMs against d (log y), min-max bands over seeds, their nulls and theory values. Right:
    mean P_k(x_d) of particles leaving mu under each critic, nu's and mu's means marked."""
    hv = _hv()
    sq = hv.Dimension("sqrt_n", label=r"$\sqrt{N_{k,d}}$")
    r = hv.Dimension("ratio", label=r"$d_{\mathcal{F}_1}/d_{\mathcal{F}_2}$")
    th, ds_s = ds.d_theory.values, ds.d_sample.values
    sqrt_n = ds.sqrt_n_harmonics.values
    sqrt_n_s = np.interp(ds_s, th, sqrt_n)                   # N_{k,d} at the sampled dimensions
    finite = (ds.f1 / ds.f2).transpose("d_sample", "seed").values
    ends = [float(sqrt_n.min()), float(sqrt_n.max())]
    left = [hv.Curve((ends, ends), sq, r, label=r"ratio $= \sqrt{N_{k,d}}$").opts(color="black", linestyle="--"),
            hv.Scatter((sqrt_n, ds.theory_ratio.values), sq, r, label="quadrature").opts(color=CYCLE[0], s=40),
            hv.Scatter((np.repeat(sqrt_n_s, finite.shape[1]), finite.ravel()), sq, r,
                       label=f"finite $n$ = {ds.attrs.get('n', '')}").opts(color=CYCLE[1], s=25, marker="s")]
    d = hv.Dimension("d", label="sphere dimension $d$")
    ipm = hv.Dimension("ipm", label="IPM")
    mid = []
    for i, (key, label) in enumerate([("f1", r"$\mathcal{F}_1$"), ("f2", r"$\mathcal{F}_2$")]):
        mid += _band(hv, ds_s, ds[key].transpose("d_sample", "seed").values, d, ipm, CYCLE[i], label, log=True)
        null = ds[f"{key}_null"].transpose("d_sample", "seed").values
        mid.append(hv.Scatter((np.repeat(ds_s, null.shape[1]), null.ravel()), d, ipm, label=f"{label} null")
                   .opts(color=CYCLE[i], s=14, marker="v"))
        mid.append(hv.Curve((th, ds[f"theory_{key}"].values), d, ipm, label=f"{label} theory")
                   .opts(color=CYCLE[i], linestyle="--"))
    step = hv.Dimension("step")
    p = hv.Dimension("mean_p", label=r"mean $P_k(x_d/|x|)$")
    steps = ds.snapshot_step.values
    right = []
    for i, cr in enumerate(ds.critic.values):
        right += _band(hv, steps, ds.mean_p.sel(critic=cr).values.T, step, p, CYCLE[i], style.value_name(cr))
    ends = [float(steps.min()), float(steps.max())]
    right += [hv.Curve((ends, [ds.attrs["nu_mean_p"]] * 2), step, p, label=r"$\nu$ (target)")
              .opts(color="black", linestyle="--"),
              hv.Curve((ends, [ds.attrs["mu_mean_p"]] * 2), step, p, label=r"$\mu$ (start)")
              .opts(color="gray", linestyle=":")]
    panels = [hv.Overlay(left).opts(logx=True, logy=True, title="separation ratio", hooks=[_shape(0.8)]),
              hv.Overlay(mid).opts(logy=True, title="IPMs against $d$", hooks=[_shape(0.8)], ylim=_span(mid)),
              hv.Overlay(right).opts(title=r"particles from $\mu$ towards $\nu$", hooks=[_shape(0.8)])]
    return _write(hv, panels, out_dir, "separation", 3)


def _span(elements) -> tuple[float, float]:
    """A log axis' range over every positive value drawn (HoloViews' own range can drop a
    band of one point, and with it a whole critic's values)."""
    v = np.concatenate([np.asarray(e.dimension_values(i), float) for e in elements for i in (1, 2)
                        if i < len(e.dimensions())])
    v = v[np.isfinite(v) & (v > 0)]
    return (float(v.min()) / 1.5, float(v.max()) * 1.5) if v.size else (None, None)


# ---------------------------------------------------------------- ipm-vs-kl
def ipm_vs_kl(ds: xr.Dataset, out_dir) -> list[Path]:
    """As paper B plots it: the test IPM against KL(p||q) (log axis; q = p, where KL = 0, left
    out) and against W1 with the line IPM = W1, the colour axis the number of modes the generator
    dropped (its colour bar named so); Spearman rho in the titles."""
    from scipy.stats import spearmanr
    hv = _hv()
    y = hv.Dimension("test_ipm", label=style.metric_label("test_ipm"))
    ipm, dropped = ds.test_ipm.values, ds.dropped.values
    top = max(int(np.max(dropped)), 1)
    panels = []
    for key, short in (("kl_pq", r"KL$(p\,\|\,q)$"), ("w1", "$W_1$")):
        x = hv.Dimension(key, label=style.metric_label(key))
        xs = ds[key].values
        keep = xs > 0 if key == "kl_pq" else np.ones(len(xs), bool)
        rho = spearmanr(xs, ipm)[0]
        layers = [hv.Points((xs[keep], ipm[keep], dropped[keep]), kdims=[x, y],
                            vdims=[hv.Dimension("dropped", label=style.metric_label("dropped"))])
                  .opts(color="dropped", cmap=style.CMAP, s=30, colorbar=True, clim=(0, top),
                        clabel=style.metric_label("dropped"))]
        if key == "w1":
            span = [0.0, float(xs.max())]
            layers.append(hv.Curve((span, span), x, y, label="IPM $= W_1$").opts(color="black", linestyle="--"))
        title = f"against {short}: Spearman $\\rho$ = {rho:.2f}"
        panels.append(hv.Overlay(layers).opts(logx=key == "kl_pq", title=title, hooks=[_shape(0.8)]))
    return _write(hv, panels, out_dir, "ipm_vs_kl", 2)


# ---------------------------------------------------------------- ct-balance
SMOOTH = 200        # points of the monotone cubic through the recorded means (ct-balance's curves)


def _smooth(steps, values):
    """(x, y) of a shape-preserving (PCHIP) curve through the recorded points: no overshoot of
    the data between records, no wiggles; the records themselves are marked beside it."""
    from scipy.interpolate import PchipInterpolator
    steps, values = np.asarray(steps, float), np.asarray(values, float)
    if len(steps) < 3:
        return steps, values
    xs = np.union1d(np.linspace(steps[0], steps[-1], SMOOTH), steps)    # through each record exactly
    return xs, PchipInterpolator(steps, values)(xs)


def ct_balance(ds: xr.Dataset, out_dir) -> list[Path]:
    """As paper C shows it. Top: final particles (seed 0) for rho = 0, 0.5, 1, engine with and
    without the step clip and the clipped prototype, each mode circled at the high-quality
    radius. Bottom: modes covered and the high-quality fraction against step, seed means as a
    smooth line through the recorded points (marked)."""
    hv = _hv()
    centers = np.array(json.loads(ds.attrs["centers"]))
    radius = float(ds.attrs["radius"])             # circles: where a particle counts as on a mode
    modes = len(centers)
    panels = []
    xy = [hv.Dimension("x", label="$x_1$"), hv.Dimension("y", label="$x_2$")]
    for run in ds.run.values:
        for rho in ds.rho.values:
            x = ds.positions.sel(run=run, rho=rho).isel(seed=0, snapshot=-1).values
            cov = int(ds.modes_covered.sel(run=run, rho=rho).isel(seed=0, snapshot=-1))
            q = float(ds.quality.sel(run=run, rho=rho).isel(seed=0, snapshot=-1))
            rings = [hv.Ellipse(cx, cy, 2 * radius).opts(color="0.55", linewidth=1) for cx, cy in centers]
            el = hv.Overlay(rings + [hv.Points(x, xy).opts(
                color=CYCLE[int(np.argmax(ds.rho.values == rho))], s=16, alpha=0.6)])
            panels.append(el.opts(xlim=(-2, 2), ylim=(-2, 2), aspect="equal", xlabel="$x_1$", ylabel="$x_2$",
                                  title=f"{run}, $\\rho$ = {rho:g}\n{cov}/{modes} modes, quality {q:.2f}"))
    step = hv.Dimension("step")
    steps = ds.snapshot_step.values
    for key, label in (("modes_covered", f"modes covered (of {modes})"), ("quality", style.metric_label("quality"))):
        v = hv.Dimension(key, label=label)
        layers = []
        for i, rho in enumerate(ds.rho.values):
            for run, dash in zip(ds.run.values, ("-", ":", "--")):
                m = ds[key].sel(run=run, rho=rho).mean("seed").values
                layers.append(hv.Curve(_smooth(steps, m), step, v, label=f"$\\rho$ = {rho:g} ({run})")
                              .opts(color=CYCLE[i], linestyle=dash, linewidth=1.2))
                layers.append(hv.Scatter((steps, m), step, v).opts(color=CYCLE[i], s=6))
        panels.append(hv.Overlay(layers).opts(show_legend=key == "quality", title=label, hooks=[_shape(0.8)]))
    return _write(hv, panels, out_dir, "ct_balance", len(ds.rho), vspace=0.45)


# ---------------------------------------------------------------- double-descent
def double_descent(ds: xr.Dataset, out_dir) -> list[Path]:
    """As paper D plots it. Left: W2^2 error against the latent dimension q (log y; log x to
    show q from 1 to 20n), the pseudo-supervised and metric learners on one plot, q = n marked.
    Right: kappa(Z^T Z) with its Marchenko-Pastur limit."""
    hv = _hv()
    q = hv.Dimension("q", label="latent dimension $q$")
    e = hv.Dimension("w2", label=style.metric_label("w2"))
    qs = ds.q.values.astype(float)
    n = ds.attrs["n"]
    tr = ds.pseudo.transpose("q", "trial").values
    left = _band(hv, qs, np.quantile(tr, [0.25, 0.5, 0.75], 1).T, q, e, CYCLE[0], "pseudo-supervised", log=True)
    left += _band(hv, qs, np.quantile(ds.metric.transpose("q", "trial").values, [0.25, 0.5, 0.75], 1).T,
                  q, e, CYCLE[1], "metric learner", log=True)
    lo, hi = float(np.nanmin(tr[tr > 0])), float(np.nanmax(tr))
    left.append(hv.Curve(([n, n], [lo, hi]), q, e, label=f"$q = n$ = {n}").opts(color="black", linestyle="--"))
    k = hv.Dimension("kappa", label=style.metric_label("kappa"))
    kap = ds.kappa.transpose("q", "trial").values
    right = _band(hv, qs, np.quantile(kap, [0.25, 0.5, 0.75], 1).T, q, k, CYCLE[2], "median (IQR)", log=True)
    mp = ds.kappa_mp.values
    ok = np.isfinite(mp)
    right.append(hv.Curve((qs[ok], mp[ok]), q, k, label="Marchenko–Pastur").opts(color="black", linestyle=":"))
    panels = [hv.Overlay(left).opts(logx=True, logy=True, title="double descent (median, IQR)", hooks=[_shape(0.8)]),
              hv.Overlay(right).opts(logx=True, logy=True, title="conditioning of the codes", hooks=[_shape(0.8)])]
    return _write(hv, panels, out_dir, "double_descent", 2)


# ---------------------------------------------------------------- mnist-phase (the main paper)
FEW_TICKS = 6                                # up to this many φ values get a tick each


def zero_at(phi) -> float:
    """Where φ = 0 sits on the log axis: 1.5 grid steps left of the smallest positive φ, at least
    a factor 3 (room for its label)."""
    pos = np.sort(np.asarray(phi, float)[np.asarray(phi) > 0])
    step = pos[1] / pos[0] if len(pos) > 1 else 3.0
    return float(pos[0] / max(step ** 1.5, 3.0))


def mnist_phase_plot(ds: xr.Dataset, title: str = ""):
    """One dot per run at (φ, η_D), log-log, coloured by center_kl (seed mean) on 0 … log K, with
    a colour bar; φ = 0 at the left edge, labelled 0 and set off by a dotted line."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator
    hv = _hv()
    kl = ds["final_center_kl"].mean("seed").transpose("kernel.ratio", "lr.disc")
    phi, eta = ds["kernel.ratio"].values.astype(float), ds["lr.disc"].values.astype(float)
    x0 = zero_at(phi)
    xs = np.where(phi > 0, phi, x0)
    X, Y = np.meshgrid(xs, eta, indexing="ij")
    K = int(ds["final_modes_total"].max())
    x, y = hv.Dimension("kernel.ratio", label=style.axis_label("kernel.ratio")), \
        hv.Dimension("lr.disc", label=style.axis_label("lr.disc"))
    c = hv.Dimension("center_kl", label=r"KL$(p\,\|\,\mathrm{uniform})$")
    pos = np.sort(phi[phi > 0])
    cut = np.sqrt(x0 * pos[0])                   # the dotted line between φ = 0 and the log axis
    if len(pos) <= FEW_TICKS:                    # a small grid: tick every φ
        ticks, labels = list(pos), [f"{v:.3g}" for v in pos]
    else:                                        # the full grid: the decades right of the line
        ticks = [10.0 ** k for k in range(int(np.floor(np.log10(pos[0]))), 1) if 10.0 ** k > cut]
        labels = [f"$10^{{{int(np.log10(d))}}}$" for d in ticks]

    def zero_tick(plot, element):
        ax = plot.handles["axis"]
        ax.xaxis.set_major_locator(FixedLocator([x0] + ticks))
        ax.xaxis.set_major_formatter(FixedFormatter(["0"] + labels))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.axvline(cut, color="gray", linestyle=":", linewidth=0.6)
        ax.set_xlim(x0 / 1.5, max(1.0, phi.max()) * 1.3)
    pts = hv.Points((X.ravel(), Y.ravel(), kl.values.ravel()), kdims=[x, y], vdims=[c])
    return pts.opts(color="center_kl", cmap=style.CMAP, clim=(0.0, float(np.log(K))), colorbar=True,
                    clabel=c.label, s=22, logx=True, logy=True, title=title, cbar_padding=0.04,
                    hooks=[_shape(0.85), zero_tick])


def mnist_phase(ds: xr.Dataset, out_dir) -> list[Path]:
    """As the authors draw it: mnist-phase.png in the figure style and mnist-phase-black.png on
    their black background; the title says what a quick run reduces (ds.attrs['reduced'])."""
    reduced = ds.attrs.get("reduced", "")
    title = "mode collapse: MNIST, ReLU critic" + ("\n" + textwrap.fill(f"quick: {reduced}", 52) if reduced else "")
    obj = mnist_phase_plot(ds, title)
    meta = dict(title=f"mnist-phase (after {SHORT['main']})", citation=CITATIONS["main"])
    return [save(obj, Path(out_dir) / "mnist-phase.png", dpi=DPI, width="single", **meta),
            save(obj, Path(out_dir) / "mnist-phase-black.png", dpi=DPI, width="single", restyle=style.dark, **meta)]


def draw(kind: str, ds: xr.Dataset, out_dir) -> list[Path]:
    """The drawer the gallery experiments (`dynamics.experiments`) take as `figures`: kind names a function above."""
    return {"separation": separation, "ipm_vs_kl": ipm_vs_kl, "ct_balance": ct_balance,
            "double_descent": double_descent, "mnist_phase": mnist_phase}[kind](ds, out_dir)
