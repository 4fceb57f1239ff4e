"""Downloads of a live run: netCDF (the engine's dataset layout), a PNG summary figure
(matplotlib, no browser needed) and a GIF of the particle trajectory (Pillow + imageio,
drawn directly: tens of frames in well under a second, so the event loop is not held up).
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dynamics.results import to_dataset, write_netcdf

from .frames import Scene, project
from .recorder import Recorder
from .views import PARTICLE, SERIES, TARGET, TITLES

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
