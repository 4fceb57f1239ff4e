"""The one figure style of every offline figure (sweeps, runs, the gallery, the lab's export).

Journals want text that stays text: TrueType fonts in PDF/PS (`fonttype = 42`, not Type 3),
real <text> in SVG; print sizes of one or two columns (3.4 in, 7.0 in) with 7-9 pt type at
that size; 300 dpi raster; colour maps and a line cycle a colour-blind reader tells apart.
Labels come from the knob table (`Knob.symbol`, `Knob.unit`) and the metric table below, so
an axis reads `$\\eta_D$`, not `lr.disc`, and a panel reads "ReLU critic".

`apply()` sets the rcParams (after HoloViews, whose matplotlib backend loads its own);
`fit(fig, width)` sets the type sizes, moves legends off the data and scales the figure so its
drawing is exactly one or two columns wide; `write` saves it with its metadata.
"""
from __future__ import annotations

from typing import Any

WIDTHS = {"single": 3.4, "double": 7.0}     # inches: one and two journal columns
DPI = 300
CMAP = "viridis"                             # sequential, perceptually uniform, colour-blind safe
# Okabe & Ito (2008): eight colours told apart under the common colour-vision deficiencies
CYCLE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
SIZES = {"title": 8.5, "label": 8.0, "tick": 7.0, "legend": 7.0, "suptitle": 9.0}   # points, at print size
PAD = 0.03                                   # inches of white around the drawing
LINE_MAX = 1.4                               # points: the thickest line at print size

RC = {
    "pdf.fonttype": 42, "ps.fonttype": 42,   # TrueType (FontFile2), never Type 3
    "svg.fonttype": "none",                  # text stays <text>, editable, searchable
    "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"],     # a TrueType font matplotlib ships
    "mathtext.fontset": "dejavusans",
    "font.size": SIZES["label"], "axes.titlesize": SIZES["title"], "axes.labelsize": SIZES["label"],
    "xtick.labelsize": SIZES["tick"], "ytick.labelsize": SIZES["tick"], "legend.fontsize": SIZES["legend"],
    "legend.frameon": False, "legend.loc": "best",
    "image.cmap": CMAP, "savefig.dpi": DPI, "figure.dpi": 100,
    "axes.linewidth": 0.6, "lines.linewidth": 1.2, "lines.markersize": 3.5,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "xtick.minor.width": 0.4, "ytick.minor.width": 0.4,
}

# metric names (dynamics.metrics / observables, the gallery's variables) as a reader reads them
METRICS = {
    "modes_covered": "modes covered", "coverage": "fraction of modes covered",
    "high_quality_fraction": "high-quality fraction", "quality": "high-quality fraction",
    "mode_entropy": r"mode entropy $H/\log K$", "mode_kl": r"mode KL $\log K - H$",
    "convergence_step": r"convergence time $t_\mathrm{conv}$ (steps)", "diverged_step": "step of divergence (steps)",
    "diverged": "diverged", "spread": "spread $S$", "com_distance": "centre-of-mass distance",
    "center_kl": "KL of mode occupancy", "grid_kl": "KL on a grid", "grid_js": "JS on a grid",
    "mmd": r"MMD$^2$", "sliced_w1": r"sliced $W_1$", "energy": "energy distance",
    "dropped": "modes dropped", "test_ipm": "test IPM (ReLU neuron)", "kl_pq": r"KL$(p\,\|\,q)$ (nats)",
    "w1": r"$W_1$ (exact assignment)", "w2": r"$W_2^2$ generalisation error", "kappa": r"$\kappa(Z^\top Z)$",
    "eigenvalue": r"eigenvalue of $\Theta$", "step": "step",
}
# how a panel names one value of a text axis: "ReLU critic", not disc.activation=relu
TITLES = {"disc.activation": "{} critic", "disc.kind": "{} critic", "kernel.kind": "{} kernel",
          "loss": "{} loss", "reg.kind": "{} penalty", "target.kind": "{} target", "run": "{}"}
NAMES = {"relu": "ReLU", "leaky_relu": "leaky ReLU", "gelu": "GELU", "elu": "ELU", "silu": "SiLU", "mlp": "MLP",
         "rbf": "RBF", "relu_ntk": "ReLU NTK", "two_number": "two-number", "ipm": "IPM", "wgan_gp": "WGAN-GP",
         "gp0": "zero-centred GP", "ct": "CT", "f1_neuron": r"$\mathcal{F}_1$ neuron",
         "f2_features": r"$\mathcal{F}_2$ features", "ns": "non-saturating", "mse": "least-squares"}


def apply() -> None:
    """The style's rcParams, process-wide (HoloViews' backend sets its own on import: call after)."""
    import matplotlib
    matplotlib.rcParams.update(RC)


def _knob(key: str):
    from dynamics.knobs import KNOBS
    return KNOBS.get(key)


def axis_label(key: str) -> str:
    """A knob's declared symbol (and unit); a metric's readable name; else the key itself."""
    k = _knob(key)
    if k is not None and k.symbol:
        return f"{k.symbol} ({k.unit})" if k.unit else k.symbol
    if k is not None and k.label:
        return k.label
    return metric_label(key)


def metric_label(name: str) -> str:
    name = str(name).removeprefix("final_")
    return METRICS.get(name, name.replace("_", " "))


