"""`effgan figure RESULTS --kind phase|curve|spectrum ... --out FILE.{png,svg,pdf}`.

Publication figures of sweep (or run) results, drawn headless with HoloViews' matplotlib
backend (no browser):
  * phase     a metric over two axes, averaged over seeds, one panel per value of a third
              axis (the discriminator type); points where a seed diverged are crossed;
  * curve     a metric against one axis: the mean (or median) with the spread over seeds
              as a band and each seed as a dot, one curve per value of --hue; theory
              overlays: γ_c and the linearised convergence time on the damping curve;
              runs that never converged are marked above the data (▲, diverged ones ✕)
              and counted in the title and legend; the reductions are over the runs that
              did converge;
  * spectrum  the kernel eigenvalues against an axis (d_z), with the two-level limit, and
              the spread of the bulk against the same axis.
`figure(ds, kind, **options)` builds the HoloViews object; `save` writes it.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import xarray as xr

from app.plots import style
from dynamics import theory
from dynamics.knobs import KNOBS, ConfigError, resolve
from dynamics.sweep.store import open_results

KINDS = ("phase", "curve", "spectrum")
FORMATS = ("png", "svg", "pdf")
REDUCE = ("mean", "median", "min", "max")
SPREAD = ("std", "minmax", "none")
THEORY = ("auto", "none", "gamma_c", "two-level")
OPTIONS = ("metric", "x", "y", "panel", "hue", "reduce", "spread", "theory", "select", "title", "log", "dpi",
           "width")
SAMPLE_DIMS = ("seed", "member")             # what a figure reduces over
DPI = (10, 1200)                             # PNG resolution: beyond, matplotlib runs out of memory
CYCLE = style.CYCLE
WIDTHS = tuple(style.WIDTHS)                 # journal columns: single 3.4 in, double 7.0 in


# ---------------------------------------------------------------- command line
def add_figure_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", metavar="RESULTS", help="a sweep folder, .zarr store or .nc file (sweep or run results)")
    p.add_argument("--kind", default="phase", help=f"{', '.join(KINDS)} (default phase)")
    p.add_argument("--metric", default=None, help="variable to draw, e.g. modes_covered (final_ prefix optional)")
    p.add_argument("--x", default=None, help="axis along x (default: the first numeric axis)")
    p.add_argument("--y", default=None, help="phase: axis along y (default: the second numeric axis)")
    p.add_argument("--panel", default=None, help="phase: one panel per value of this axis (default: a text axis)")
    p.add_argument("--hue", default=None, help="curve: one curve per value of this axis")
    p.add_argument("--reduce", default="mean", help=f"over seeds: {', '.join(REDUCE)}")
    p.add_argument("--spread", default="std", help=f"curve band over seeds: {', '.join(SPREAD)}")
    p.add_argument("--theory", default="auto", help=f"overlay: {', '.join(THEORY)}")
    p.add_argument("--select", action="append", default=[], metavar="KEY=VALUE",
                   help="fix an axis that the figure does not show (repeatable; nearest value)")
    p.add_argument("--title", default=None)
    p.add_argument("--log", default="auto", help="log-scaled axes: auto, none, x, y or xy")
    p.add_argument("--dpi", type=int, default=style.DPI, help=f"resolution of PNG output (default {style.DPI})")
    p.add_argument("--width", default=None, help="single (3.4 in) or double (7.0 in) journal column "
                   "(default: single for one panel, double for several)")
    p.add_argument("--out", required=True, metavar="FILE.{png,svg,pdf}")


def main_figure(args) -> int:
    _check_out(args.out)
    ds = open_results(args.results)
    select = dict(_assignment(s) for s in args.select)
    obj = figure(ds, args.kind, metric=args.metric, x=args.x, y=args.y, panel=args.panel, hue=args.hue,
                 reduce=args.reduce, spread=args.spread, theory=args.theory, select=select, title=args.title,
                 log=args.log)
    save(obj, args.out, dpi=args.dpi, width=args.width)
    print(f"wrote {args.out}")
    return 0


LOGS = ("auto", "none", "x", "y", "xy")
DERIVED = ("diverged", "diverged_step", "spectrum")        # stored beside the metrics a spec names


def _check_table(f: dict, at: str) -> None:
    """One [[figure]] table's own fields: option names, choices, file format, dpi."""
    bad = [k for k in f if k not in ("kind", "file") + OPTIONS]
    if bad:
        raise ConfigError(f"{at}.{bad[0]}: unknown option; allowed kind, file, {', '.join(OPTIONS)}")
    choices = {"kind": KINDS, "reduce": REDUCE, "spread": SPREAD, "theory": THEORY, "log": LOGS, "width": WIDTHS}
    for key, allowed in choices.items():
        if key in f and f[key] not in allowed:
            raise ConfigError(f"{at}.{key}: {f[key]!r} is not allowed; allowed {', '.join(allowed)}")
    _check_format(Path(f["file"]), f"{at}.file")
    if "dpi" in f and not (isinstance(f["dpi"], int) and DPI[0] <= f["dpi"] <= DPI[1]):
        raise ConfigError(f"{at}.dpi: {f['dpi']!r} is not allowed; allowed an integer {DPI[0]} to {DPI[1]}")


