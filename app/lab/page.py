"""One session's page: the `Lab`, its widgets, the views, the frame tick and the clean-up.

`create()` is what the server calls per browser session. Frames are pulled from the worker by
a periodic callback on the event loop and pushed inside one `pn.io.hold()`; the worker stops
when the session is destroyed.
"""
from __future__ import annotations

import html
import io
import logging
import time
import urllib.parse

import numpy as np
import panel as pn
from bokeh.models import CustomJS, Div
from panel.io.callbacks import PeriodicCallback

from dynamics import presets
from dynamics.knobs import KNOBS, ConfigError, inapplicable, one_line, resolve, show

from . import compareui, export, knobui, lessonui, mapcard, texts
from .state import ATTR, Lab
from .views import Views, draw_figure

log = logging.getLogger(__name__)

FRAME_MS = 33            # the render tick: at most ~30 frames a second per session
SLOW_MS = 500            # time series and the step counter refresh at most this often: each refresh
                         # repaints every series figure and lays the counter out again, in headless
                         # Chromium about a third of the page's CPU at 250 ms (CPU the stepping lacks)
ACCENT = "#4a2377"
SIDEBAR_WIDTH = 350
PHONE_PX = 768           # narrower than this, the sidebar starts closed and opens over the page
PHONE_CSS = f"""
@media (max-width: {PHONE_PX - 1}px) {{
  #content {{ position: relative; }}
  #sidebar {{ position: absolute; z-index: 20; left: 0; top: 0; width: 100%; max-width: 100% !important;
             background: var(--bs-body-bg); }}
  #main {{ padding: 6px 4px 20px 4px; }}
}}"""
PHONE_JS = f"""
if (window.innerWidth < {PHONE_PX}) {{
  const bar = document.getElementById('sidebar'), toggle = document.getElementById('sidebar-toggle');
  if (bar) bar.classList.remove('show');
  if (toggle) toggle.setAttribute('aria-expanded', 'false');
}}"""


# ---------------------------------------------------------------- knob widgets
def knob_widget(lab: Lab, name: str):
    """A widget for one knob, two-way linked to the lab (log sliders convert through log10)."""
    k, a = KNOBS[name], ATTR[name]
    w, to_w, from_w = knobui.make_widget(k, getattr(lab, a))
    w.css_classes = [f"knob-{a}"]                     # a stable handle for browser tests
    w.label = knobui.shown_label(k, lab.teach)       # teach mode: plain words beside the key
    lab.param.watch(lambda e: setattr(w, "label", knobui.shown_label(k, e.new)), "teach")
    kind = knobui.widget_kind(k)
    # structural sliders apply on release (each change rebuilds); live ones while dragging
    event = "value_throttled" if kind in ("slider", "log") and k.role != "hyper" else "value"
    busy = [False]

    def to_lab(e):
        if not busy[0] and e.new is not None:
            setattr(lab, a, from_w(e.new))

    def to_widget(e):
        busy[0] = True
        try:
            if kind == "log" and e.new > 0:
                lo, hi = knobui.log_range(k, e.new)
                w.param.update(start=min(w.start, np.log10(lo)), end=max(w.end, np.log10(hi)))
            w.value = to_w(e.new)
        finally:
            busy[0] = False

    w.param.watch(to_lab, event)
    lab.param.watch(to_widget, a)
    if "description" in w.param:
        w.description = knobui.help_text(k)
        return w
    return pn.Row(w, pn.widgets.TooltipIcon(value=knobui.help_text(k), margin=(18, 0, 0, 0), width=20),
                  sizing_mode="stretch_width")