def value_name(v: Any) -> str:
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        return f"{float(v):.3g}"
    return NAMES.get(str(v), str(v).replace("_", " "))


def panel_title(key: str, value: Any) -> str:
    """One value of an axis as a title or a legend entry: "ReLU critic", "$g_2/g_1$ = 0.5"."""
    if key in TITLES:
        return TITLES[key].format(value_name(value))
    k = _knob(key)
    name = k.symbol if k is not None and k.symbol else key
    return f"{name} = {value_name(value)}"


def metadata(fmt: str, title: str = "", citation: str = "") -> dict:
    """File metadata: the citation as the PDF's Subject, the SVG's and PNG's Description."""
    key = "Subject" if fmt == "pdf" else "Description"
    meta = {"Title": title} if title else {}
    return meta | ({key: citation} if citation else {})


# ---------------------------------------------------------------- one figure, at print size
def _texts(fig):
    """(text, role) for every label of the figure, colour bars included."""
    for ax in fig.axes:
        yield ax.title, "title"
        yield ax._left_title, "title"
        yield ax._right_title, "title"
        yield ax.xaxis.label, "label"
        yield ax.yaxis.label, "label"
        for t in ax.get_xticklabels(which="both") + ax.get_yticklabels(which="both"):
            yield t, "tick"
        leg = ax.get_legend()
        if leg is not None:
            for t in leg.get_texts():
                yield t, "legend"
    if getattr(fig, "_suptitle", None) is not None:
        yield fig._suptitle, "suptitle"


def _legends_off_the_data(fig, renderer) -> None:
    """Each axes' legend goes below it (under its x label), in columns: never over the data."""
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None or not leg.get_texts():
            continue
        handles, labels = leg.legend_handles, [t.get_text() for t in leg.get_texts()]
        leg.remove()
        below = ax.get_tightbbox(renderer)         # the axes with its tick labels and x label
        drop = (ax.bbox.y0 - below.y0) / max(ax.bbox.height, 1.0) + 0.04
        ncol = 1 if max(len(s) for s in labels) > 28 else min(len(labels), 2)
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -drop), ncol=ncol,
                  fontsize=SIZES["legend"], frameon=False, borderaxespad=0.0, handlelength=1.6,
                  columnspacing=1.0)


def _thin(fig, scale: float) -> None:
    """Lines and markers shrink with the drawing (text does not: it is set at print size)."""
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    for ax in fig.axes:
        for a in ax.get_children():
            if isinstance(a, Line2D):
                a.set_linewidth(min(max(0.5, a.get_linewidth() * scale), LINE_MAX))
                a.set_markersize(a.get_markersize() * scale)
            elif isinstance(a, Collection):
                a.set_linewidths([max(0.3, w * scale) if w else 0.0 for w in a.get_linewidths()])
                if hasattr(a, "get_sizes") and len(a.get_sizes()):
                    a.set_sizes(a.get_sizes() * scale ** 2)
            elif isinstance(a, Patch) and a is not ax.patch:
                a.set_linewidth(a.get_linewidth() * scale)


def fit(fig, width: float):
    """Type at print size, legends off the data, the figure scaled so that its drawing (tight
    box) is `width` inches wide; returns the box to save, in inches, exactly that wide."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox
    if not hasattr(fig.canvas, "get_renderer"):     # HoloViews' figures come without a canvas
        FigureCanvasAgg(fig)
    for text, role in _texts(fig):
        text.set_fontsize(SIZES[role])
        if role != "tick":
            text.set_fontweight("normal")
    w0, h0 = fig.get_size_inches()
    _thin(fig, min(1.0, width / w0))
    fig.set_size_inches(width, h0 * width / w0)
    renderer = fig.canvas.get_renderer()
    _legends_off_the_data(fig, renderer)
    for _ in range(4):                              # text keeps its size: shrink the canvas until it fits
        box = fig.get_tightbbox(renderer)
        over = box.width + 2 * PAD - width
        if abs(over) < 0.005:
            break
        w, h = fig.get_size_inches()
        fig.set_size_inches(w - over, h * (w - over) / w)
        renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)
    x0 = box.x0 - (width - box.width) / 2
    return Bbox.from_bounds(x0, box.y0 - PAD, width, box.height + 2 * PAD)


def write(fig, out, fmt: str, box=None, dpi: int = DPI, meta: dict | None = None) -> None:
    """Save `fig` to a path or buffer: `box` the area in inches (from `fit`; None: the whole
    figure, for one laid out at its column's width already), `meta` the file's metadata."""
    fig.savefig(out, format=fmt, dpi=dpi, bbox_inches=box, metadata=meta or None)


def dark(fig) -> None:
    """A black background with white text, ticks and frames (the authors' MNIST diagram), colour
    bars included; the data keep their colours."""
    fig.set_facecolor("black")
    for ax in fig.axes:
        ax.set_facecolor("black")
        for spine in ax.spines.values():
            spine.set_color("white")
        ax.tick_params(which="both", colors="white")
    for text, _ in _texts(fig):
        text.set_color("white")


def inches(width: str | float) -> float:
    return WIDTHS[width] if isinstance(width, str) else float(width)


__all__ = ["WIDTHS", "DPI", "CMAP", "CYCLE", "RC", "METRICS", "apply", "axis_label", "metric_label",
           "panel_title", "metadata", "fit", "write", "inches", "dark"]