def check_spec_figures(spec) -> None:
    """Refuse a spec's [[figure]] tables before its sweep runs (not after hours of it), naming
    the spec field: the table's own fields, then its metric and axes against the spec."""
    axes = [a.key for a in spec.axes] + ["seed"]
    names = set(spec.metrics) | set(spec.series) | set(DERIVED)
    for i, f in enumerate(spec.figures):
        at = f"figure[{i}]"
        _check_table(f, at)
        metric = f.get("metric")
        if metric is not None and str(metric).removeprefix("final_") not in names:
            raise ConfigError(f"{at}.metric: {metric!r} is not in this sweep's results; allowed "
                              + ", ".join(sorted(names - {"spectrum"} | ({"spectrum"} & set(spec.metrics)))))
        for key in ("x", "y", "panel", "hue"):
            if key in f and f[key] not in axes + ["step"]:
                raise ConfigError(f"{at}.{key}: {f[key]!r} is not an axis of this sweep; allowed "
                                  + ", ".join(axes + ["step"]))


def render_spec_figures(results, figures, out_dir) -> list[Path]:
    """Draw the figures a sweep spec lists ([[figure]] tables) into `out_dir`."""
    ds = open_results(results)
    paths = []
    for i, f in enumerate(figures):
        _check_table(f, f"figure[{i}]")
        f = dict(f)
        kind, file = f.pop("kind", "phase"), f.pop("file")
        dpi, width = f.pop("dpi", style.DPI), f.pop("width", None)
        path = Path(out_dir) / file
        _check_out(path)
        save(figure(ds, kind, **f), path, dpi=dpi, width=width)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- figures
def figure(ds: xr.Dataset, kind: str, *, metric=None, x=None, y=None, panel=None, hue=None, reduce="mean",
           spread="std", theory="auto", select=None, title=None, log="auto"):
    """The HoloViews object for one figure of `ds` (sweep or run results)."""
    hv = _hv()
    _choice(kind, KINDS, "--kind")
    _choice(reduce, REDUCE, "--reduce")
    _choice(spread, SPREAD, "--spread")
    _choice(theory, THEORY, "--theory")
    _choice(log, LOGS, "--log")
    ds = _select(ds, select or {})
    draw = {"phase": _phase, "curve": _curve, "spectrum": _spectrum}[kind]
    obj = draw(hv, ds, metric=metric, x=x, y=y, panel=panel, hue=hue, reduce=reduce, spread=spread, overlay=theory,
               log=log)
    return obj.opts(title=title) if title else obj


def render(obj, width: str | None = None):
    """(matplotlib Figure, the box to save in inches) of a HoloViews object in the figure style
    at a journal column's width (None: single for one panel, double for a layout)."""
    hv = _hv()
    if width is None:
        width = "double" if isinstance(obj, hv.Layout) else "single"
    _choice(width, WIDTHS, "--width")
    style.apply()
    fig = hv.renderer("matplotlib").get_plot(obj).state
    return fig, style.fit(fig, style.inches(width))


