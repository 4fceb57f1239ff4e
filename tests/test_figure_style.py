"""What a reader (and a journal) relies on in every offline figure: TrueType fonts in the PDF,
text kept as text in the SVG, axes labelled with the knobs' declared symbols, a colour bar
named after the metric, legends off the data, one or two columns wide at 300 dpi, and the
gallery's figures drawn as their papers draw them, citing the paper in the file's metadata.
Small synthetic datasets, rendered headless."""
import json

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from app.cli import main
from dynamics.knobs import KNOBS, resolve
from dynamics.papers import CITATIONS


@pytest.fixture(scope="module")
def phase_nc(tmp_path_factory):
    """mode entropy over 2 critics × 3 r × 3 lr.disc × 2 seeds."""
    r, lr = np.array([0.0, 0.5, 0.9]), np.array([0.01, 0.03, 0.1])
    h = np.linspace(0, 1, 18).reshape(2, 3, 3, 1) * np.ones(2)
    dims = ("disc.activation", "kernel.ratio", "lr.disc", "seed")
    ds = xr.Dataset({"final_mode_entropy": (dims, h)},
                    coords={"disc.activation": ["relu", "tanh"], "kernel.ratio": ("kernel.ratio", r, {"scale": "lin"}),
                            "lr.disc": ("lr.disc", lr, {"scale": "log"}), "seed": [1, 2]},
                    attrs={"config": json.dumps(resolve({}))})
    path = tmp_path_factory.mktemp("phase") / "phase.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    return path


@pytest.fixture(scope="module")
def damping_nc(tmp_path_factory):
    """Convergence time against γ over 3 seeds, the linear-critic point target of critical damping."""
    from dynamics import theory
    cfg = resolve({"target.kind": "point", "target.radius": 1.0, "target.std": 0.0, "particles": 16,
                   "kernel.ratio": 0.5, "disc.kind": "linear", "init.std": 0.01})
    g = theory.gamma_c(cfg) * np.geomspace(1 / 8, 8, 9)
    t = np.stack([theory.damping_time(g, cfg) + k for k in (0, 20, 40)], 1).astype(np.int64)
    ds = xr.Dataset({"final_convergence_step": (("reg.strength", "seed"), t)},
                    coords={"reg.strength": ("reg.strength", g, {"scale": "log"}), "seed": [1, 2, 3]},
                    attrs={"config": json.dumps(cfg)})
    path = tmp_path_factory.mktemp("damping") / "damping.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def _build(path, kind, **kw):
    from app.plots.figures import figure
    from dynamics.sweep import open_results
    return figure(open_results(path), kind, **kw)


def test_pdf_embeds_truetype_fonts_not_type3(phase_nc, tmp_path):
    out = tmp_path / "phase.pdf"
    assert main(["figure", str(phase_nc), "--kind", "phase", "--metric", "mode_entropy", "--out", str(out)]) == 0
    pdf = out.read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf


def test_svg_keeps_its_text_as_text(phase_nc, tmp_path):
    out = tmp_path / "phase.svg"
    assert main(["figure", str(phase_nc), "--kind", "phase", "--metric", "mode_entropy", "--out", str(out)]) == 0
    svg = out.read_text()
    assert "<text" in svg and "ReLU critic" in svg and "mode entropy" in svg


def test_axis_labels_are_the_declared_knob_symbols_and_panels_read_as_words(phase_nc):
    from app.plots.figures import render
    assert KNOBS["kernel.ratio"].symbol == "$g_2/g_1$" and KNOBS["lr.disc"].symbol == r"$\eta_D$"
    fig, _ = render(_build(phase_nc, "phase", metric="mode_entropy"))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["ReLU critic", "tanh critic"]
    for ax in panels:
        assert ax.get_xlabel() == KNOBS["kernel.ratio"].symbol and ax.get_ylabel() == KNOBS["lr.disc"].symbol


def test_phase_has_a_colour_blind_safe_colour_bar_named_after_the_metric(phase_nc):
    from app.plots import style
    from app.plots.figures import render
    fig, _ = render(_build(phase_nc, "phase", metric="mode_entropy"))
    import matplotlib
    meshes = [c for ax in fig.axes for c in ax.collections if getattr(c, "colorbar", None) is not None]
    assert len(meshes) == 2
    at = np.linspace(0, 1, 7)
    for m in meshes:          # HoloViews hands matplotlib an unnamed copy: compare the colours
        assert np.allclose(m.get_cmap()(at), matplotlib.colormaps[style.CMAP](at), atol=0.01)
    assert style.CMAP in ("viridis", "cividis")
    bars = [m.colorbar for m in meshes]
    assert bars and {b.ax.get_ylabel() for b in bars} == {style.metric_label("mode_entropy")}
    assert style.metric_label("mode_entropy") == r"mode entropy $H/\log K$"


