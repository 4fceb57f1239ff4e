"""Downloads of a live run: netCDF (the engine's dataset layout), "this view" as a PNG / SVG /
PDF figure in the project's figure style (`view_bytes`: matplotlib, no browser needed), a PNG
summary figure and a GIF of the particle trajectory (Pillow + imageio, drawn directly: tens of
frames in well under a second, so the event loop is not held up).
"""
from __future__ import annotations

import io
import json
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from app.plots import style
from dynamics.results import to_dataset, write_netcdf

from .frames import Scene, project
from .recorder import Recorder
from .views import (DISTANCES, DISTANCES_TITLE, METER_SERIES, METER_TITLES, PARTICLE, SERIES, TARGET, TITLES,
                    Views)

GIF_FRAMES = 80
GIF_SIZE = 360


def netcdf_bytes(record: Recorder, device: str) -> bytes:
    """The run in the engine's layout; attrs `config` is the config running now, `start_config`
    the one the run started from, `knob_history` its live changes as [step, key, value] rows."""
    ds = to_dataset(record.history(), device)
    start, changes = record.knob_history()
    ds.attrs.update(start_config=json.dumps(start, sort_keys=True), knob_history=json.dumps(changes))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.nc"
        write_netcdf(ds, path)
        return path.read_bytes()


def _pixels(xy: np.ndarray, scene: Scene, size: int) -> np.ndarray:
    x0, x1, y0, y1 = scene.extent
    px = (xy[:, 0] - x0) / (x1 - x0) * (size - 1)
    py = (y1 - xy[:, 1]) / (y1 - y0) * (size - 1)
    return np.stack([px, py], 1)


def _hex(c: str) -> tuple[int, int, int]:
    return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))


def gif_bytes(steps: np.ndarray, snaps: list[np.ndarray], scene: Scene, fps: int = 12) -> bytes:
    """One frame per kept snapshot (thinned to GIF_FRAMES): particles over the target."""
    import imageio.v3 as iio
    if not snaps:
        raise ValueError("no snapshots yet: let the run go for a few steps")
    idx = np.unique(np.linspace(0, len(snaps) - 1, min(GIF_FRAMES, len(snaps))).round().astype(int))
    base = Image.new("RGB", (GIF_SIZE, GIF_SIZE), "white")
    draw = ImageDraw.Draw(base)
    for px, py in _pixels(scene.ref_xy, scene, GIF_SIZE):
        draw.point((px, py), fill=_hex(TARGET))
    images = []
    for i in idx:
        im = base.copy()
        d = ImageDraw.Draw(im)
        for px, py in _pixels(project(snaps[i], scene), scene, GIF_SIZE):
            d.ellipse((px - 2, py - 2, px + 2, py + 2), fill=_hex(PARTICLE))
        d.text((6, 6), f"step {int(steps[i])}", fill=(0, 0, 0))
        images.append(np.asarray(im))
    buf = io.BytesIO()
    iio.imwrite(buf, np.stack(images), extension=".gif", duration=int(1000 / fps), loop=0)
    return buf.getvalue()


