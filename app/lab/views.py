"""The live views: raw Bokeh figures fed from `Frame`s.

The `*_data` functions are pure (a frame or scene in, ColumnDataSource columns out) and are
what the tests check; `Views` only owns the figures and assigns those columns, one whole
replacement per source and frame (binary float32 transport), time series by `stream` with a
rollover. Axes of the particle view are fixed per scene, and no hover tool sits on the
particles: both keep the per-frame cost flat. What changes every frame (particles, force arrows,
series lines) is drawn on BokehJS's overlay layer (`LIVE_LEVEL`), which a change repaints alone:
the field, target, axes and labels under it are not repainted per frame (in headless Chromium a
frame then costs the browser about half as much, a series refresh about a third).
"""
from __future__ import annotations

import numpy as np
from bokeh.models import (Arrow, ColorBar, ColumnDataSource, Label, LabelSet, LinearColorMapper, PointDrawTool,
                          Range1d, Span, VeeHead)
from bokeh.palettes import PRGn11
from bokeh.plotting import figure

from dynamics import observables
from dynamics.papers import SHORT

from .frames import Frame, Scene

ROLLOVER = 3000
PARTICLES_PX = 470             # the particle view's width, px
SERIES_FRAME = (270, 140)      # plot area of each time-series figure, px
PARTICLE = "#7b2cbf"
TARGET = "#1b9e4b"
MARK = "#e08000"               # a change that kept the run, in the time series
LIVE_LEVEL = "overlay"         # BokehJS repaints this layer alone when only its renderers change
TOOLS = "pan,wheel_zoom,reset,save"
# low D purple ("looks fake": where the particles are), high D green ("looks real"): the
# generator force ∇D points from purple to green (Bokeh's PRGn11 runs green -> purple)
FIELD_PALETTE = tuple(reversed(PRGn11))
SERIES = {   # figure -> [(metric, legend, colour)]
    "modes": [("coverage", "coverage (fraction of modes)", "#1b9e4b"), ("mode_entropy", "mode entropy", "#7b2cbf")],
    "spread": [("spread_rel", "spread / mode spacing", "#1f77b4")],
    "losses": [("loss_d", "critic objective", "#d62728"), ("loss_g", "generator loss", "#555555")],
    "speeds": [("speed_collective", "collective", "#ff7f0e"), ("speed_relative", "relative", "#1f77b4")],
}
# what the modes figure shows instead when the target's points are not clusters (Scene.distances):
# every distance `observables` declares (when = request), with its legend and colour
DISTANCE_STYLE = {"mmd": ("MMD² (rbf kernel)", "#1b9e4b"), "sliced_w1": ("sliced W1", "#1f77b4"),
                  "energy": ("energy distance", "#d62728")}
DISTANCES = [(name, *DISTANCE_STYLE[name]) for name in observables.names(when=("request",))]
DISTANCES_TITLE = "Distance to your points (not clusters: no mode count)"
TITLES = {"modes": "Mode coverage", "spread": "Spread", "losses": "Losses",
          "speeds": "Collective vs relative speed (per step)"}
METER_SERIES = {   # companion meter (`app.lab.meters`) -> its figure's [(column, legend, colour)]
    "ct": [("ct_forward", "forward: covering", "#ff7f0e"), ("ct_backward", "backward: seeking", "#1f77b4")],
    "approx": [("ra_ratio", "critic IPM / W1", "#7b2cbf"), ("ra_gap", "train − test IPM", "#555555")],
    "paper_a": [("f1_rel", "F1 IPM / null", "#1b9e4b"), ("f2_rel", "F2 IPM / null", "#d62728"),
                ("msw1_rel", "max-sliced W1 / null", "#1f77b4"), ("sw1_rel", "sliced W1 / null", "#ff7f0e")],
}
FIELD_TITLE = "D − mean D  (green: looks real, purple: fake)"
NO_FIELD_TITLE = "this critic has no value D: no background"
METER_TITLES = {"ct": f"Conditional transport costs ({SHORT['C']})", "approx": f"Approximability ({SHORT['B']})",
                "paper_a": f"Distance over its null ({SHORT['A']})"}
METER_REFERENCE = {"approx": 1.0, "paper_a": 1.0}     # dashed line: IPM = W1, value = null