def knob_cards(lab: Lab):
    widgets = {k.name: knob_widget(lab, k.name) for k in knobui.SHOWN}
    groups: dict[str, list] = {}
    for k in knobui.SHOWN:
        groups.setdefault(knobui.group(k), []).append(widgets[k.name])

    def refresh(*_):
        values = {**{k: v.default for k, v in KNOBS.items()}, **lab.knob_values()}
        for k in knobui.SHOWN:                     # the whole chain: reg.strength needs a penalty and an ascent critic
            applies = k.name not in knobui.APPLIES or inapplicable(k.name, values) is None
            widgets[k.name].visible = applies and not (lab.teach and k.advanced)

    lab.param.watch(refresh, ["teach"] + sorted({ATTR[r[0]] for r in knobui.APPLIES.values()}))
    refresh()
    open_groups = {"Generator kernel", "Discriminator", "Loss & regulariser"}
    return [pn.Card(*ws, title=g, collapsed=g not in open_groups, sizing_mode="stretch_width", margin=(4, 0))
            for g, ws in groups.items()], widgets


# ---------------------------------------------------------------- sidebar parts
def transport(lab: Lab):
    play = pn.widgets.Toggle(value=lab.running, color="primary", width=100)
    step = pn.widgets.Button(label="Step", width=80)
    reset = pn.widgets.Button(label="Reset", width=80)
    # a raw Bokeh Div: updating a Panel widget ten times a second costs the event loop more
    counter = Div(text=step_text(0), name="step-counter", css_classes=["step-counter"])
    covered = Div(text="", name="coverage-readout", css_classes=["coverage-readout"])

    def show_running(*_):
        play.param.update(value=lab.running, label="❚❚ Pause" if lab.running else "▶ Play")

    play.param.watch(lambda e: setattr(lab, "running", e.new), "value")
    lab.param.watch(show_running, "running")
    step.on_click(lambda e: lab.step_once())
    reset.on_click(lambda e: lab.reset())
    show_running()
    speed = pn.widgets.IntSlider.from_param(lab.param.speed, width=220)
    # a FlexBox wraps on a phone: play, step, reset and the counter stay on one line there
    return (pn.FlexBox(play, step, reset, pn.pane.Bokeh(counter), pn.pane.Bokeh(covered), speed,
                       align_items="center"), counter, covered)


def loading_note():
    """Shown from the first paint until the first frame arrives (the simulation builds meanwhile)."""
    return pn.Row(pn.indicators.LoadingSpinner(value=True, size=18, margin=(8, 4, 0, 10)),
                  pn.pane.Str("starting the simulation…", margin=(8, 4)), css_classes=["lab-loading"])


def restart_here(lab: Lab):
    """Offered while the last change cannot act visibly on the present cloud (`Lab.still`)."""
    b = pn.widgets.Button(label="Restart from here with this setting", color="warning", visible=lab.still,
                          css_classes=["restart-here"], margin=(0, 10))
    b.on_click(lambda e: lab.reset())
    lab.param.watch(lambda e: setattr(b, "visible", e.new), "still")
    return b


def step_text(t: int) -> str:
    return f"<b>step</b> {t:,}"


def coverage_text(f) -> str:
    """The single view's one number: modes covered now, of K ('' for a point set, which shows
    distances instead, or before the first frame)."""
    if f is None or f.scene.distances or "modes_covered" not in f.metrics:
        return ""
    return f"<b>modes covered</b> {int(f.metrics['modes_covered'])} / {f.scene.n_modes}"


def preset_picker(lab: Lab):
    select = pn.widgets.Select.from_param(lab.param.preset, label="preset", sizing_mode="stretch_width")
    doc = pn.pane.Markdown(preset_note(lab), styles={"font-size": "12px", "color": "#555"}, margin=(0, 10))
    lab.param.watch(lambda *_: setattr(doc, "object", preset_note(lab)), ["preset", *ATTR.values()])
    return pn.Column(select, doc, sizing_mode="stretch_width")