def save(obj, path, dpi: int = style.DPI, width: str | None = None, title: str = "", citation: str = "",
         restyle=None) -> Path:
    """Write PNG/SVG/PDF by the file's suffix in the figure style (`style.fit`) at a journal
    column's width (None: single for one panel, double for a layout), `title` and `citation` in
    the file's metadata; the file appears whole or not at all. restyle(fig): a last change of
    the drawn figure (colours only: the box is already measured), e.g. `style.dark`."""
    hv = _hv()
    path = _check_out(path)
    if not DPI[0] <= dpi <= DPI[1]:
        raise ConfigError(f"--dpi: {dpi} is not allowed; allowed {DPI[0]} to {DPI[1]}")
    fmt = path.suffix[1:].lower()
    fig, box = render(obj, width)
    if restyle is not None:
        restyle(fig)
    buf = io.BytesIO()
    style.write(fig, buf, fmt, box, dpi=int(dpi), meta=style.metadata(fmt, title or path.stem, citation))
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
    except OSError as e:
        raise ConfigError(f"--out: cannot write {path} ({e.strerror or type(e).__name__}); allowed a writable "
                          "file path") from None
    return path


# ---------------------------------------------------------------- phase
def _phase(hv, ds, *, metric, x, y, panel, log, **_):
    """Seed mean of a metric over (x, y), one panel per value of `panel`; diverged points crossed."""
    var = _variable(ds, metric or "modes_covered", final=True)
    sample = _sample_dim(ds[var])
    axes = [d for d in ds[var].dims if d != sample]
    if panel is None:
        panel = next((d for d in axes if not _numeric(ds[d]) and d not in (x, y)), None)
    numeric = [d for d in axes if d != panel and _numeric(ds[d])]
    x = x or _first(numeric, [y], "--x", "phase needs two numeric axes")
    y = y or _first(numeric, [x], "--y", "phase needs two numeric axes")
    for key, name in ((x, "--x"), (y, "--y"), (panel, "--panel")):
        if key is not None:
            _has_dim(ds[var], key, name, sample)
    for a, b, name in ((x, y, "--y"), (x, panel, "--panel"), (y, panel, "--panel")):
        if a == b:
            raise ConfigError(f"{name}: {b} is already on another side of the figure; allowed one of "
                              f"{', '.join(d for d in axes if d not in (x, y, panel))}")
    for key, name in ((x, "--x"), (y, "--y")):
        if not _numeric(ds[key]):
            raise ConfigError(f"{name}: {key} is not numeric; allowed one of {', '.join(numeric)}")
    da = _squeeze(_masked(ds[var]), keep=[x, y, panel, sample])
    mean = _reduce(da, sample, "mean")
    diverged = _diverged(ds, da, sample)
    logx, logy = _logs(ds, x, y, log)
    values = [None] if panel is None else list(ds[panel].values)
    lo, hi = _range(mean, var, ds)
    label = _label(var)
    panels = []
    for v in values:
        z = mean if v is None else mean.sel({panel: v})
        z = z.transpose(y, x).values
        ex, ey = _edges(ds[x].values, logx), _edges(ds[y].values, logy)
        qm = hv.QuadMesh((ex, ey, z),
                         kdims=[_dim(hv, x), _dim(hv, y)], vdims=[hv.Dimension(var, label=label)])
        qm = qm.opts(cmap=style.CMAP, colorbar=True, clabel=label, clim=(lo, hi), logx=logx, logy=logy,
                     hooks=[_shape(0.85)],
                     title="" if v is None else style.panel_title(panel, v))
        el = qm
        if diverged is not None:
            dv = diverged if v is None else diverged.sel({panel: v})
            yy, xx = np.nonzero(dv.transpose(y, x).values)
            if len(xx):
                pts = hv.Points((ds[x].values[xx], ds[y].values[yy]), kdims=[_dim(hv, x), _dim(hv, y)],
                                label="diverged")
                el = (el * pts.opts(marker="X", color=CYCLE[1], s=30, edgecolor="white", linewidth=0.5,
                                    show_legend=True)).opts(hooks=[_shape(0.85)])

        panels.append(el)
    if len(panels) == 1:
        return panels[0]
    return hv.Layout(panels).cols(min(len(panels), 3)).opts(sublabel_format="", fig_inches=4.2)


