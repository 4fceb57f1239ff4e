"""Knobs as Param parameters and Panel widgets, generated from `dynamics.knobs.KNOBS`.

Nothing about a knob (bound, default, doc, choices, log scale, advanced) is restated here;
only UI decisions are: which knobs the live lab shows, how they are grouped, the display
range of a slider (the declared bounds of most knobs span many decades, so a slider shows
two decades either side of the default, still clipped to the bounds, and a numeric input
takes the rest). Which knobs matter for which kind is the knobs' own `applies`.
"""
from __future__ import annotations

import math
from typing import Any

import param

from dynamics.knobs import KNOBS, ConfigError, Knob

# role 'run' knobs (steps, record.*) describe a batch run, not a live one; target.file is a
# path on the server, which a browser must not choose (drawn/uploaded points replace it).
HIDDEN = {"target.file"}
SHOWN = [k for k in KNOBS.values() if k.role != "run" and k.name not in HIDDEN]

# cards of the sidebar by name prefix; a knob with no card of its own (critic.*, ct.*) joins the
# card of the knob its `applies` names (disc.kind: "Discriminator")
GROUPS = {"particles": "Target", "real": "Target", "target": "Target", "init": "Target",
          "kernel": "Generator kernel", "disc": "Discriminator",
          "loss": "Loss & regulariser", "reg": "Loss & regulariser", "ps": "Loss & regulariser",
          "update": "Loss & regulariser", "lr": "Learning rates",
          "seed": "Run", "dtype": "Run", "device": "Run", "compile": "Run"}

# Which knobs a choice makes meaningful (declared on the knobs; a knob absent here always matters).
APPLIES = {k.name: (k.applies[0], set(k.applies[1])) for k in SHOWN if k.applies is not None}

# teach mode: plain words beside the key, for every knob teach mode shows (the declared `label`
# is a symbol for experts, e.g. "η_D (lr.disc)")
PLAIN = {"particles": "number of particles", "target.kind": "shape of the data", "target.modes": "number of modes",
         "target.radius": "size of the data", "target.std": "width of each mode",
         "kernel.kind": "how particles are coupled", "kernel.ratio": "coupling between particles",
         "kernel.width": "reach of the coupling", "kernel.latent_dim": "size of the latent codes",
         "kernel.depth": "generator layers", "disc.kind": "kind of critic",
         "disc.activation": "critic's activation (its type)", "disc.width": "critic's size",
         "disc.widths": "critic's layer sizes",
         "disc.depth": "critic's layers", "disc.steps": "critic steps per particle step",
         "ct.rho": "covering (1) vs seeking (0) modes", "loss": "GAN loss", "reg.kind": "kind of penalty",
         "reg.strength": "penalty on the critic's slope", "lr.disc": "critic's learning rate",
         "lr.gen": "particles' learning rate", "seed": "random seed"}

SLIDER_SPAN = 20        # linear knobs with a narrower declared range get a slider
LOG_DECADES = 2         # a log slider spans default·10^±2 (clipped to the bounds)


def fmt(v: Any) -> str:
    """A knob value as a link and a message write it: true/false, floats to 6 digits."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return format(v, ".6g") if isinstance(v, float) else str(v)


def attr(name: str) -> str:
    """'kernel.ratio' -> 'kernel_ratio' (Param names must be identifiers)."""
    return name.replace(".", "_")


def label(k: Knob) -> str:
    return k.label or k.name


def shown_label(k: Knob, teach: bool) -> str:
    """Teach mode: plain words beside the key ('coupling between particles · kernel.ratio')."""
    return f"{PLAIN[k.name]} · {k.name}" if teach and k.name in PLAIN else label(k)


def group(k: Knob) -> str:
    prefix = k.name.split(".")[0]
    if prefix not in GROUPS and k.applies is not None:
        return group(KNOBS[k.applies[0]])
    return GROUPS.get(prefix, "Other")


def bounds(k: Knob) -> tuple[float | None, float | None] | None:
    """The lab's bounds of a knob: its stricter `lab` pair where it has one (a size that, at the
    CLI's bound, would take more memory than one session of a shared server may)."""
    return k.lab or k.bounds


