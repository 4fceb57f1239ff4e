"""The lab's phase-map card: axis pickers, a heatmap that fills in as the chunks of a
`phasemap.MapRun` land, and a click on a cell that moves the live knobs there (the same path
as a knob widget, so the URL follows); downloads of the map's spec, netCDF and figure.
"""
from __future__ import annotations

import html
import io
import math

import numpy as np
import panel as pn
import xarray as xr
from bokeh.models import ColorBar, ColumnDataSource, FixedTicker, HoverTool, LinearColorMapper, Range1d, TapTool
from bokeh.plotting import figure

from dynamics.knobs import KNOBS, ConfigError, one_line

from . import knobui

from .phasemap import (CATEGORICAL, COLOURS, FIGURE_FORMATS, SEEDS, STEPS, STORED, Axis, MapRun, Request,
                       axis_keys, cells, default_request, figure_bytes, is_log, netcdf_bytes, plan_map, propose,
                       spec_text)
from .state import ATTR

REFRESH_MS = 200           # how often a running map's cells are pulled into the page
CELLS_SIZE = (300, 500, 380)   # px: the heatmap's least and widest width (it fits a phone), its height


def _ticks(values) -> dict[int, str]:
    return {i: (f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)) for i, v in enumerate(values)}


def _position(values, value, log: bool) -> float | None:
    """The fractional cell index of `value` along an axis (None: outside it or not on it)."""
    if isinstance(values[0], str):
        return float(list(values).index(value)) if value in list(values) else None
    v = np.asarray(values, float)
    t = np.log(v) if log else v
    x = math.log(value) if log and value > 0 else (None if log else float(value))
    if x is None:
        return None
    idx = np.arange(len(v), dtype=float)
    order = np.argsort(t)
    if not t[order][0] - 1e-12 <= x <= t[order][-1] + 1e-12:
        return None
    return float(np.interp(x, t[order], idx[order]))