# ---------------------------------------------------------------- pure data functions
def particle_data(frame: Frame, view: tuple[float, float, float, float] | None = None) -> dict[str, np.ndarray]:
    """x, y of the shown particles; those outside `view` (x0, x1, y0, y1, the plot's ranges) are
    NaN: the overlay layer is not clipped to the frame, so a particle outside it would be drawn
    over the axes, and BokehJS draws no NaN point."""
    x = np.array(frame.xy[:, 0], np.float32)
    y = np.array(frame.xy[:, 1], np.float32)
    if view is not None:
        x0, x1, y0, y1 = view
        out = ~((x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1)))
        x[out] = y[out] = np.nan
    return {"x": x, "y": y}


def scene_data(scene: Scene) -> dict[str, dict]:
    """Columns of the static layers: target sample and mode circles."""
    r, c = scene.ref_xy, scene.centers_xy
    show_circles = len(c) <= 200 and scene.dim <= 2        # a capture ball does not project to a circle
    return {"target": {"x": r[:, 0].copy(), "y": r[:, 1].copy()},
            "modes": {"x": c[:, 0].copy() if show_circles else np.zeros(0, np.float32),
                      "y": c[:, 1].copy() if show_circles else np.zeros(0, np.float32),
                      "r": np.full(len(c) if show_circles else 0, scene.capture, np.float32)}}


def field_data(frame: Frame) -> tuple[dict, float]:
    """Image columns of the discriminator field and the symmetric colour limit."""
    x0, x1, y0, y1 = frame.scene.extent
    f = frame.field
    lim = float(np.abs(f).max()) if f.size and np.isfinite(f).all() else 1.0
    return {"image": [f], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}, max(lim, 1e-12)


def steady_limit(old: float | None, new: float) -> float:
    """The colour bar's limit for a field whose own limit is `new`: it widens at once (no value
    is clipped) and narrows only when the field has fallen below a quarter of it, so colours
    stay comparable from frame to frame instead of rescaling every frame."""
    if old is None or new > old or new < old / 4:
        return new
    return old


def field_colour(value: float, lim: float) -> str:
    """The colour the particle view paints a field value with (Bokeh's LinearColorMapper on
    [−lim, lim] over FIELD_PALETTE): what the caption and the colour bar explain."""
    n = len(FIELD_PALETTE)
    i = int(np.floor((value + lim) / (2 * lim) * n))
    return FIELD_PALETTE[min(max(i, 0), n - 1)]


def arrow_data(frame: Frame) -> dict[str, np.ndarray]:
    a = frame.arrows if frame.arrows is not None else np.zeros((0, 4), np.float32)
    return {k: np.ascontiguousarray(a[:, i]) for i, k in enumerate(("x0", "y0", "x1", "y1"))}


def series_row(frame: Frame) -> dict[str, list[float]]:
    m = frame.metrics
    row = {"t": [float(frame.t)]}
    for k in [c for lines in SERIES.values() for c, _, _ in lines] + [c for c, _, _ in DISTANCES]:
        row[k] = [m.get(k, float("nan"))]
    return row


def meter_row(meters: dict[str, float]) -> dict[str, list[float]]:
    """One row of the meter series; paper A's distances divided by their nulls (NaN where a
    meter was not measured in this row)."""
    m = dict(meters)
    for k in ("f1", "f2", "msw1", "sw1"):
        if k in m:
            null = m.get(k + "_null", float("nan"))
            m[k + "_rel"] = m[k] / null if null > 0 else float("nan")
    cols = [c for lines in METER_SERIES.values() for c, _, _ in lines]
    return {"t": [float(m["t"])], **{c: [float(m.get(c, float("nan")))] for c in cols}}


def series_bounds(columns: list) -> tuple[float, float]:
    """(lo, hi) covering the finite values of some columns, padded; rounded so that small
    changes do not resend the range every flush."""
    v = np.concatenate([np.asarray(c, float) for c in columns])
    v = v[np.isfinite(v)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1e-6)
    lo, hi = lo - pad, hi + pad
    step = 10 ** np.floor(np.log10(max(hi - lo, 1e-12))) / 4
    return float(np.floor(lo / step) * step), float(np.ceil(hi / step) * step)