def preset_note(lab: Lab) -> str:
    """The preset's description while the knobs hold its settings; once they differ, which
    knobs differ, so the text never describes a run that is no longer on the screen."""
    try:
        base = resolve(presets.load(lab.preset))
    except ConfigError:
        return presets.describe(lab.preset)
    now = lab.knob_values()
    changed = [f"{k} = {format(now[k], '.4g') if isinstance(now[k], float) else show(now[k])}"
               for k in ATTR if k in now and now[k] != base[k]]
    if not changed:
        return presets.describe(lab.preset)
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    return html.escape(f"Started from the preset {lab.preset}, now changed: {shown}. Its description was for its "
                       "own settings.")


def custom_target(lab: Lab):
    fig, drawn = draw_figure()
    use = pn.widgets.Button(label="Use drawn points", color="primary", sizing_mode="stretch_width")
    clear = pn.widgets.Button(label="Clear", sizing_mode="stretch_width")
    upload = pn.widgets.FileInput(accept=".csv,.txt,.npy", sizing_mode="stretch_width")

    def use_drawn(_):
        pts = np.column_stack([np.asarray(drawn.data["x"], float), np.asarray(drawn.data["y"], float)])
        lab.use_points(pts, "drawn points")

    use.on_click(use_drawn)
    clear.on_click(lambda e: setattr(drawn, "data", {"x": [], "y": []}))
    # an empty file arrives as value None with only its name new: watched too, so it gets its message
    upload.param.watch(lambda *e: upload.filename and lab.upload(upload.filename, upload.value or b""),
                       ["value", "filename"])
    return pn.Card(pn.pane.Markdown(texts.CUSTOM, styles={"font-size": "12px"}),
                   pn.pane.Bokeh(fig),
                   pn.Row(use, clear), upload, title="Your own target", collapsed=True,
                   sizing_mode="stretch_width", margin=(4, 0))


def share(lab: Lab, views: Views):
    link = pn.widgets.TextInput(label="link to this set-up", sizing_mode="stretch_width")
    note = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width",
                         css_classes=["link-note"])

    def downloader(fn, filename, label):
        def callback():
            try:
                return io.BytesIO(fn())
            except Exception as e:  # noqa: BLE001 - a failed export is a message, not a crash
                lab.param.update(message=f"{label}: {e}", message_kind="danger")
                return io.BytesIO(b"")
        return pn.widgets.FileDownload(callback=callback, filename=filename, label=label,
                                       sizing_mode="stretch_width")

    w = lab.worker
    nc = downloader(lambda: export.netcdf_bytes(w.record, str(w.device)), "effgan_run.nc", "Download run (netCDF)")
    # "this view" as a paper prints it: what the page shows now, drawn in the figure style
    shots = [downloader(lambda fmt=fmt: export.view_bytes(views, w.record.cfg or lab.config(), lab.t, fmt, w.record),
                        f"effgan_view.{fmt}", f"Download this view ({fmt.upper()})") for fmt in export.VIEW_FORMATS]
    gif = downloader(lambda: export.gif_bytes(*w.record.snapshots(), w.scene), "effgan_trajectory.gif",
                     "Export trajectory (GIF)")
    return pn.Card(pn.pane.Markdown(texts.SHARE, styles={"font-size": "12px"}), link, note, nc, *shots, gif,
                   title="Share & export", collapsed=True, sizing_mode="stretch_width", margin=(4, 0)), link, note


# ---------------------------------------------------------------- the page
def connected(doc) -> bool:
    """False once the browser of a served session has disconnected (True outside a server)."""
    session = getattr(getattr(doc, "session_context", None), "_session", None)
    return session is None or getattr(session, "connection_count", 1) > 0


def create(query: dict | None = None, fps: float = 30.0):
    """Build one session's page; `query` defaults to the request's URL parameters."""
    lab = Lab(fps=fps)
    if query is None:
        query = pn.state.session_args or {}
    try:
        lab.apply_query({k: v for k, v in query.items() if k != "bokeh-session-id"})
        return _page(lab)
    except Exception as e:  # noqa: BLE001 - a page with one line, never a traceback; the log keeps it
        log.exception("the lab page failed to build")
        lab.close()
        return pn.pane.Alert(html.escape(f"The lab could not start: {one_line(e)}. Try the plain address "
                                         "without parameters."), alert_type="danger")