# ---------------------------------------------------------------- curve
def _curve(hv, ds, *, metric, x, hue, reduce, spread, overlay, log, **_):
    """Metric against x: band = spread over seeds, dots = seeds, line = the reduction, per hue."""
    x_is_step = x == "step"
    var = _variable(ds, metric or _default_curve_metric(ds), final=not x_is_step)
    sample = _sample_dim(ds[var])
    axes = [d for d in ds[var].dims if d != sample]
    x = x or _first([d for d in axes if _numeric(ds[d])], [hue], "--x", "curve needs a numeric axis")
    _has_dim(ds[var], x, "--x", sample)
    if hue is None:
        rest = [d for d in axes if d != x and ds.sizes[d] > 1]
        hue = rest[0] if len(rest) == 1 and ds.sizes[rest[0]] <= len(CYCLE) else None
    if hue is not None:
        _has_dim(ds[var], hue, "--hue", sample)
        if hue == x:
            raise ConfigError(f"--hue: {hue} is already along x; allowed one of {', '.join(d for d in axes if d != x)}")
    raw = _squeeze(ds[var], keep=[x, hue, sample])
    da = _masked(raw)
    logx, logy = _logs(ds, x, None, log, values=da)
    cfg = _config(ds)
    label = _label(var)
    never = _never_reached(ds, var, raw, [x, hue, sample])
    layers = []
    hues = [None] if hue is None else list(ds[hue].values)
    for i, h in enumerate(hues):
        d = da if h is None else da.sel({hue: h})
        color = CYCLE[i % len(CYCLE)]
        name = "" if h is None else style.panel_title(hue, h)
        xs = ds[x].values
        center = _reduce(d, sample, reduce).values
        if sample is not None and spread != "none":
            if spread == "std":
                s = d.std(sample, skipna=True).values
                lo_, hi_ = center - s, center + s
            else:
                lo_, hi_ = d.min(sample, skipna=True).values, d.max(sample, skipna=True).values
            if logy:
                lo_ = np.where(lo_ > 0, lo_, np.nan)
            layers.append(hv.Area((xs, lo_, hi_), kdims=[_dim(hv, x)], vdims=[hv.Dimension(var, label=label), "hi"])
                          .opts(color=color, alpha=0.2, linewidth=0))
        if sample is not None:
            px = np.repeat(xs, d.sizes[sample])
            py = d.transpose(x, sample).values.ravel()
            layers.append(hv.Scatter((px, py), _dim(hv, x), hv.Dimension(var, label=label))
                          .opts(color=color, s=8, alpha=0.5))
        layers.append(hv.Curve((xs, center), _dim(hv, x), hv.Dimension(var, label=label), label=name or reduce)
                      .opts(color=color, linewidth=1.5))
        cfg_h = cfg if h is None or cfg is None else {**cfg, hue: h}
        span = np.asarray(d.values, dtype=float)
        layers += _curve_theory(hv, overlay, x, var, cfg_h, xs, span[np.isfinite(span)], color, label, i == 0)
    title = ""
    if never is not None:
        marks, title = _never_marks(hv, never, da, x, hue, hues, sample, var, label, logy, cfg)
        layers += marks
    overlay = hv.Overlay(layers).opts(logx=logx, logy=logy, fig_inches=5, show_legend=True,
                                      hooks=[_shape(0.65)], title=title, padding=(0.04, 0.06))
    return overlay