def spectrum_data(levels: np.ndarray, mult: np.ndarray) -> dict:
    """Stems (one per distinct level), labels with multiplicities, collective/relative marks."""
    if len(levels) == 0:
        return {"stems": {"x": [], "top": [], "bottom": [], "label": []}, "collective": np.nan, "relative": np.nan}
    top = float(levels.max())
    shown = np.maximum(levels, top * 1e-6) if top > 0 else np.abs(levels) + 1e-12
    floor = float(shown.min()) / 3
    x = np.arange(1, len(levels) + 1, dtype=float)
    dense = len(levels) > 2
    labels = [("" if dense and i > 0 else f"×{int(m)}") for i, m in enumerate(mult)]
    relative = float(np.median(shown[1:])) if len(shown) > 1 else np.nan
    return {"stems": {"x": x, "top": shown, "bottom": np.full(len(x), floor), "label": labels},
            "collective": float(shown[0]), "relative": relative}


def image_grid(images: np.ndarray, cols: int = 4, gap: int = 1) -> np.ndarray:
    """(k, h, w) -> one (rows·(h+gap), cols·(w+gap)) image, first image top left (Bokeh's y is up)."""
    k, h, w = images.shape
    rows = -(-k // cols)
    out = np.full((rows * (h + gap), cols * (w + gap)), np.nan, np.float32)
    for i in range(k):
        r, c = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = images[i]
    return out[::-1].copy()


# ---------------------------------------------------------------- the figures
def _fig(title: str, tools: str = TOOLS, **kw):
    f = figure(title=title, tools=tools, toolbar_location="above", output_backend="canvas", **kw)
    f.toolbar.logo = None
    f.title.text_font_size = "12px"
    return f


def label_room(n: int) -> float:
    """Share of a series figure's height its n line labels take at the top (`_lines`)."""
    return (20 + 14 * (n - 1)) / SERIES_FRAME[1]


def with_room(lo: float, hi: float, n: int) -> tuple[float, float]:
    """A y range that holds [lo, hi] below the n labels at its top, so no label covers a line."""
    f = label_room(n)
    return lo, hi + (hi - lo) * f / (1 - f)


def _series_fig(title: str, x_range, source: ColumnDataSource, lines: list, marks: ColumnDataSource):
    f = _fig(title, tools="", frame_width=SERIES_FRAME[0], frame_height=SERIES_FRAME[1], x_range=x_range,
             y_range=Range1d(*with_room(0, 1.05, len(lines))))
    f.toolbar_location = None
    f.vspan(x="t", source=marks, line_color=MARK, line_dash="dashed", line_width=1.2)
    _lines(f, source, lines)
    f.xaxis.axis_label = "step"
    return f


def _lines(f, source: ColumnDataSource, lines: list) -> list:
    """Draw `lines` with their labels; returns the models (to show or hide them together)."""
    models = []
    for i, (key, legend, colour) in enumerate(lines):
        # on the overlay: a flush repaints the lines only (the ranges always hold the data, see _fit_series)
        models.append(f.line("t", key, source=source, color=colour, line_width=1.8, level=LIVE_LEVEL))
        # canvas labels, not a Legend: Bokeh rebuilds a legend's DOM on every redraw
        models.append(Label(x=6, y=SERIES_FRAME[1] - 16 - 14 * i, x_units="screen", y_units="screen",
                            text=f"— {legend}", text_color=colour, text_font_size="10px",
                            background_fill_color="white", background_fill_alpha=0.7))
        f.add_layout(models[-1])
    return models


class Views:
    """The figures of one session and how a frame updates them."""

    def __init__(self):
        self.scene_build = -1
        self.epoch = -1
        self.distances = False        # the modes figure shows distances (Scene.distances)
        self._refit = False           # a new run: its time axis starts afresh
        self._rows: dict[str, list[float]] = {}
        self._meter_rows: dict[str, list[float]] = {}
        self._marks: tuple = ()
        # steps where a change kept the run (`Worker.marks`): a dashed vertical line in every series
        self.marks = ColumnDataSource({"t": []}, name="marks")
        self._particles_fig()
        self._series_figs()
        self._meter_figs()
        self._spectrum_fig()
        self._images_fig()

    def _particles_fig(self):
        # scales with the screen (a phone), at most PARTICLES_PX wide: with its toolbar and colour bar
        # it then fits a 1280×720 laptop's first screen under the header and transport
        f = _fig("Particles: starting the simulation…", width=PARTICLES_PX, height=PARTICLES_PX + 60,
                 sizing_mode="scale_width", max_width=PARTICLES_PX, min_width=260, x_range=Range1d(-3, 3),
                 y_range=Range1d(-3, 3), match_aspect=True, css_classes=["particle-plot"])
        self.field_mapper = LinearColorMapper(palette=FIELD_PALETTE, low=-1, high=1)
        self._field_lim: float | None = None
        self.field = ColumnDataSource({"image": [np.zeros((2, 2), np.float32)], "x": [-3], "y": [-3], "dw": [6],
                                       "dh": [6]}, name="field")
        self.field_image = f.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.field,
                                   color_mapper=self.field_mapper, alpha=0.45)
        self.colour_bar = ColorBar(color_mapper=self.field_mapper, title=FIELD_TITLE, title_text_font_size="10px",
                                   major_label_text_font_size="9px", height=10, orientation="horizontal",
                                   title_standoff=4, padding=4)
        f.add_layout(self.colour_bar, "below")
        self.target = ColumnDataSource({"x": [], "y": []}, name="target")
        f.scatter("x", "y", source=self.target, size=2, color=TARGET, alpha=0.35)
        self.modes = ColumnDataSource({"x": [], "y": [], "r": []}, name="modes")
        f.circle("x", "y", radius="r", source=self.modes, fill_alpha=0, line_color=TARGET, line_dash="dashed",
                 line_alpha=0.8)
        self.arrows = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []}, name="arrows")
        # heads on the particle's end + F: which way each particle is pushed (towards green)
        f.add_layout(Arrow(source=self.arrows, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                           line_color="#333333", line_width=1.2, line_alpha=0.8, level=LIVE_LEVEL,
                           end=VeeHead(size=6, line_color="#333333", fill_color="#333333", line_width=1)))
        self.particles = ColumnDataSource({"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)},
                                          name="particles")
        f.scatter("x", "y", source=self.particles, size=4.5, fill_color=PARTICLE, line_color=None, alpha=0.9,
                  level=LIVE_LEVEL)
        self.particle_fig = f

    def _series_figs(self):
        keys = [m for v in SERIES.values() for m, _, _ in v] + [m for m, _, _ in DISTANCES]
        self.series = ColumnDataSource({k: [] for k in ["t"] + keys}, name="series")
        # ranges are set from the data on each flush: BokehJS auto-ranging of four figures
        # costs the browser more, and warns while the series are empty
        self.series_x = Range1d(0, 100)
        self.series_figs = {}
        for name, lines in SERIES.items():
            self.series_figs[name] = _series_fig(TITLES[name], self.series_x, self.series, lines, self.marks)
        modes = self.series_figs["modes"]
        self._mode_models = modes.renderers + [m for m in modes.center if isinstance(m, Label)]
        self._distance_models = _lines(modes, self.series, DISTANCES)
        for m in self._distance_models:
            m.visible = False

    def _meter_figs(self):
        """One figure per companion meter, shown only for the runs it applies to."""
        self.meter_series = ColumnDataSource({"t": [], **{c: [] for v in METER_SERIES.values() for c, _, _ in v}},
                                             name="meters")
        self.meter_figs = {}
        for name, lines in METER_SERIES.items():
            f = _series_fig(METER_TITLES[name], self.series_x, self.meter_series, lines, self.marks)
            if name in METER_REFERENCE:
                f.add_layout(Span(location=METER_REFERENCE[name], dimension="width", line_color="#999999",
                                  line_dash="dashed", line_width=1))
            f.name, f.visible = f"meter-{name}", False
            self.meter_figs[name] = f

    def _spectrum_fig(self):
        f = _fig("Kernel spectrum Θ", tools="save", width=540, height=260, sizing_mode="scale_width", max_width=540,
                 min_width=300, y_axis_type="log", x_range=Range1d(0, 3),
                 y_range=Range1d(0.1, 10))
        self.spectrum = ColumnDataSource({"x": [], "top": [], "bottom": [], "label": []}, name="spectrum")
        f.segment("x", "bottom", "x", "top", source=self.spectrum, color="#444444", line_width=2)
        f.scatter("x", "top", source=self.spectrum, size=7, color="#444444")
        f.add_layout(LabelSet(x="x", y="top", text="label", source=self.spectrum, x_offset=6, y_offset=-4,
                              text_font_size="11px"))
        self.collective = Span(dimension="width", line_color="#ff7f0e", line_dash="dashed", line_width=1.5)
        self.relative = Span(dimension="width", line_color="#1f77b4", line_dash="dashed", line_width=1.5)
        f.add_layout(self.collective)
        f.add_layout(self.relative)
        f.xaxis.axis_label = "eigenvalue index (orange: collective level, blue: relative level)"
        self.spectrum_fig = f

    def _images_fig(self):
        f = _fig("Particles as images", width=260, height=260, x_range=Range1d(0, 1), y_range=Range1d(0, 1),
                 tools="save")
        self.images = ColumnDataSource({"image": [np.zeros((2, 2), np.float32)], "dw": [1], "dh": [1]},
                                       name="images")
        f.image(image="image", x=0, y=0, dw="dw", dh="dh", source=self.images,
                color_mapper=LinearColorMapper(palette="Greys256", low=1, high=0))
        f.axis.visible = False
        f.grid.visible = False
        f.visible = False
        self.images_fig = f

    # ------------------------------------------------------------ per frame
    def update(self, frame: Frame) -> None:
        """Push one frame (time series wait for `flush`); call inside `pn.io.hold()` so it goes out
        as one message."""
        sc = frame.scene
        if sc.build != self.scene_build:
            self.set_scene(sc)
        if frame.epoch != self.epoch:
            self.epoch = frame.epoch
            self._refit = True
            self._field_lim = None                 # a new run: the colour bar starts from its field
            self._rows, self._meter_rows = {}, {}
            self.series.data = {k: [] for k in self.series.data}
            self.meter_series.data = {k: [] for k in self.meter_series.data}
            self.arrows.data = arrow_data(frame)
            self.set_marks(frame.epoch, ())
        xr, yr = self.particle_fig.x_range, self.particle_fig.y_range      # as the user panned or zoomed
        self.particles.data = particle_data(frame, (xr.start, xr.end, yr.start, yr.end))
        if frame.arrows is not None or len(self.arrows.data["x0"]):
            self.arrows.data = arrow_data(frame)
        if frame.field is not None:
            data, lim = field_data(frame)
            self.field.data = data
            self._field_lim = steady_limit(self._field_lim, lim)
            self.field_mapper.update(low=-self._field_lim, high=self._field_lim)
        if frame.spectrum is not None:
            self.set_spectrum(*frame.spectrum, n=sc.particles)
        if frame.images is not None:
            g = image_grid(frame.images)
            self.images.data = {"image": [g], "dw": [1.0], "dh": [g.shape[0] / g.shape[1]]}
        for k, v in series_row(frame).items():
            self._rows.setdefault(k, []).extend(v)
        if frame.meters:
            for k, v in meter_row(frame.meters).items():
                self._meter_rows.setdefault(k, []).extend(v)

    def set_marks(self, epoch: int, steps: tuple) -> None:
        """The steps of the changes that kept the run of `epoch` (`Worker.marks`); others' are stale."""
        if epoch == self.epoch and tuple(steps) != self._marks:
            self._marks = tuple(steps)
            self.marks.data = {"t": list(self._marks)}

    def flush(self) -> None:
        """Send the time-series rows gathered since the last flush (the page redraws four
        figures per flush, so the caller flushes a few times a second, not every frame)."""
        if self._meter_rows:
            self.meter_series.stream(self._meter_rows, rollover=ROLLOVER)
            self._meter_rows = {}
        if self._rows:
            self.series.stream(self._rows, rollover=ROLLOVER)
            self._rows = {}
            self._fit_series()

    def _fit_series(self) -> None:
        """Widen the fixed ranges in steps, only when the data leave them (every range change
        makes the browser lay the four figures out again)."""
        data = self.series.data
        t = np.asarray(data["t"], float)
        if not len(t):
            return
        x = self.series_x
        refit, self._refit = self._refit, False
        if refit or t[-1] > x.end or t[0] < x.start or t[0] > x.start + 0.25 * (x.end - x.start):
            span = max(t[-1] - t[0], 10.0)
            step = 10 ** np.floor(np.log10(span)) / 2
            x.update(start=float(np.floor(t[0] / step) * step), end=float(np.ceil((t[-1] + 0.3 * span) / step) * step))
        figs = [(self.series_figs[n], [data[k] for k, _, _ in lines], len(lines))
                for n, lines in SERIES.items() if n != "modes"]
        if self.distances:          # coverage and entropy sit in [0, 1]; distances have no fixed scale
            figs.append((self.series_figs["modes"], [data[k] for k, _, _ in DISTANCES] + [[0.0]], len(DISTANCES)))
        meters = self.meter_series.data
        figs += [(self.meter_figs[n], [meters[k] for k, _, _ in lines] + [[METER_REFERENCE.get(n, np.nan)]],
                  len(lines)) for n, lines in METER_SERIES.items() if self.meter_figs[n].visible]
        for f, columns, labels in figs:
            lo, hi = with_room(*series_bounds(columns), labels)
            r = f.y_range
            if refit or lo < r.start or hi > r.end or (hi - lo) < 0.3 * (r.end - r.start):
                r.update(start=lo, end=hi)

    def set_scene(self, sc: Scene) -> None:
        self.scene_build = sc.build
        x0, x1, y0, y1 = sc.extent
        f = self.particle_fig
        f.x_range.update(start=x0, end=x1, reset_start=x0, reset_end=x1)
        f.y_range.update(start=y0, end=y1, reset_start=y0, reset_end=y1)
        f.title.text = sc.title + ("" if sc.dim <= 2 else " · shown in its two principal axes")
        cols = scene_data(sc)
        self.target.data = cols["target"]
        self.modes.data = cols["modes"]
        self.field.data = {"image": [np.zeros((2, 2), np.float32)], "x": [x0], "y": [y0], "dw": [x1 - x0],
                           "dh": [y1 - y0]}
        self.images_fig.visible = sc.image_shape is not None
        # a critic without a value (conditional transport) paints no field: no background, and the
        # colour bar says so instead of scaling a constant to ±1e-12
        self.field_image.visible = sc.valued
        self.colour_bar.title = FIELD_TITLE if sc.valued else NO_FIELD_TITLE
        self.colour_bar.visible = sc.valued
        self.distances = sc.distances
        for m in self._mode_models:
            m.visible = not sc.distances
        for m in self._distance_models:
            m.visible = sc.distances
        modes = self.series_figs["modes"]
        modes.title.text = DISTANCES_TITLE if sc.distances else TITLES["modes"]
        if not sc.distances:
            lo, hi = with_room(0, 1.05, len(SERIES["modes"]))
            modes.y_range.update(start=lo, end=hi)
        for name, f in self.meter_figs.items():
            f.visible = name in sc.meters
        self.spectrum.data = {"x": [], "top": [], "bottom": [], "label": []}

    def set_spectrum(self, levels: np.ndarray, mult: np.ndarray, n: int | None = None) -> None:
        """n: the number of eigenvalues Θ has; fewer levels than that are its top ones."""
        d = spectrum_data(levels, mult)
        partial = bool(len(levels)) and n is not None and int(np.sum(mult)) < n
        self.spectrum.data = d["stems"]
        if len(levels):
            top, floor = float(np.max(d["stems"]["top"])), float(np.min(d["stems"]["bottom"]))
            self.spectrum_fig.x_range.update(start=0.5, end=len(levels) + (0.8 if len(levels) < 5 else 0.5))
            self.spectrum_fig.y_range.update(start=10 ** np.floor(np.log10(floor)),      # whole decades
                                             end=10 ** np.ceil(np.log10(top * 1.5)))
        ok = np.isfinite(d["collective"])
        self.collective.update(location=d["collective"] if ok else None, visible=bool(ok))
        rel = d["relative"]
        rel_ok = bool(np.isfinite(rel)) and not partial        # a median of the top levels is no relative level
        self.relative.update(location=rel if rel_ok else None, visible=rel_ok)
        self.spectrum_fig.title.text = ("Kernel spectrum Θ (not computed live for this N)" if not len(levels) else
                                        f"Kernel spectrum Θ: top {len(levels)} of {n} eigenvalues" if partial else
                                        "Kernel spectrum Θ")


def draw_figure() -> tuple:
    """A small canvas to click target points onto (Bokeh's PointDrawTool)."""
    f = figure(title="Your own target", width=260, height=260, x_range=Range1d(-3, 3), y_range=Range1d(-3, 3),
               tools="reset", toolbar_location="above", output_backend="canvas", css_classes=["draw-target"])
    f.toolbar.logo = None
    f.title.text_font_size = "12px"
    src = ColumnDataSource({"x": [], "y": []}, name="drawn")
    r = f.scatter("x", "y", source=src, size=8, color=TARGET)
    tool = PointDrawTool(renderers=[r], add=True, drag=True)
    f.add_tools(tool)
    f.toolbar.active_tap = tool
    return f, src