class MapView:
    """The card: pickers, buttons, progress, the heatmap and its downloads, for one Lab."""

    def __init__(self, lab):
        self.lab = lab
        self.run: MapRun | None = None
        self.shown = (-1, -1)                     # (run id, version) drawn
        self.count = 0                            # maps started on this card
        cfg = lab.knob_values()
        req = default_request(cfg)
        keys = axis_keys()
        self.sides = {}
        for side, a in (("x", req.x), ("y", req.y)):
            w = dict(key=pn.widgets.Select(label=f"{side} axis", options=keys, value=a.key, width=150,
                                           css_classes=[f"pm-{side}-key"]),
                     start=pn.widgets.FloatInput(label="from", value=a.start, width=80,
                                                 css_classes=[f"pm-{side}-start"]),
                     stop=pn.widgets.FloatInput(label="to", value=a.stop, width=80, css_classes=[f"pm-{side}-stop"]),
                     points=pn.widgets.IntInput(label="points", value=a.points, width=70,
                                                css_classes=[f"pm-{side}-points"]),
                     values=pn.widgets.TextInput(label="values", value=", ".join(a.values), width=230,
                                                 visible=False, css_classes=[f"pm-{side}-values"]))
            w["key"].param.watch(lambda e, side=side: self._propose(side), "value")
            self.sides[side] = w
        self.seeds = pn.widgets.IntInput(label="seeds per cell", value=2, start=SEEDS[0], end=SEEDS[1], width=100,
                                         css_classes=["pm-seeds"])
        self.steps = pn.widgets.IntInput(label="steps", value=2000, start=STEPS[0], end=STEPS[1], width=100,
                                         css_classes=["pm-steps"])
        self.fused = pn.widgets.Checkbox(label="fused step (compiled once per setting and kept on disk: the "
                                               "first map of a setting waits ~30 s for the compiler)", value=True, css_classes=["pm-compile"],
                                         sizing_mode="stretch_width")
        self.restart = pn.widgets.Checkbox(label="a click restarts the run at that cell", value=True,
                                           css_classes=["pm-restart"], sizing_mode="stretch_width")
        self.metric = pn.widgets.Select(label="colour", options={v: k for k, v in COLOURS.items()},
                                        value="coverage", width=200, css_classes=["pm-metric"])
        self.go = pn.widgets.Button(label="Map the neighbourhood", color="primary", css_classes=["pm-go"])
        self.stop = pn.widgets.Button(label="Cancel", disabled=True, css_classes=["pm-cancel"])
        self.again = pn.widgets.Button(label="Ranges around the live setting", css_classes=["pm-propose"])
        self.progress = pn.indicators.Progress(value=0, max=100, width=280, visible=False, bar_color="primary")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["pm-alert"],
                                   sizing_mode="stretch_width")
        self.go.on_click(lambda e: self.start())
        self.stop.on_click(lambda e: self.cancel())
        self.again.on_click(lambda e: [self._propose(s) for s in self.sides])
        self.metric.param.watch(lambda e: self._draw(force=True), "value")

        self.source = ColumnDataSource({k: [] for k in ("i", "j", "value", "x", "y", "conv", *STORED, "state")},
                                       name="phasemap-cells")
        self.here = ColumnDataSource({"i": [], "j": []}, name="phasemap-here")
        self.crossed = ColumnDataSource({"i": [], "j": []}, name="phasemap-diverged")    # a seed diverged
        self.mapper = LinearColorMapper(palette="Viridis256", low=0, high=1, nan_color="#e8e8e8")
        f = figure(height=CELLS_SIZE[2], sizing_mode="stretch_width", min_width=CELLS_SIZE[0],
                   max_width=CELLS_SIZE[1], tools="", toolbar_location=None,
                   x_range=Range1d(-0.5, 0.5), y_range=Range1d(-0.5, 0.5), name="phasemap", title="phase map")
        cells_r = f.rect("i", "j", width=1, height=1, source=self.source, line_color=None,
                         fill_color={"field": "value", "transform": self.mapper},
                         selection_fill_alpha=1.0, nonselection_fill_alpha=1.0)
        f.scatter("i", "j", source=self.crossed, marker="x", size=12, line_color="#D55E00", line_width=2)
        f.scatter("i", "j", source=self.here, marker="star", size=18, fill_color="white", line_color="black",
                  line_width=1.5)
        tips = [("cell", "@x, @y"), ("modes covered / K", "@coverage{0.000}"), ("mode entropy", "@mode_entropy{0.000}"),
                ("KL to uniform", "@mode_kl{0.000}"), ("spread / mode spacing", "@spread_rel{0.000}"),
                ("convergence step", "@conv"), ("diverged", "@diverged{0%}"), ("", "@state")]
        f.add_tools(HoverTool(renderers=[cells_r], tooltips=tips), TapTool(renderers=[cells_r]))
        self.bar = ColorBar(color_mapper=self.mapper, width=12, title="modes covered / K")
        f.add_layout(self.bar, "right")
        for ax in (f.xaxis, f.yaxis):
            ax.ticker = FixedTicker(ticks=[])
        f.toolbar.logo = None
        self.fig = f
        self.source.selected.on_change("indices", self._tapped)
        self.cb = None
        self.downloads = [self._download(self.spec_bytes, "phasemap.toml", "sweep spec (TOML)", 140, needs_map=False),
                          self._download(lambda: netcdf_bytes(self._ds()), "phasemap.nc", "netCDF", 80)]
        self.downloads += [self._download(lambda fmt=fmt: figure_bytes(self._ds(), self.run.mp.request,
                                                                       self.metric.value, fmt),
                                          f"phasemap.{fmt}", fmt.upper(), 60)
                           for fmt in FIGURE_FORMATS]
        lab.param.watch(lambda *e: self._mark(), [ATTR[k] for k in axis_keys() if k in ATTR])
        for s in self.sides:
            self._show_kind(s)

    # ------------------------------------------------------------ layout
    def layout(self):
        """Controls and heatmap side by side; on a narrow screen each wraps below the other."""
        wide = dict(sizing_mode="stretch_width", max_width=CELLS_SIZE[1])
        rows = [pn.FlexBox(*(self.sides[s][k] for k in ("key", "start", "stop", "points", "values")))
                for s in self.sides]
        controls = pn.Column(
            pn.pane.Markdown("Where does mode collapse begin? The map runs the neighbourhood of the live setting "
                             "over two knobs (each cell a batch member, several seeds) and fills in as chunks "
                             "land; the star is the live setting, a cross a cell where a seed diverged. Click "
                             "a cell to move the simulation there.", styles={"font-size": "12px"},
                             sizing_mode="stretch_width"),
            *rows, pn.FlexBox(self.seeds, self.steps, self.metric), self.fused, self.restart,
            pn.FlexBox(self.go, self.stop, self.again), self.progress, self.alert, **wide)
        downloads = pn.FlexBox(pn.pane.Markdown("download", margin=(12, 4)), *self.downloads)
        return pn.Card(pn.FlexBox(controls, pn.Column(pn.pane.Bokeh(self.fig, **wide), downloads, **wide)),
                       title="Phase map", collapsed=False, sizing_mode="stretch_width", margin=(4, 0),
                       css_classes=["phasemap"])

    def _download(self, fn, filename, label, width, needs_map=True):

        def callback():
            try:
                if needs_map and (self.run is None or self.run.done_members == 0):
                    raise ConfigError("phase map: nothing mapped yet; allowed after Map the neighbourhood")
                return io.BytesIO(fn())
            except Exception as e:  # noqa: BLE001 - a failed export is a message, not a crash
                self._say(one_line(e))
                return io.BytesIO(b"")
        return pn.widgets.FileDownload(callback=callback, filename=filename, label=label, width=width,
                                       css_classes=[f"pm-download-{filename.rsplit('.', 1)[1]}"])

    # ------------------------------------------------------------ the request
    def _propose(self, side: str) -> None:
        w = self.sides[side]
        key = w["key"].value
        a = propose(key, getattr(self.lab, ATTR[key]), w["points"].value or 8)
        if a.categorical:
            w["values"].value = ", ".join(a.values)
        else:
            w["start"].value, w["stop"].value = a.start, a.stop
        self._show_kind(side)

    def _show_kind(self, side: str) -> None:
        w = self.sides[side]
        cat = w["key"].value in CATEGORICAL
        w["values"].visible = cat
        for k in ("start", "stop", "points"):
            w[k].visible = not cat

    def request(self) -> Request:
        def axis(side):
            w = self.sides[side]
            if w["key"].value in CATEGORICAL:
                return Axis(w["key"].value, values=tuple(v.strip() for v in w["values"].value.split(",") if v.strip()))
            return Axis(w["key"].value, w["start"].value, w["stop"].value, w["points"].value)
        return Request(axis("x"), axis("y"), self.seeds.value, self.steps.value, self.fused.value)

    def spec_bytes(self) -> bytes:
        if self.run is not None:
            return self.run.mp.toml.encode()
        return spec_text(self.lab.config(), self.lab.preset, self.request()).encode()

    def _say(self, text: str) -> None:
        # one line from a knob check or a library: escaped, it shows as text
        self.alert.param.update(object=html.escape(text), visible=bool(text))

    # ------------------------------------------------------------ running
    def start(self) -> MapRun | None:
        """Plan the map from the widgets and the live config; a bad request is one line on the
        card and nothing else changes."""
        try:
            mp = plan_map(self.lab.config(), self.lab.preset, self.request())
        except ConfigError as e:
            self._say(str(e))
            return None
        self._say("")
        if self.run is not None:
            self.run.cancel()
        self.run = MapRun(mp).start()
        self.count += 1
        # Panel runs a click's callback without the document lock: direct changes to Bokeh
        # models go out through its hold (a busy page once raised Bokeh's lock error here)
        with pn.io.hold():
            self._axes()
            self._draw(force=True)
        if self.run.status == "running":
            self.stop.disabled = False
            self.progress.param.update(value=0, visible=True)
            if self.cb is None:
                self.cb = pn.state.add_periodic_callback(self._draw, period=REFRESH_MS)
        return self.run

    def cancel(self) -> None:
        if self.run is not None:
            self.run.cancel()

    def close(self) -> None:
        self.cancel()
        if self.cb is not None:
            self.cb.stop()
            self.cb = None

    def _ds(self) -> xr.Dataset:
        with self.run.lock:
            return self.run.ds.copy(deep=True)

    def _axes(self) -> None:
        f, req, ds = self.fig, self.run.mp.request, self.run.ds
        for ax, rng, a in ((f.xaxis, f.x_range, req.x), (f.yaxis, f.y_range, req.y)):
            values = list(ds[a.key].values)
            rng.start, rng.end = -0.5, len(values) - 0.5
            ax.ticker = FixedTicker(ticks=list(range(len(values))))
            ax.major_label_overrides = _ticks(values)
            ax.axis_label = knobui.label(KNOBS[a.key]) + (" (log)" if is_log(a.key) else "")

    def _mark(self) -> None:
        if self.run is None:
            return
        req, ds = self.run.mp.request, self.run.ds
        pos = [_position(list(ds[a.key].values), getattr(self.lab, ATTR[a.key]), is_log(a.key))
               for a in (req.x, req.y)]
        self.here.data = {"i": [pos[0]], "j": [pos[1]]} if None not in pos else {"i": [], "j": []}

    def _draw(self, force: bool = False) -> None:
        with pn.io.hold():                 # as `start`: a periodic callback holds no document lock
            self._draw_now(force)

    def _draw_now(self, force: bool) -> None:
        run = self.run
        if run is None:
            return
        key = (id(run), run.version)
        if key != self.shown or force:
            self.shown = key
            req = run.mp.request
            with run.lock:
                c = cells(run.ds, req.x.key, req.y.key)
                xs, ys = list(run.ds[req.x.key].values), list(run.ds[req.y.key].values)
            ny, nx = c["done"].shape
            jj, ii = np.mgrid[0:ny, 0:nx]
            m = self.metric.value
            data = {"i": ii.ravel(), "j": jj.ravel(), "value": c[m].ravel(),
                    "x": [_ticks(xs)[i] for i in ii.ravel()], "y": [_ticks(ys)[j] for j in jj.ravel()],
                    "state": np.where(c["done"].ravel(), "", "not yet run"),
                    "conv": [("never" if d else "") if not np.isfinite(v) else f"{v:.0f}"
                             for v, d in zip(c["convergence_step"].ravel(), c["done"].ravel())]}
            data.update({k: c[k].ravel() for k in STORED})
            self.source.data = data
            bad = np.nan_to_num(c["diverged"]) > 0
            self.crossed.data = {"i": ii[bad], "j": jj[bad]}
            lo, hi = _colour_range(m, c[m])
            self.mapper.update(low=lo, high=hi)
            self.bar.title = COLOURS[m]
            self._mark()
        done = run.done_members
        self.progress.value = int(100 * done / run.mp.members)
        word = {"running": "waiting for another map to finish" if run.queued else
                f"{done} of {run.mp.members} runs ({run.mp.cells} cells)",
                "done": f"done: {run.mp.cells} cells x {len(run.mp.spec.seeds)} seeds in "
                        + ("no time (cached)" if run.cached else f"{run.seconds:.1f} s"),
                "cancelled": f"cancelled after {done} of {run.mp.members} runs",
                "failed": f"failed: {run.error}"}[run.status]
        self.fig.title.text = f"phase map {self.count} · {word}"     # numbered: a rerun reads as new
        if run.status != "running":
            self.stop.disabled = True
            self.progress.visible = False
            if self.cb is not None:
                self.cb.stop()
                self.cb = None

    # ------------------------------------------------------------ a click
    def _tapped(self, attr, old, new) -> None:
        if not new or self.run is None:
            return
        k = new[0]
        self.source.selected.indices = []          # the same cell can be clicked again
        req, ds = self.run.mp.request, self.run.ds
        ny, nx = len(ds[req.y.key]), len(ds[req.x.key])
        j, i = divmod(k, nx)
        if not (0 <= j < ny):
            return
        self.jump(i, j)

    def jump(self, i: int, j: int) -> None:
        """Move the live knobs to cell (i, j) the way a knob widget does (the URL follows);
        with `restart`, a live-only jump starts the run afresh there."""
        req, ds = self.run.mp.request, self.run.ds
        values = {a.key: ds[a.key].values[n].item() for a, n in ((req.x, i), (req.y, j))}
        self.lab.param.update(**{ATTR[k]: v for k, v in values.items()})
        live = all(KNOBS[k].role == "hyper" for k in values)
        if live and self.restart.value:
            self.lab.reset()
        said = ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in values.items())
        how = "restarted there" if live and self.restart.value else ("applied live" if live else "rebuilt")
        self.lab.param.update(message=f"phase map: moved to {said} ({how})", message_kind="success")


def _colour_range(metric: str, values: np.ndarray) -> tuple[float, float]:
    if metric in ("coverage", "mode_entropy", "diverged"):
        return 0.0, 1.0
    v = values[np.isfinite(values)]
    if not v.size:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def panel(lab):
    """The phase map's card for the page (and its MapView, for tests)."""
    view = MapView(lab)
    doc = pn.state.curdoc
    if doc is not None and getattr(doc, "session_context", None) is not None:
        pn.state.on_session_destroyed(lambda ctx: view.close())
    card = view.layout()
    card.mapview = view
    return card