# a step-count metric whose −1 means "the event never happened within the run"; when that is
# a failure (not converged) the curve marks it instead of dropping it
NOT_REACHED = {"final_convergence_step": "did not converge within {steps} steps"}


def _never_reached(ds, var, raw, keep):
    """(bool DataArray over `raw`'s dims, diverged flags or None) for completed runs whose
    `var` is −1, or None when `var` has no such meaning; points not computed (NaN) are neither."""
    if var not in NOT_REACHED:
        return None
    never = raw < 0                                    # NaN (not computed) compares False
    diverged = None
    if "final_diverged" in ds and set(ds["final_diverged"].dims) == set(ds[var].dims):
        diverged = _squeeze(ds["final_diverged"].fillna(False).astype(bool), keep=keep) & never
    return never, diverged


def _never_marks(hv, never, da, x, hue, hues, sample, var, label, logy, cfg):
    """Markers above the data where runs never converged (one per x and kind, hue-coloured; ✕
    when they diverged) and the title counting them."""
    never, diverged = never
    finite = da.values[np.isfinite(da.values)]
    steps = (cfg or {}).get("steps")
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        top = hi * 1.5 if logy else hi + 0.1 * max(hi - lo, abs(hi), 1.0)
    else:
        top = float(steps or 1.0)
    what = NOT_REACHED[var].format(steps=steps) if steps else "did not converge by the end of the run"
    n_never, n_runs = int(never.sum()), int(np.isfinite(np.asarray(da.values, float)).sum() + never.sum())
    n_div = int(diverged.sum()) if diverged is not None else 0
    marks = []
    for i, h in enumerate(hues):
        nv = never if h is None else never.sel({hue: h})
        dv = None if diverged is None else (diverged if h is None else diverged.sel({hue: h}))
        color = CYCLE[i % len(CYCLE)]
        stalled = nv & ~dv if dv is not None else nv
        for flags, marker, name, n in ((stalled, "^", what, n_never - n_div), (dv, "X", "diverged", n_div)):
            if flags is None:
                continue
            at = flags.any(sample) if sample is not None else flags
            xs = np.asarray(at[x].values)[np.asarray(at.transpose(x).values)]
            if not len(xs):
                continue
            first = not any(m.label.startswith(name) for m in marks)
            marks.append(hv.Scatter((xs, np.full(len(xs), top)), _dim(hv, x), hv.Dimension(var, label=label),
                                    label=f"{name} ({n} run{'s' * (n != 1)})" if first else "")
                         .opts(color=color, marker=marker, s=60, edgecolor="black", linewidth=0.6,
                               show_legend=first))
    if not n_never:
        return [], ""
    title = f"{n_never} of {n_runs} runs {what}"
    return marks, title + (f" ({n_div} diverged)" if n_div else "")


def _curve_theory(hv, overlay, x, var, cfg, xs, ys, color, label, first):
    """γ_c (and, for a linear critic on a point target, the oscillator's t_conv) on a γ axis."""
    want = overlay == "gamma_c" or (overlay == "auto" and x == "reg.strength" and cfg is not None)
    if not want:
        return []
    if x != "reg.strength" or cfg is None or cfg.get("kernel.kind") != "two_number":
        if overlay == "gamma_c":
            raise ConfigError("--theory: gamma_c needs x = reg.strength and a two_number kernel in the results' "
                              "config; allowed --theory none")
        return []
    gc = theory.gamma_c(cfg)
    lo, hi = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0)
    # a vertical Curve rather than a VLine: it gets a legend entry
    out = [hv.Curve(([gc, gc], [lo, hi]), _dim(hv, x), hv.Dimension(var, label=label), label=fr"$\gamma_c$ = {gc:.3g}")
           .opts(color=color, linestyle="--", linewidth=1.2)]
    if var == "final_convergence_step" and cfg.get("disc.kind") == "linear" and cfg.get("target.kind") == "point":
        from dynamics.run import CONV_THRESHOLD
        g = np.geomspace(np.nanmin(xs), np.nanmax(xs), 200)
        R = cfg["target.radius"]
        t = theory.damping_time(g, cfg, eps=CONV_THRESHOLD * R, e0=R - cfg["init.shift"])
        out.append(hv.Curve((g, t), _dim(hv, x), hv.Dimension(var, label=label),
                            label="linearised theory" if first else "").opts(color="black", linestyle=":",
                                                                            linewidth=1.5))
    return out


