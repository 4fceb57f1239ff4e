"""The side-by-side view: a card to choose the knob and its values, and 2 to 4 particle panels.

The panels share one x and one y range (Bokeh shares the Range1d objects, so a pan or zoom
moves all of them); each is captioned by its value and its live coverage, in canvas titles
(text, never HTML). The page's transport drives the one worker that steps every member, and
the page's frame tick calls `update`, which reads the group's newest snapshot (`compare.View`).
"""
from __future__ import annotations

import html

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, Range1d, Title
from bokeh.plotting import figure

from dynamics.knobs import KNOBS, inapplicable

from . import compare, knobui, views
from .state import ATTR, Lab

PANEL_PX = {2: 440, 3: 340, 4: 255}      # a panel's largest width by how many there are: one row on a laptop
MIN_PX = 220                             # narrower screens (a phone) stack the panels
NOTE = {"font-size": "12px", "color": "#555"}
DIVERGED = "#c0392b"


def _panel(i: int, x_range: Range1d, y_range: Range1d):
    f = figure(width=PANEL_PX[2], height=PANEL_PX[2] + 40, sizing_mode="scale_width", max_width=PANEL_PX[2],
               min_width=MIN_PX, x_range=x_range, y_range=y_range, match_aspect=True,
               tools="pan,wheel_zoom,reset", toolbar_location="below", output_backend="canvas",
               name=f"compare-fig-{i}", title="")
    f.toolbar.logo = None
    f.title.text_font_size = "14px"
    note = Title(text="", text_font_size="12px", text_font_style="normal", text_color="#333333")
    f.add_layout(note, "above")          # added above the main title: the value first, then the coverage
    target = ColumnDataSource({"x": [], "y": []}, name=f"compare-target-{i}")
    modes = ColumnDataSource({"x": [], "y": [], "r": []}, name=f"compare-modes-{i}")
    parts = ColumnDataSource({"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)},
                             name=f"compare-particles-{i}")
    f.scatter("x", "y", source=target, size=2, color=views.TARGET, alpha=0.35)
    f.circle("x", "y", radius="r", source=modes, fill_alpha=0, line_color=views.TARGET, line_dash="dashed",
             line_alpha=0.8)
    f.scatter("x", "y", source=parts, size=4.5, fill_color=views.PARTICLE, line_color=None, alpha=0.9)
    return f, note, target, modes, parts


def coverage_text(shot: compare.Shot, t: int, extent: tuple) -> str:
    if shot.diverged_step >= 0:
        return f"diverged at step {shot.diverged_step:,} (frozen there)"
    x0, x1, y0, y1 = extent
    x, y = shot.xy[:, 0], shot.xy[:, 1]
    out = int(np.count_nonzero((x < x0) | (x > x1) | (y < y0) | (y > y1)))
    away = f" · {out} outside the view (zoom out)" if out else ""
    if shot.covered < 0:
        return f"step {t:,} · your points: no mode count{away}"
    return f"modes covered {shot.covered} / {shot.modes} · step {t:,}{away}"


class CompareView:
    """The compare card and its panels for one session (`panels` goes where the particles are)."""

    def __init__(self, lab: Lab, single=None):
        self.lab = lab
        self.single = single                  # the single particle view, hidden while comparing
        self.key = pn.widgets.Select(label="knob to compare", width=260, css_classes=["cmp-key"])
        self.values = pn.widgets.TextInput(label=f"its values ({compare.VALUES[0]} to {compare.VALUES[1]}, "
                                                "comma-separated)", width=300, css_classes=["cmp-values"])
        self.go = pn.widgets.Button(label="Compare side by side", color="primary", css_classes=["cmp-go"])
        # one beside the panels, one in the card (the card may be scrolled away)
        self.leave = [pn.widgets.Button(label="Back to the single view", visible=False, css_classes=["cmp-leave"])
                      for _ in range(2)]
        self.kind = pn.pane.Markdown("", styles=NOTE, css_classes=["cmp-kind"], sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["cmp-alert"],
                                   sizing_mode="stretch_width")
        self.go.on_click(lambda e: self.start())
        for b in self.leave:
            b.on_click(lambda e: self.stop())
        self.key.param.watch(lambda e: self.propose(), "value")
        x, y = Range1d(-3, 3), Range1d(-3, 3)        # shared by every panel
        self.figs = [_panel(i, x, y) for i in range(compare.VALUES[1])]
        self.x_range, self.y_range = x, y
        self.boxes = [pn.Column(pn.pane.Bokeh(f[0]), visible=False, margin=(0, 4), sizing_mode="stretch_width",
                                min_width=MIN_PX, max_width=PANEL_PX[2]) for f in self.figs]
        self.note = pn.pane.Markdown("", styles=NOTE, css_classes=["cmp-note"], sizing_mode="stretch_width",
                                margin=(0, 10))
        self.panels = pn.Column(pn.Row(self.note, self.leave[0], sizing_mode="stretch_width"),
                                pn.FlexBox(*self.boxes), visible=False, sizing_mode="stretch_width",
                                css_classes=["cmp-panels"])
        self._shown = (None, -1)              # (group, version) on the panels
        self._scenes = None
        self._extent = (-3.0, 3.0, -3.0, 3.0)
        self._captions = [("", "")] * len(self.figs)
        self.options()
        lab.param.watch(lambda *e: self.options(), ["teach"] + sorted({ATTR[r[0]] for r in knobui.APPLIES.values()}))
        lab.param.watch(lambda *e: self.mode(), "compare")
        self.mode()

    # ------------------------------------------------------------ the request
    def options(self) -> None:
        """The knobs that matter for the running setting, by their (teach mode) labels."""
        values = {**{k: v.default for k, v in KNOBS.items()}, **self.lab.knob_values()}
        keys = [k for k in compare.COMPARABLE if inapplicable(k, values) is None]
        old = self.key.value
        self.key.options = {knobui.shown_label(KNOBS[k], self.lab.teach): k for k in keys}
        self.key.value = old if old in keys else ("disc.activation" if "disc.activation" in keys else keys[0])
        if self.key.value == old:
            self.propose()

    def propose(self) -> None:
        key = self.key.value
        if key is None:
            return
        current = getattr(self.lab, ATTR[key])
        self.values.value = ", ".join(compare.fmt(v) for v in compare.propose(key, current))
        how = ("live knob: the runs are members of one batch along the engine's leading axis"
               if KNOBS[key].role == "hyper" else
               "structural knob: one simulation per value, stepped in lockstep in the session's worker")
        self.kind.object = html.escape(how)

    def request_text(self) -> str:
        return f"{self.key.value}:{self.values.value}"

    def start(self) -> bool:
        ok = self.lab.start_compare(self.request_text())
        # the lab's message sits at the top of the page: a failure is said here too, as text
        self.alert.param.update(object="" if ok else html.escape(self.lab.message), visible=not ok)
        return ok

    def stop(self) -> None:
        self.alert.visible = False
        self.lab.stop_compare()

    # ------------------------------------------------------------ the panels
    def mode(self) -> None:
        on = bool(self.lab.compare)
        self.panels.visible = self.leave[0].visible = self.leave[1].visible = on
        if self.single is not None:
            self.single.visible = not on
        if on:
            req = compare.parse(self.lab.compare)
            n = len(req.values)
            for i, (box, fig) in enumerate(zip(self.boxes, self.figs)):
                box.visible = i < n
                fig[0].max_width = box.max_width = PANEL_PX[n]
            if self.key.value != req.key and req.key in self.key.values:
                self.key.value = req.key
            self.values.value = ", ".join(compare.fmt(v) for v in req.values)

    def update(self) -> None:
        """Push the group's newest snapshot (called inside the page's `pn.io.hold()`)."""
        group = self.lab.group
        if not self.lab.compare or group is None:
            return
        view = group.latest()
        if view is None or (group, view.version) == self._shown:
            return
        self._shown = (group, view.version)
        if view.scenes is not self._scenes:
            self._scenes = view.scenes
            self._extent = compare.shared_extent(view.scenes)
            self.note.object = html.escape(f"{group.how}; same seed, and the transport above drives all of them. "
                                           f"The series, spectrum and downloads below follow the first panel "
                                           f"({group.labels[0]}).")
            x0, x1, y0, y1 = self._extent
            self.x_range.update(start=x0, end=x1, reset_start=x0, reset_end=x1)
            self.y_range.update(start=y0, end=y1, reset_start=y0, reset_end=y1)
            for i, (_, _, target, modes, _) in enumerate(self.figs[:len(view.shots)]):
                cols = views.scene_data(view.scenes[min(i, len(view.scenes) - 1)])
                target.data, modes.data = cols["target"], cols["modes"]
        for i, (shot, (fig, note, _, _, parts)) in enumerate(zip(view.shots, self.figs)):
            parts.data = {"x": np.ascontiguousarray(shot.xy[:, 0]), "y": np.ascontiguousarray(shot.xy[:, 1])}
            caption = (shot.label, coverage_text(shot, view.t, self._extent))
            if caption != self._captions[i]:         # titles change only when their text does
                self._captions[i] = caption
                fig.title.text, note.text = caption
                note.text_color = DIVERGED if shot.diverged_step >= 0 else "#333333"

    def card(self):
        return pn.Card(
            pn.pane.Markdown("Run 2 to 4 copies of the current setting that differ in one knob, from the same "
                             "seed, side by side with the same axes; Play, Pause, Step, Reset and the speed act "
                             "on all of them. The values are proposed around the current one; edit them freely.",
                             styles={"font-size": "12px"}, sizing_mode="stretch_width"),
            pn.FlexBox(self.key, self.values), self.kind, pn.FlexBox(self.go, self.leave[1]), self.alert,
            title="Side by side", collapsed=False, sizing_mode="stretch_width", margin=(4, 0),
            css_classes=["compare-card"])