def _page(lab: Lab):
    views = Views()

    # the message quotes what a link, a file name or a file held: escaped, it shows as text
    message = pn.pane.Alert(html.escape(lab.message), alert_type=lab.message_kind, visible=bool(lab.message),
                            sizing_mode="stretch_width", margin=(0, 10))
    banner = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width", margin=(0, 10))
    lab.param.watch(lambda *e: message.param.update(object=html.escape(lab.message), alert_type=lab.message_kind,
                                                   visible=bool(lab.message)), ["message", "message_kind"])
    # built in the worker's thread: the page stays live and says so meanwhile
    building = pn.Row(pn.indicators.LoadingSpinner(value=True, size=18), pn.pane.Str("building the simulation …"),
                      visible=True, margin=(0, 10))
    lab.param.watch(lambda e: setattr(building, "visible", e.new), "building")
    lab.param.watch(lambda e: banner.param.update(object=f"**Diverged.** {e.new}", visible=bool(e.new)), "diverged")

    cards, _ = knob_cards(lab)
    share_card, link, link_note = share(lab, views)
    loc = pn.state.location
    base = (loc.href or "").split("?")[0] if loc is not None else ""
    # Panel's Location defers address-bar updates until the document is idle, which a page
    # that streams 30 frames a second may never be: write the query with a tiny JS hook.
    address = Div(text="", width=0, height=0, margin=0, styles={"display": "none"})
    address.js_on_change("text", CustomJS(code="window.history.replaceState(null, '', "
                                               "window.location.pathname + cb_obj.text)"))
    if pn.state.curdoc is not None:          # the query the page opened with, written out in full at once
        pn.state.curdoc.js_on_event("document_ready", CustomJS(args={"a": address}, code=(
            "if (a.text) window.history.replaceState(null, '', window.location.pathname + a.text)")))

    def sync_url(*_):
        search = "?" + urllib.parse.urlencode(lab.query())
        address.text = search
        link.value = base + search
        said = lab.link_note()
        link_note.param.update(object=said, visible=bool(said))

    # a new drawn or uploaded target always sets the message, even when target.kind stays "file"
    lab.param.watch(sync_url, list(ATTR.values()) + ["preset", "teach", "speed", "message", "lesson", "lesson_step",
                                                      "compare"])
    sync_url()

    toggles = pn.Row(pn.widgets.Checkbox.from_param(lab.param.teach, css_classes=["toggle-teach"]),
                     pn.widgets.Checkbox.from_param(lab.param.arrows, css_classes=["toggle-arrows"]),
                     sizing_mode="stretch_width")
    controls, counter, covered = transport(lab)
    newest = [None]                         # the last frame shown: the coverage readout reads it
    loading = loading_note()
    sidebar = [preset_picker(lab), lessonui.picker(lab), toggles, *cards, custom_target(lab), share_card,
               pn.pane.Bokeh(address, margin=0)]

    text = dict(styles={"font-size": "13px"}, width=330, margin=(0, 12))
    # visibility toggles on a Column: toggling a Bokeh pane's own `visible` makes Panel 1.9 re-sync
    # the figure's stylesheets and fail (ImportedStyleSheet in a List[str] parameter)
    meter_panes = {n: pn.Column(pn.pane.Bokeh(f), visible=False, margin=0) for n, f in views.meter_figs.items()}
    # at most 400 px wide, narrower on a phone (a fixed 400 px clipped the text on a 390 px screen)
    meter_text = pn.pane.Markdown("", **{**text, "width": None, "max_width": 400, "sizing_mode": "stretch_width"})
    meter_row = pn.FlexBox(*meter_panes.values(), meter_text, visible=False)

    def show_meters(names):
        """Only the companion meters that apply to the running build (its scene says which)."""
        for n, pane in meter_panes.items():
            pane.visible = views.meter_figs[n].visible = n in names
        meter_text.object = "\n\n".join(texts.METERS[n] for n in names)
        meter_row.visible = bool(names)
    # the transport and the particles first, so both fit a phone's or a laptop's first screen;
    # the caption column wraps below the particles on a narrow screen
    single = pn.Column(pn.pane.Bokeh(views.particle_fig, margin=(0, 5)), margin=0)
    side = compareui.CompareView(lab, single)      # side by side: its panels stand in for `single`
    main = [
        controls, loading, message, building, banner,
        restart_here(lab), side.panels,
        pn.FlexBox(single,
                   pn.Column(lessonui.card(lab),
                             pn.pane.Markdown(texts.INTRO, **text), pn.pane.Markdown(texts.PARTICLES, **text),
                             pn.pane.Bokeh(views.images_fig)), flex_wrap="wrap"),
        side.card(), mapcard.panel(lab),
        pn.FlexBox(*[pn.pane.Bokeh(f) for f in views.series_figs.values()],
                   pn.pane.Markdown(texts.SERIES, **{**text, "width": 260})),
        meter_row,
        pn.FlexBox(pn.pane.Bokeh(views.spectrum_fig), pn.pane.Markdown(texts.SPECTRUM, **text)),
    ]

    last_flush = [0.0]
    doc = pn.state.curdoc

    def tick():
        lab.worker.attached = connected(doc)
        if not lab.worker.attached:
            return                                  # the tab is gone; the session ends soon
        with pn.io.hold():
            f = lab.take_frame()
            if f is not None:
                newest[0] = f
                if loading.visible:                 # the first frame: the particles are there
                    loading.visible = False
                if f.scene.build != views.scene_build:
                    show_meters(f.scene.meters)
                views.update(f)
                views.set_marks(*lab.worker.marks)
            side.update()
            now = time.monotonic()
            if now - last_flush[0] >= SLOW_MS / 1000:      # the slow parts, a few times a second
                last_flush[0] = now
                views.flush()
                shown = step_text(lab.t)
                if counter.text != shown:
                    counter.text = shown
                cover = "" if lab.compare else coverage_text(newest[0])   # compare: each panel says its own
                if covered.text != cover:             # it changes rarely: no layout most refreshes
                    covered.text = cover

    pn.state.onload(lab.start)              # no simulation before a browser is there to watch it
    # unlogged: Panel keeps every "Session ... periodic callback" record of its log in memory
    # (panel.io.admin), two per tick, ~200 MB per session-hour at 30 frames a second; background:
    # no busy-state bookkeeping per tick (Panel's own timers do the same), which took about half
    # of the tick's time on the event loop and, through the GIL, the worker's steps
    cb = PeriodicCallback(callback=tick, period=FRAME_MS, log=False, background=True)
    cb.start()

    def destroyed(ctx):
        cb.stop()
        lab.close()

    pn.state.on_session_destroyed(destroyed)
    # one root per area: Bokeh re-walks every model of the document for each root it adds
    page = pn.template.BootstrapTemplate(title="effgan · the GAN dynamics lab",
                                         sidebar=[pn.Column(*sidebar, sizing_mode="stretch_width")],
                                         main=[pn.Column(*main, sizing_mode="stretch_width")],
                                         sidebar_width=SIDEBAR_WIDTH, header_background=ACCENT,
                                         meta_viewport="width=device-width, initial-scale=1",
                                         busy_indicator=None)   # it would restyle the header every frame
    page.config.raw_css.append(PHONE_CSS)
    if doc is not None:                     # served (not when a test builds the page headless)
        doc.js_on_event("document_ready", CustomJS(code=PHONE_JS))
    page.lab = lab          # for tests and benchmarks that drive a served page in-process
    return page