# ---------------------------------------------------------------- spectrum
def _spectrum(hv, ds, *, metric, x, overlay, log, **_):
    """Left: every eigenvalue against x with the two-level limit; right: the bulk's spread."""
    var = metric or "spectrum"
    if var not in ds or "eig" not in ds[var].dims:
        raise ConfigError(f"--metric: {var!r} is not a spectrum in these results; allowed results of a sweep with "
                          "metrics = [\"spectrum\"]")
    sample = _sample_dim(ds[var])
    axes = [d for d in ds[var].dims if d not in (sample, "eig")]
    x = x or _first([d for d in axes if _numeric(ds[d])], [], "--x", "spectrum needs a numeric axis")
    _has_dim(ds[var], x, "--x", sample)
    da = _squeeze(_masked(ds[var]), keep=[x, sample, "eig"])
    logx, _ = _logs(ds, x, None, log)
    xs = ds[x].values
    lam = da.transpose(x, ...).values.reshape(len(xs), -1)          # every eigenvalue of every seed
    px = np.repeat(xs, lam.shape[1]).astype(float)
    py = lam.ravel()
    ok = np.isfinite(py) & (py > 0)
    ylab = hv.Dimension("eigenvalue", label=style.metric_label("eigenvalue"))
    pts = hv.Scatter((px[ok], py[ok]), _dim(hv, x), ylab, label="eigenvalues").opts(
        color=CYCLE[0], s=6, alpha=0.35)
    layers = [pts]
    cfg = _config(ds)
    levels = None
    if overlay in ("auto", "two-level") and cfg is not None:
        try:
            levels = theory.kernel_levels(cfg)
        except ConfigError:
            if overlay == "two-level":
                raise
    if levels is not None:
        top, rel = levels
        ends = [float(np.min(xs)), float(np.max(xs))]
        layers += [hv.Curve((ends, [top, top]), _dim(hv, x), ylab, label=fr"$g_1+(N-1)g_2$ = {top:.3g}")
                   .opts(color=CYCLE[1], linestyle="--"),
                   hv.Curve((ends, [rel, rel]), _dim(hv, x), ylab, label=fr"$g_1-g_2$ = {rel:.3g}")
                   .opts(color=CYCLE[2], linestyle="--")]
    left = hv.Overlay(layers).opts(logx=logx, logy=True, show_legend=True,
                                   title="kernel spectrum", hooks=[_shape(0.8)])
    # the bulk (all but the top level): its spread shrinks as the spectrum collapses onto two levels
    bulk = da.isel(eig=slice(1, None))
    rel_spread = (bulk.std("eig", skipna=True) / (levels[1] if levels else 1.0))
    center = _reduce(rel_spread, sample, "mean").values
    yl = hv.Dimension("bulk_spread", label=r"std of bulk / $(g_1-g_2)$" if levels else "std of bulk eigenvalues")
    right = [hv.Curve((xs, center), _dim(hv, x), yl, label="measured").opts(color=CYCLE[0], linewidth=1.5)]
    if sample is not None:
        right.append(hv.Scatter((np.repeat(xs, rel_spread.sizes[sample]), rel_spread.transpose(x, sample).values.ravel()),
                                _dim(hv, x), yl).opts(color=CYCLE[0], s=8, alpha=0.5))
    pos = (xs > 0) & np.isfinite(center) & (center > 0)
    if logx and pos.sum() >= 2:
        i = np.nonzero(pos)[0][-1]
        guide = center[i] * np.sqrt(xs[i] / xs.astype(float))
        right.append(hv.Curve((xs, guide), _dim(hv, x), yl, label=fr"$\propto 1/\sqrt{{{_symbol(x)}}}$")
                     .opts(color="gray", linestyle=":"))
    right = hv.Overlay(right).opts(logx=logx, logy=True, show_legend=True, title="spread of the bulk",
                                   hooks=[_shape(0.8)])
    return hv.Layout([left, right]).cols(2).opts(sublabel_format="", fig_inches=4.2)