def figure_png(record: Recorder, scene: Scene) -> bytes:
    """The last snapshot over the target, and the metrics over time, as one PNG."""
    from matplotlib.figure import Figure           # no pyplot: no global state, safe off the main thread
    h = record.history()
    fig = Figure(figsize=(19, 3.8))
    axes = fig.subplots(1, 5, gridspec_kw={"width_ratios": [1.2, 1, 1, 1, 1]})
    ax = axes[0]
    ax.scatter(scene.ref_xy[:, 0], scene.ref_xy[:, 1], s=1, c=TARGET, alpha=0.3)
    if h.snapshots.shape[1]:
        xy = project(h.snapshots[0, -1], scene)
        ax.scatter(xy[:, 0], xy[:, 1], s=6, c=PARTICLE)
    x0, x1, y0, y1 = scene.extent
    ax.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal", title=f"step {int(h.steps[-1])}")
    series = dict(h.series)
    for ax, (name, lines) in zip(axes[1:], SERIES.items()):
        for key, legend, colour in lines:
            if key in series:
                ax.plot(h.steps, series[key][0], color=colour, label=legend)
        ax.set(title=TITLES[name], xlabel="step")
        ax.legend(fontsize=8)
    fig.suptitle(scene.title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


# ---------------------------------------------------------------- this view, as a paper prints it
VIEW_FORMATS = ("png", "svg", "pdf")
FIELD_LABEL = r"$D - \bar D$ (green: looks real, purple: fake)"
CAPTION_WIDTH = 150            # characters per caption line at two columns


def caption(cfg: dict, step: int) -> str:
    """The run in one line (wrapped): step, seed, and every knob that differs from its default."""
    from dynamics.knobs import defaults
    base = defaults()
    knobs = [f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
             for k, v in cfg.items() if k not in ("seed", "steps") and k in base and v != base[k]]
    line = " · ".join([f"step {int(step)}", f"seed {cfg.get('seed', '?')}"] + knobs)
    return "\n".join(textwrap.wrap(line, CAPTION_WIDTH, break_on_hyphens=False))


def _particles(ax, v: Views) -> None:
    """Particles over the critic's field (its colour bar below), the target and its modes."""
    from matplotlib.patches import Circle
    f = v.field.data
    if v.field_image.visible:
        lim = max(abs(v.field_mapper.low), abs(v.field_mapper.high))
        x0, y0, dw, dh = f["x"][0], f["y"][0], f["dw"][0], f["dh"][0]
        im = ax.imshow(np.asarray(f["image"][0]), origin="lower", extent=(x0, x0 + dw, y0, y0 + dh), cmap="PRGn",
                       vmin=-lim, vmax=lim, alpha=0.6, interpolation="bilinear")
        cax = ax.inset_axes([0.0, -0.24, 1.0, 0.035])       # under the axes, exactly as wide
        ax.figure.colorbar(im, cax=cax, orientation="horizontal").set_label(FIELD_LABEL)
    t, m = v.target.data, v.modes.data
    ax.scatter(t["x"], t["y"], s=0.5, c=TARGET, alpha=0.35, linewidths=0, rasterized=True)
    for x, y, r in zip(m["x"], m["y"], m["r"]):
        ax.add_patch(Circle((x, y), r, fill=False, ec=TARGET, ls="--", lw=0.6))
    a = v.arrows.data
    if len(a["x0"]):
        x0, y0 = np.asarray(a["x0"]), np.asarray(a["y0"])
        ax.quiver(x0, y0, np.asarray(a["x1"]) - x0, np.asarray(a["y1"]) - y0, angles="xy", scale_units="xy",
                  scale=1, color="#333333", width=0.003)
    p = v.particles.data
    ax.scatter(p["x"], p["y"], s=3, c=PARTICLE, linewidths=0, rasterized=len(p["x"]) > 2000)
    fr = v.particle_fig
    ax.set(xlim=(fr.x_range.start, fr.x_range.end), ylim=(fr.y_range.start, fr.y_range.end), aspect="equal",
           xlabel="$x_1$", ylabel="$x_2$")
    ax.set_title(textwrap.fill(fr.title.text, 48))


def _spectrum(ax, v: Views) -> None:
    st = v.spectrum.data
    ax.set(yscale="log", xlabel="eigenvalue index", ylabel=r"eigenvalue of $\Theta$", title=v.spectrum_fig.title.text)
    if not len(st["x"]):
        return
    ax.vlines(st["x"], st["bottom"], st["top"], color="#444444", lw=1.2)
    ax.scatter(st["x"], st["top"], s=10, c="#444444")
    for x, y, label in zip(st["x"], st["top"], st["label"]):
        if label:
            ax.annotate(label, (x, y), xytext=(4, -3), textcoords="offset points", fontsize=7)
    for span, name, colour in ((v.collective, "collective level", style.CYCLE[1]),
                               (v.relative, "relative level", style.CYCLE[0])):
        if span.visible and span.location is not None:
            ax.axhline(span.location, color=colour, ls="--", lw=1, label=name)
    ax.set_xlim(v.spectrum_fig.x_range.start, v.spectrum_fig.x_range.end)
    ax.set_ylim(v.spectrum_fig.y_range.start, v.spectrum_fig.y_range.end)


def _recorded(record: Recorder | None, data: dict) -> dict:
    """The engine series as the run recorded them (one row per frame the worker made), else the
    page's columns: the page keeps only the frames it drew, so a busy moment (an export on
    the event loop) would leave a sparse patch in the figure."""
    try:
        h = record.history()
    except (AttributeError, ValueError):         # no recorder, or nothing recorded yet
        return data
    return {"t": h.steps.astype(float), **{k: v[0] for k, v in h.series.items()}}


def _shown_series(v: Views, record: Recorder | None = None) -> list[tuple[str, dict, list]]:
    """(title, columns, lines) of each time series the page shows now and has data for."""
    out = []
    data = _recorded(record, v.series.data)
    for name, lines in SERIES.items():
        if name == "modes" and v.distances:
            out.append((DISTANCES_TITLE, data, DISTANCES))
        else:
            out.append((TITLES[name], data, lines))
    out += [(METER_TITLES[n], v.meter_series.data, lines) for n, lines in METER_SERIES.items()
            if v.meter_figs[n].visible]
    return [(t, d, lines) for t, d, lines in out if len(d["t"]) and any(np.isfinite(np.asarray(d[k], float)).any()
                                                                         for k, _, _ in lines if k in d)]


def _legend_below(ax, ncol: int = 1) -> None:
    """A legend under the axes (constrained layout makes room for it): never over the data."""
    from matplotlib.transforms import ScaledTranslation
    if ax.get_legend_handles_labels()[0]:         # 26 pt under the axes: below its tick labels and x label
        at = ax.transAxes + ScaledTranslation(0, -26 / 72, ax.figure.dpi_scale_trans)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=at, ncol=ncol, handlelength=1.4,
                  borderaxespad=0)