def coerce(k: Knob, value: Any) -> Any:
    """Parse and check a value from the browser (a URL, a widget) against the lab's bounds."""
    v = k.coerce(value)
    if k.lab is not None and not k.lab[0] <= v <= k.lab[1]:
        lo, hi = (int(b) if k.kind is int else b for b in k.lab)
        raise ConfigError(f"{k.name}: {value} is over the lab's limit; allowed {lo} to {hi} in the lab "
                          f"(the memory one session may take; the CLI allows {k.describe()})")
    return v


def parameter(k: Knob) -> param.Parameter:
    common = dict(default=k.default, doc=k.doc, label=label(k))
    ch = k.allowed()
    if ch is not None:
        return param.Selector(objects=ch, **common)
    if k.kind is bool:
        return param.Boolean(**common)
    if k.kind is str:
        return param.String(**common)
    lo, hi = bounds(k) or (None, None)
    cls = param.Integer if k.kind is int else param.Number
    return cls(bounds=(lo, hi), **common)


def parameters() -> dict[str, param.Parameter]:
    return {attr(k.name): parameter(k) for k in SHOWN}


def log_range(k: Knob, value: float | None = None) -> tuple[float, float]:
    """(lo, hi) > 0 of a log slider, widened to include `value`."""
    lo, hi = bounds(k)
    d = k.default if k.default > 0 else 1.0
    a = max(d * 10.0 ** -LOG_DECADES, lo if lo and lo > 0 else 0.0)
    b = min(d * 10.0 ** LOG_DECADES, hi if hi is not None else math.inf)
    if value is not None and value > 0:
        a, b = min(a, value), max(b, value)
    return a, b


def widget_kind(k: Knob) -> str:
    """select | toggle | text | log | slider | input."""
    if k.allowed() is not None:
        return "select"
    if k.kind is bool:
        return "toggle"
    if k.kind is str:
        return "text"
    if k.log:
        return "log"
    lo, hi = bounds(k) or (None, None)
    if lo is not None and hi is not None and hi - lo <= SLIDER_SPAN:
        return "slider"
    return "input"


def nice(v: float) -> float:
    """Three significant digits: log sliders land on 0.316, not 0.31622776."""
    return float(f"{v:.3g}")


def help_text(k: Knob) -> str:
    lab = f"; in the lab at most {bounds(k)[1]:g}" if k.lab else ""
    return f"{k.doc} ({k.name}; allowed {k.describe()}{lab})"


def make_widget(k: Knob, value: Any):
    """A Panel widget showing `value`; the caller links it to the state (see `app.lab.page`).

    Returns (widget, to_widget, from_widget): value converters for the log slider, whose
    widget value is log10 of the knob's value."""
    import panel as pn
    from bokeh.models import CustomJSTickFormatter
    kind = widget_kind(k)
    kw = dict(label=label(k), sizing_mode="stretch_width")
    same = (lambda v: v), (lambda v: v)
    if kind == "select":
        return pn.widgets.Select(options=k.allowed(), value=value, **kw), *same
    if kind == "toggle":
        return pn.widgets.Checkbox(value=value, **kw), *same
    if kind == "text":
        return pn.widgets.TextInput(value=value, **kw), *same
    lo, hi = bounds(k)
    if kind == "log":
        a, b = log_range(k, value)
        fmt = CustomJSTickFormatter(code="return Number((10 ** tick).toPrecision(3)).toString()")
        to_w = lambda v: math.log10(v) if v > 0 else math.log10(log_range(k, None)[0])  # noqa: E731
        w = pn.widgets.FloatSlider(start=math.log10(a), end=math.log10(b), step=0.01, value=to_w(value),
                                   format=fmt, **kw)
        return w, to_w, lambda x: nice(10.0 ** x)
    if kind == "slider":
        cls = pn.widgets.IntSlider if k.kind is int else pn.widgets.FloatSlider
        extra = {} if k.kind is int else {"step": (hi - lo) / 100}
        return cls(start=lo, end=hi, value=value, **extra, **kw), *same
    cls = pn.widgets.IntInput if k.kind is int else pn.widgets.FloatInput
    return cls(start=lo, end=hi, value=value, **kw), *same