# ---------------------------------------------------------------- helpers
_HV = None


def _hv():
    """HoloViews with the matplotlib backend on a headless (Agg) canvas, loaded once."""
    global _HV
    if _HV is None:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import holoviews as hv
        hv.extension("matplotlib", logo=False)
        hv.Store.set_current_backend("matplotlib")
        style.apply()                            # after the backend, which loads its own rcParams
        _HV = hv
    return _HV


def _shape(ratio: float):
    """Plot hook: a fixed box height/width whatever the axis scales (HoloViews' `aspect` is
    dropped on log axes)."""
    def hook(plot, element):
        from matplotlib.ticker import NullFormatter
        ax = plot.handles["axis"]
        ax.set_aspect("auto")
        ax.set_box_aspect(ratio)
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":                       # short log ranges label minor ticks on top of each other
                axis.set_minor_formatter(NullFormatter())
    return hook


def _check_format(p: Path, field: str) -> None:
    if p.suffix[1:].lower() not in FORMATS:
        raise ConfigError(f"{field}: {p.name!r} has no known format; allowed a file ending in "
                          + ", ".join(f".{f}" for f in FORMATS))


def _check_out(path) -> Path:
    p = Path(path)
    _check_format(p, "--out")
    if not p.parent.is_dir():
        raise ConfigError(f"--out: folder {p.parent} does not exist; allowed a path in an existing folder")
    return p


def _assignment(text: str):
    if "=" not in text:
        raise ConfigError(f"--select: {text!r} is not KEY=VALUE; allowed e.g. --select lr.disc=0.01")
    k, v = (s.strip() for s in text.split("=", 1))
    return k, (KNOBS[k].coerce(v) if k in KNOBS else v)


def _select(ds, select: dict):
    for k, v in select.items():
        if k not in ds.dims:
            raise ConfigError(f"--select: {k} is not an axis of these results; allowed {', '.join(map(str, ds.dims))}")
        ds = ds.sel({k: v}, method="nearest") if _numeric(ds[k]) else _sel_exact(ds, k, v)
    return ds


def _sel_exact(ds, k, v):
    vals = [str(a) for a in ds[k].values]
    if str(v) not in vals:
        raise ConfigError(f"--select: {k} = {v} is not in the results; allowed {', '.join(vals)}")
    return ds.sel({k: str(v)})


def _choice(v, allowed, field):
    if v not in allowed:
        raise ConfigError(f"{field}: {v!r} is not allowed; allowed {', '.join(allowed)}")


NOT_SWEPT = ("seed", "member", "step", "snapshot", "particle", "axis", "level", "dim")   # axes no spec sweeps


def _variable(ds, name: str, final: bool) -> str:
    names = [f"final_{name}", name] if final else [name, f"final_{name}"]
    for n in names:
        if n in ds.data_vars and n != "done":
            return n
    allowed = [v for v in ds.data_vars if v not in ("done", "positions")]
    axes = [d for d in ds.dims if d in ds.coords and d not in NOT_SWEPT]
    hint = f" (a sweep over one knob: --kind curve --x {axes[0]} --metric NAME)" if len(axes) == 1 else ""
    raise ConfigError(f"--metric: {name!r} is not in these results; allowed {', '.join(allowed)}{hint}")


def _default_curve_metric(ds) -> str:
    for m in ("convergence_step", "modes_covered"):
        if f"final_{m}" in ds:
            return m
    return next(v for v in ds.data_vars if v != "done")


def _sample_dim(da):
    return next((d for d in SAMPLE_DIMS if d in da.dims), None)