def view_figure(v: Views, cfg: dict, step: int, record: Recorder | None = None):
    """The page's view as one matplotlib Figure, two columns wide: particles over the field,
    the sample images (a point-set target shown as images), the spectrum, the time series the
    page shows, and a caption line with the knob values and the seed."""
    from matplotlib.figure import Figure           # no pyplot: no global state, safe off the main thread
    style.apply()
    series = _shown_series(v, record)
    images = v.images_fig.visible
    cols = max(min(len(series), 4), 1)
    rows = -(-len(series) // cols)
    fig = Figure(figsize=(style.WIDTHS["double"], 3.6 + 2.0 * rows), layout="constrained")
    gs = fig.add_gridspec(1 + bool(rows), 1, height_ratios=[1.8] + [1.0 * rows] * bool(rows))
    top = gs[0].subgridspec(1, 3 if images else 2, width_ratios=[1.2, 0.7, 1.1] if images else [1.2, 1.1])
    ax = fig.add_subplot(top[0])
    _particles(ax, v)
    if images:
        ai = fig.add_subplot(top[1])
        ai.imshow(np.asarray(v.images.data["image"][0]), origin="lower", cmap="Greys", vmin=0, vmax=1,
                  interpolation="nearest")
        ai.set(title="particles as images", xticks=[], yticks=[])
    sp = fig.add_subplot(top[-1])
    _spectrum(sp, v)
    _legend_below(sp, 2)
    if rows:
        grid = gs[1].subgridspec(rows, cols)
        for i, (title, data, lines) in enumerate(series):
            a = fig.add_subplot(grid[divmod(i, cols)])
            t = np.asarray(data["t"], float)
            for key, legend, colour in lines:          # the page's colours: the export matches the lab
                if key in data:
                    a.plot(t, np.asarray(data[key], float), color=colour, label=legend)
            a.set(xlabel="step")
            a.set_title("\n".join(textwrap.wrap(title, 26)))
            _legend_below(a)
    for a in fig.axes:
        a.title.set_fontsize(style.SIZES["title"])
    fig.get_layout_engine().set(h_pad=0.04, w_pad=0.04)
    fig.supxlabel(caption(cfg, step), fontsize=6.5, x=0.0, ha="left")
    return fig


def view_bytes(v: Views, cfg: dict, step: int, fmt: str = "png", record: Recorder | None = None) -> bytes:
    """`view_figure` as PNG (300 dpi) / SVG / PDF bytes, two columns wide, the caption in its
    metadata."""
    if fmt not in VIEW_FORMATS:
        raise ValueError(f"format: {fmt!r} is not allowed; allowed {', '.join(VIEW_FORMATS)}")
    fig = view_figure(v, cfg, step, record)
    buf = io.BytesIO()
    # laid out at the column's width already: saved whole, so it is exactly that wide
    style.write(fig, buf, fmt, meta=style.metadata(fmt, "effgan lab view", caption(cfg, step)))
    return buf.getvalue()