def test_critical_damping_legend_sits_off_the_data(damping_nc):
    """The legend's box does not overlap the axes' box (it used to cover the curve)."""
    from app.plots.figures import render
    fig, _ = render(_build(damping_nc, "curve", metric="convergence_step", x="reg.strength"))
    fig.canvas.draw()
    (ax,) = [a for a in fig.axes if a.get_legend() is not None]
    legend, data = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y1 <= data.y0 or legend.x0 >= data.x1 or legend.y0 >= data.y1 or legend.x1 <= data.x0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(s.startswith(r"$\gamma_c$") for s in labels) and "linearised theory" in labels
    assert ax.get_xlabel() == KNOBS["reg.strength"].symbol


@pytest.mark.parametrize("width,pixels", [("single", 1020), ("double", 2100)])
def test_png_is_one_or_two_journal_columns_wide_at_300_dpi(damping_nc, tmp_path, width, pixels):
    out = tmp_path / f"{width}.png"
    assert main(["figure", str(damping_nc), "--kind", "curve", "--metric", "convergence_step",
                 "--width", width, "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size[0] == pixels and im.size[1] > 200
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def test_bad_width_is_one_line_exit_2(damping_nc, tmp_path, capsys):
    assert main(["figure", str(damping_nc), "--kind", "curve", "--width", "triple",
                 "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--width: 'triple' is not allowed; allowed single, double" in err


# ---------------------------------------------------------------- the gallery, on synthetic results
def _separation():
    dt, dsamp, s = np.array([6, 8, 10, 12]), np.array([6, 10]), 3
    rng = np.random.default_rng(0)
    sq = np.sqrt([100.0, 300, 700, 1400])
    return xr.Dataset(
        {"theory_ratio": ("d_theory", sq * 0.9), "sqrt_n_harmonics": ("d_theory", sq),
         "theory_f1": ("d_theory", 1 / sq), "theory_f2": ("d_theory", 1 / sq ** 2),
         **{k: (("d_sample", "seed"), rng.uniform(0.5, 1.5, (2, s)) * v)
            for k, v in (("f1", 0.1), ("f1_null", 0.01), ("f2", 0.01), ("f2_null", 0.005))},
         "mean_p": (("critic", "member", "snapshot"), rng.uniform(0, 0.3, (2, 2, 5)))},
        coords={"d_theory": dt, "d_sample": dsamp, "seed": np.arange(s), "critic": ["f1_neuron", "f2_features"],
                "member": [0, 1], "snapshot": np.arange(5), "snapshot_step": ("snapshot", np.arange(5) * 100)},
        attrs={"nu_mean_p": 0.3, "mu_mean_p": 0.0, "n": 500, "k": 6})


def _ipm_vs_kl():
    rng = np.random.default_rng(1)
    dropped = np.array([0, 1, 2, 4, 6, 1, 3])
    return xr.Dataset({"kl_pq": ("generator", dropped * 0.3), "w1": ("generator", dropped * 0.2 + 0.01),
                       "test_ipm": ("generator", dropped * 0.1 + rng.uniform(0, 0.02, 7))},
                      coords={"generator": np.arange(7), "dropped": ("generator", dropped)})


def _ct_balance():
    rng = np.random.default_rng(2)
    centers = [[np.cos(a), np.sin(a)] for a in np.arange(8) * np.pi / 4]
    shape = (3, 3, 2, 11)
    return xr.Dataset(
        {"modes_covered": (("run", "rho", "seed", "snapshot"), rng.integers(0, 9, shape).astype(float)),
         "quality": (("run", "rho", "seed", "snapshot"), rng.uniform(0, 1, shape)),
         "positions": (("run", "rho", "seed", "snapshot", "particle", "axis"), rng.normal(0, 1, shape + (16, 2)))},
        coords={"run": ["engine", "unclipped", "prototype"], "rho": [0.0, 0.5, 1.0], "seed": [0, 1],
                "snapshot": np.arange(11), "snapshot_step": ("snapshot", np.arange(11) * 80), "axis": ["x", "y"]},
        attrs={"centers": json.dumps(centers), "radius": 0.1})


def _double_descent():
    q = np.array([1, 10, 45, 50, 55, 100, 400])
    rng = np.random.default_rng(3)
    err = (1 + 100 / (1 + np.abs(q - 50)))[:, None] * rng.uniform(0.8, 1.2, (7, 4))
    return xr.Dataset({"pseudo": (("q", "trial"), err), "metric": (("q", "trial"), np.full((7, 4), 3.0)),
                       "kappa": (("q", "trial"), err * 10), "kappa_mp": ("q", err[:, 0] * 9)},
                      coords={"q": q, "trial": np.arange(4)}, attrs={"n": 50, "d": 20, "r": 20})


GALLERY = {"separation": (_separation, "A"), "ipm_vs_kl": (_ipm_vs_kl, "B"), "ct_balance": (_ct_balance, "C"),
           "double_descent": (_double_descent, "D")}


@pytest.fixture
def drawn(monkeypatch):
    """Every HoloViews object the gallery drawers hand to `save`, by file stem."""
    import app.plots.companion as companion
    seen, real = {}, companion.save

    def keep(obj, path, **kw):
        seen[path.stem] = obj
        return real(obj, path, **kw)
    monkeypatch.setattr(companion, "save", keep)
    return seen


@pytest.mark.parametrize("kind", GALLERY)
def test_gallery_figure_is_two_columns_at_300_dpi_and_cites_its_paper(kind, tmp_path):
    from app.plots.companion import draw
    make, paper = GALLERY[kind]
    (png,) = draw(kind, make(), tmp_path)
    with Image.open(png) as im:
        assert im.size[0] == 2100 and im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert im.info["Description"] == CITATIONS[paper]


def test_separation_plots_the_ratio_against_sqrt_n_as_paper_a_does(tmp_path, drawn):
    import holoviews as hv
    from app.plots.companion import draw
    draw("separation", _separation(), tmp_path)
    left, mid, _ = list(drawn["separation"])
    assert left.get(0).kdims[0].label == r"$\sqrt{N_{k,d}}$"
    quad = next(e for e in left if e.label == "quadrature")
    np.testing.assert_allclose(quad.dimension_values(0), _separation().sqrt_n_harmonics.values)
    assert hv.Store.lookup_options("matplotlib", left, "plot").kwargs["logx"]
    assert mid.get(0).kdims[0].name == "d" and any(isinstance(e, hv.Area) for e in mid)   # min-max bands


def test_ipm_vs_kl_colour_bar_names_the_dropped_modes(tmp_path, drawn):
    import holoviews as hv
    from app.plots.companion import draw
    draw("ipm_vs_kl", _ipm_vs_kl(), tmp_path)
    for panel in drawn["ipm_vs_kl"]:
        pts = panel.get(0)
        opts = hv.Store.lookup_options("matplotlib", pts, "plot").kwargs
        assert opts["colorbar"] and opts["clabel"] == "modes dropped"


def test_ct_balance_curves_are_smooth_lines_through_the_records(tmp_path, drawn):
    import holoviews as hv
    from app.plots.companion import draw
    ds = _ct_balance()
    draw("ct_balance", ds, tmp_path)
    panels = list(drawn["ct_balance"])
    curves = [e for p in panels[-2:] for e in p if isinstance(e, hv.Curve)]
    assert len(curves) == 18
    steps = ds.snapshot_step.values
    for c in curves:
        x, y = c.dimension_values(0), c.dimension_values(1)
        assert len(x) >= 100
        run, rho = c.label.split("(")[1].rstrip(")"), float(c.label.split("= ")[1].split(" ")[0])
        key = "modes_covered" if c.vdims[0].name == "modes_covered" else "quality"
        np.testing.assert_allclose(y[np.isin(x, steps)], ds[key].sel(run=run, rho=rho).mean("seed"), atol=1e-9)


# ---------------------------------------------------------------- the lab's "this view" export
def _view(preset, steps=8):
    """A lab Views fed `steps` frames of a small run (the last with the spectrum), and its config."""
    from app.lab import frames, views
    from dynamics import presets
    from dynamics.engine import build
    sim = build(resolve(presets.load(preset), {"particles": 32}))
    s = sim.init()
    scene = frames.make_scene(sim, 1)
    grid = frames.field_points(scene, sim.device, sim.dtype) if scene.valued else None
    v = views.Views()
    for i in range(steps):
        prev, s = s.x, sim.step(s)
        v.update(frames.make_frame(sim, s, scene, 1, prev, field_grid=grid, with_spectrum=i == steps - 1))
    v.flush()
    return v, dict(sim.cfg)


def test_lab_view_shows_particles_over_the_field_the_spectrum_the_series_and_a_caption():
    from app.lab import export
    v, cfg = _view("ring8")
    fig = export.view_figure(v, cfg, 8)
    images = [(ax, im) for ax in fig.axes for im in ax.get_images()]
    (field_ax, field), = images                                     # the critic's field, under the particles
    assert field.get_cmap().name == "PRGn" and len(field_ax.collections) >= 2
    bars = [ax for ax in field_ax.child_axes if ax.get_xlabel() == export.FIELD_LABEL]
    assert len(bars) == 1                                           # its colour bar, named
    spectrum = next(ax for ax in fig.axes if ax.get_ylabel() == r"eigenvalue of $\Theta$")
    assert spectrum.get_yscale() == "log" and spectrum.collections
    titles = [ax.get_title() for ax in fig.axes]
    assert {"Mode coverage", "Spread", "Losses"} <= set(titles)
    caption = export.caption(cfg, 8)
    assert caption.startswith("step 8 · seed 1") and "particles = 32" in caption and "kernel.ratio = 0.1" in caption
    assert caption in [t.get_text() for t in fig.texts] + [fig._supxlabel.get_text()]


def test_lab_view_of_a_point_set_target_puts_its_sample_images_beside_the_projection():
    from app.lab import export
    v, cfg = _view("digits", steps=3)
    fig = export.view_figure(v, cfg, 3)
    assert "particles as images" in [ax.get_title() for ax in fig.axes]
    assert sum(len(ax.get_images()) for ax in fig.axes) == 2       # the field and the images


def test_lab_view_exports_png_svg_pdf_two_columns_wide_with_truetype_fonts(tmp_path):
    from app.lab import export
    v, cfg = _view("ring8")
    png = tmp_path / "view.png"
    png.write_bytes(export.view_bytes(v, cfg, 8, "png"))
    with Image.open(png) as im:
        assert im.size[0] == 2100 and im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert im.info["Description"] == export.caption(cfg, 8)
    pdf = export.view_bytes(v, cfg, 8, "pdf")
    assert pdf[:5] == b"%PDF-" and b"/FontFile2" in pdf and b"/Type3" not in pdf
    svg = export.view_bytes(v, cfg, 8, "svg").decode()
    assert "<text" in svg and "Kernel spectrum" in svg


def test_lab_view_draws_every_recorded_row_in_the_lab_colours():
    """The export's series are the run as recorded (every frame the worker made), not only the
    frames the page found time to draw (a busy event loop left a sparse patch), and each line has
    the colour it has on the page."""
    from matplotlib.colors import to_hex

    from app.lab import export
    from app.lab.recorder import Recorder
    from app.lab.views import SERIES
    v, cfg = _view("ring8", steps=4)                                   # the page drew 4 frames
    rec = Recorder()
    rec.start(cfg)
    for t in range(1, 41):                                             # the worker recorded 40
        rec.add_row(t, {"coverage": t / 40, "mode_entropy": 0.5, "spread_rel": 1.0, "loss_d": 0.1, "loss_g": 0.2,
                        "speed_collective": 1.0, "speed_relative": 0.5})
    fig = export.view_figure(v, cfg, 40, rec)
    ax = next(a for a in fig.axes if a.get_title() == "Mode coverage")
    line = next(l for l in ax.get_lines() if l.get_label() == "coverage (fraction of modes)")
    assert len(line.get_xdata()) == 40 and line.get_ydata()[-1] == 1.0
    colours = {legend: colour for lines in SERIES.values() for _, legend, colour in lines}
    for a in fig.axes:
        for l in a.get_lines():
            if l.get_label() in colours:
                assert to_hex(l.get_color()) == colours[l.get_label()]
    page_only = export.view_figure(v, cfg, 4)                         # no recorder: the page's own rows
    ax = next(a for a in page_only.axes if a.get_title() == "Mode coverage")
    assert len(ax.get_lines()[0].get_xdata()) == 4