def _has_dim(da, key, field, sample=None):
    """key must be an axis of da other than the one a figure reduces over (sample)."""
    axes = [str(d) for d in da.dims if d != sample]
    if key not in axes:
        why = "is what a figure reduces over" if key == sample else f"is not an axis of {da.name}"
        raise ConfigError(f"{field}: {key!r} {why}; allowed {', '.join(axes)}")


def _first(cands, exclude, field, why):
    for c in cands:
        if c not in exclude:
            return c
    raise ConfigError(f"{field}: not given and none left to choose ({why}); allowed an axis of the results")


def _numeric(coord) -> bool:
    return coord.dtype.kind in "iuf"


def _squeeze(da, keep):
    """Drop length-1 axes; any other axis the figure does not show must be fixed by --select."""
    for d in list(da.dims):
        if d in keep:
            continue
        if da.sizes[d] == 1:
            da = da.isel({d: 0}, drop=True)
        else:
            raise ConfigError(f"--select: axis {d} has {da.sizes[d]} values and the figure does not show it; "
                              f"allowed --select {d}=VALUE")
    return da


def _masked(da):
    """Floats; step counts of −1 (never converged / never diverged) become NaN, whether stored
    as integers or as floats (a partly computed store reads back as floats, NaN where not run)."""
    out = da.astype(float)
    if da.dtype.kind in "iuf" and str(da.name).endswith("_step"):
        out = out.where(~(out < 0))
    return out


def _reduce(da, dim, how):
    if dim is None:
        return da
    return getattr(da, how)(dim, skipna=True)


def _diverged(ds, da, sample):
    if "final_diverged" not in ds:
        return None
    dv = ds["final_diverged"].fillna(False).astype(bool)
    dv = dv.any(sample) if sample in dv.dims else dv
    dv = dv.squeeze(drop=True) if any(dv.sizes[d] == 1 for d in dv.dims if d not in da.dims) else dv
    extra = [d for d in dv.dims if d not in da.dims]
    dv = dv.any(extra) if extra else dv
    return dv if bool(dv.any()) else None


def _range(da, var, ds):
    """Colour range shared by the panels; modes covered always spans 0 … K."""
    finite = da.values[np.isfinite(da.values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if var == "final_modes_covered" and "final_modes_total" in ds:
        hi = float(np.nanmax(ds["final_modes_total"].values))
        lo = 0.0
    elif var == "final_modes_covered":
        lo = 0.0
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _logs(ds, x, y, log, values=None):
    def auto(key):
        if key is None or not _numeric(ds[key]):
            return False
        scale = ds[key].attrs.get("scale")
        if scale:
            return scale == "log"
        v = ds[key].values.astype(float)
        return bool(v.size > 2 and (v > 0).all() and v.max() / v.min() > 50)
    if log == "auto":
        lx, ly = auto(x), auto(y)
        if y is None and values is not None:
            v = values.values[np.isfinite(values.values)]
            ly = bool(v.size and (v > 0).all() and v.max() / v.min() > 20)
        return lx, ly
    return "x" in log, "y" in log


def _edges(v, log):
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    w = np.log(v) if log else v
    mid = (w[1:] + w[:-1]) / 2
    e = np.concatenate([[2 * w[0] - mid[0]], mid, [2 * w[-1] - mid[-1]]])
    return np.exp(e) if log else e


def _dim(hv, key):
    return hv.Dimension(key, label=style.axis_label(key))


def _symbol(key) -> str:
    """A knob's symbol without its $ (for use inside a formula), else x."""
    k = KNOBS.get(key)
    return k.symbol.strip("$") if k is not None and k.symbol else "x"


def _label(var: str) -> str:
    return style.metric_label(var)


def _config(ds):
    """The run's config read back from the file, checked against the knobs (a crafted or
    foreign `config` attribute means no theory overlay, not a traceback)."""
    try:
        return resolve(json.loads(ds.attrs["config"]))
    except (KeyError, TypeError, ValueError, AttributeError):     # ConfigError is a ValueError
        return None


__all__ = ["add_figure_arguments", "main_figure", "figure", "render", "save", "render_spec_figures"]
