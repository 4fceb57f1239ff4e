"""The lab says what is true, headless: the critic's colours, time axes after a reset, the
knob history in the download, the share link's own points, distances for point sets."""
from __future__ import annotations

import dataclasses
import functools
import io
import json

import numpy as np
import pytest

pytest.importorskip("panel")

from dynamics import presets  # noqa: E402
from dynamics.engine import build  # noqa: E402
from dynamics.knobs import resolve  # noqa: E402
from app.lab import export, frames, texts, views  # noqa: E402
from app.lab.state import Lab  # noqa: E402
from test_app_state import wait_until  # noqa: E402

wait_until = functools.partial(wait_until, timeout=60.0)


def _run(sim, steps):
    s = sim.init()
    for _ in range(steps):
        s = sim.step(s)
    return s


def _field_at(field: np.ndarray, scene, xy: np.ndarray) -> np.ndarray:
    """Field values (nearest grid cell) at display points; rows of `field` run along y."""
    x0, x1, y0, y1 = scene.extent
    g = field.shape[0]
    i = np.clip(np.rint((xy[:, 1] - y0) / (y1 - y0) * (g - 1)).astype(int), 0, g - 1)
    j = np.clip(np.rint((xy[:, 0] - x0) / (x1 - x0) * (g - 1)).astype(int), 0, g - 1)
    return field[i, j]


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))


# ---------------------------------------------------------------- 9: colours, caption, arrows agree
def test_critic_colours_caption_colour_bar_and_arrows_agree():
    sim = build(resolve(presets.load("collapse"), {"particles": 64, "dtype": "float64"}))
    s = _run(sim, 60)
    scene = frames.make_scene(sim, 1)
    grid = frames.field_points(scene, sim.device, sim.dtype)
    f = frames.make_frame(sim, s, scene, 1, field_grid=grid, arrows=True)
    v = views.Views()
    v.update(f)
    mapper = v.field_mapper
    lim = mapper.high
    assert mapper.low == -lim

    def painted(value):                       # what Bokeh's LinearColorMapper paints
        n = len(mapper.palette)
        return mapper.palette[min(max(int(np.floor((value + lim) / (2 * lim) * n)), 0), n - 1)]

    d_particles = float(np.mean(_field_at(f.field, scene, f.xy)))
    d_data = float(np.mean(_field_at(f.field, scene, scene.ref_xy)))
    assert d_particles < 0 < d_data              # the critic: low on the particles, high on the data
    r, g, b = _rgb(painted(d_particles))
    assert r > g and b > g                       # purple where the particles are ...
    r, g, b = _rgb(painted(float(np.max(_field_at(f.field, scene, scene.ref_xy)))))
    assert g > r and g > b                       # ... green where the data look most real
    assert painted(d_particles) == views.field_colour(d_particles, lim)
    caption = " ".join(texts.PARTICLES.split())
    assert '"looks fake"' in caption.split("purple, low", 1)[1][:20]        # the caption agrees
    assert '"looks real"' in caption.split("green, high", 1)[1][:20]
    bars = [m for m in v.particle_fig.below if type(m).__name__ == "ColorBar"]
    assert bars and bars[0].color_mapper is mapper                           # the value of D, drawn

    # arrows (ipm: F = +∇D) point up the field, towards green
    gy, gx = np.gradient(f.field)
    a = f.arrows
    x0, x1, y0, y1 = scene.extent
    cell = (x1 - x0) / (f.field.shape[0] - 1)
    at = np.stack([_field_at(gx, scene, a[:, :2]), _field_at(gy, scene, a[:, :2])], 1) / cell
    along = np.sum(at * (a[:, 2:] - a[:, :2]), 1)
    assert np.mean(along > 0) > 0.8


def test_a_critic_without_a_value_paints_no_field_and_the_colour_bar_says_so():
    """Conditional transport has no D: no constant background scaled to ±1e-12, and the caption and
    the colour bar say why the background is blank; a valued critic after it paints again."""
    ct = build(resolve(presets.load("ct"), {"particles": 32}))
    scene = frames.make_scene(ct, 1)
    assert not scene.valued
    v = views.Views()
    v.update(frames.make_frame(ct, _run(ct, 3), scene, 1))
    assert not v.field_image.visible and not v.colour_bar.visible
    assert "no value" in v.colour_bar.title
    assert "Conditional transport has no critic value" in " ".join(texts.PARTICLES.split())
    mlp = build(resolve({"particles": 32}))
    scene2 = frames.make_scene(mlp, 2)
    grid = frames.field_points(scene2, mlp.device, mlp.dtype)
    v.update(frames.make_frame(mlp, _run(mlp, 3), scene2, 2, field_grid=grid))
    assert scene2.valued and v.field_image.visible and v.colour_bar.visible
    assert v.colour_bar.title == views.FIELD_TITLE and v.field_mapper.high > 1e-6


# ---------------------------------------------------------------- 10: time axes follow the run
def test_after_a_reset_the_time_axes_cover_the_new_run_only():
    sim = build(resolve({"particles": 16}))
    s = sim.init()
    scene = frames.make_scene(sim, 1)
    f = frames.make_frame(sim, s, scene, 1)
    v = views.Views()
    for t in range(0, 5001, 50):
        v.update(dataclasses.replace(f, t=t, epoch=1))
    v.flush()
    assert v.series_x.end >= 5000
    for t in range(0, 61, 10):                                   # Reset: a new epoch from step 0
        v.update(dataclasses.replace(f, t=t, epoch=2))
    v.flush()
    assert v.series_x.start <= 0 and 60 <= v.series_x.end <= 200
    assert all(fig.x_range is v.series_x for fig in [*v.series_figs.values(), *v.meter_figs.values()])


# ---------------------------------------------------------------- 11: live changes in the download
def test_the_download_records_the_live_knob_history_and_the_current_config():
    import xarray as xr
    lab = Lab(preset="collapse", particles=32)
    lab.start()
    try:
        w = lab.worker
        wait_until(lambda: w.steps_done > 20 and w.record.rows)
        lab.kernel_ratio = 0.85
        wait_until(lambda: w.record.cfg["kernel.ratio"] == 0.85)
        n = len(w.record.rows)
        wait_until(lambda: len(w.record.rows) > n)
        ds = xr.open_dataset(io.BytesIO(export.netcdf_bytes(w.record, "cpu")), engine="h5netcdf")
        assert json.loads(ds.attrs["config"])["kernel.ratio"] == 0.85
        assert json.loads(ds.attrs["start_config"])["kernel.ratio"] == 0.9
        history = json.loads(ds.attrs["knob_history"])
        assert [row[1:] for row in history] == [["kernel.ratio", 0.85]] and history[0][0] > 0

        lab.reset()                                # a new run starts from the live values
        wait_until(lambda: w.record.start_cfg["kernel.ratio"] == 0.85 and w.record.rows)
        ds = xr.open_dataset(io.BytesIO(export.netcdf_bytes(w.record, "cpu")), engine="h5netcdf")
        assert json.loads(ds.attrs["start_config"])["kernel.ratio"] == 0.85
        assert json.loads(ds.attrs["knob_history"]) == []
    finally:
        lab.close()


# ---------------------------------------------------------------- 13: distances for point sets
def two_moons(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, np.pi, n // 2)
    b = rng.uniform(0, np.pi, n - n // 2)
    pts = np.concatenate([np.stack([np.cos(a), np.sin(a)], 1), np.stack([1 - np.cos(b), 0.5 - np.sin(b)], 1)])
    return pts + rng.normal(0, 0.05, pts.shape)


def test_a_smooth_point_set_shows_distances_not_mode_counts():
    from dynamics.targets import points_target
    pts = two_moons()
    cfg = resolve({"target.kind": "file", "target.file": "moons.csv", "particles": 200})
    sim = build(cfg, target=points_target(pts, cfg))
    scene = frames.make_scene(sim, 1)
    assert scene.distances and "600 points" in scene.title and "modes" not in scene.title
    far = frames.make_frame(sim, sim.init(), scene, 1)
    s = sim.init()
    on = s.replace(x=sim.target.centers[:200].to(s.x).unsqueeze(0))             # particles on the data
    near = frames.make_frame(sim, on, scene, 1)
    for k in ("mmd", "sliced_w1", "energy"):
        assert np.isfinite(far.metrics[k]) and near.metrics[k] < far.metrics[k]
    v = views.Views()
    v.update(near)
    modes = v.series_figs["modes"]
    assert modes.title.text == views.DISTANCES_TITLE
    def lines(fig):                   # the series drawn (not the dashed marks of kept changes)
        from bokeh.models import Line
        return {r.glyph.y for r in fig.renderers if r.visible and isinstance(r.glyph, Line)}
    assert lines(modes) == {"mmd", "sliced_w1", "energy"}
    v.flush()
    assert np.isfinite(v.series.data["energy"][-1])

    # eight drawn clusters stay clusters: coverage and entropy, 0 … 1
    cfg8 = resolve({"target.kind": "file", "target.file": "drawn", "particles": 64})
    sim8 = build(cfg8, target=points_target(pts[::75], cfg8))
    scene8 = frames.make_scene(sim8, 2)
    assert not scene8.distances and "8 modes" in scene8.title
    v.update(frames.make_frame(sim8, sim8.init(), scene8, 2))
    assert lines(modes) == {"coverage", "mode_entropy"}
    assert modes.title.text == views.TITLES["modes"]


def test_cli_json_reports_modes_covered_as_a_count_and_coverage_as_a_fraction(capsys):
    from app.cli import main
    assert main(["run", "--steps", "30", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert isinstance(m["modes_covered"], int) and isinstance(m["coverage"], float)
    assert m["coverage"] == pytest.approx(m["modes_covered"] / m["modes_total"])


# ---------------------------------------------------------------- 12: your own points in the link
def test_a_drawn_set_round_trips_through_the_share_link():
    import urllib.parse
    from app.lab import linkdata
    drawn = np.array([[-1.5, 0.25], [0.0, 1.0], [1.25, -0.5], [2.0, 2.0], [-0.75, -1.75]])
    lab = Lab(particles=32)
    assert lab.use_points(drawn, "drawn points")
    link = "http://lab/?" + urllib.parse.urlencode(lab.query())
    assert lab.link_note() == ""
    opened = Lab()
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert opened.apply_query(q) == []
    assert opened.target_kind == "file" and opened.config()["target.kind"] == "file"
    np.testing.assert_array_equal(opened.custom[0], drawn.astype(np.float32))
    assert opened.query() == lab.query()
    opened.start()
    try:
        wait_until(lambda: opened.worker.scene is not None)
        np.testing.assert_allclose(opened.worker.scene.centers_xy, drawn, atol=1e-6)
    finally:
        opened.close()

    # too many points for a link: none in it, and a note that says so
    big = Lab(particles=32)
    assert big.use_points(two_moons(2000), "moons.csv")
    assert linkdata.KEY not in big.query() and "too many for a link" in big.link_note()
    assert str(linkdata.LINK_CHARS_MAX) in big.link_note()


@pytest.mark.parametrize("bad", ["!!!!", "AAAA", "x" * 7000,
                                 "eNpjYGBgAAAABAAB",                     # valid zlib, no header
                                 "eJxjZGRgYmRgYGBgQAACAAZYAAQ"],         # truncated
                         ids=["not-base64", "not-zlib", "too-long", "no-header", "truncated"])
def test_bad_points_in_a_link_are_one_message_and_the_preset_target(bad):
    lab = Lab()
    errors = lab.apply_query({"points": bad, "preset": "collapse"})
    assert len(errors) == 1 and errors[0].startswith("points: ") and "\n" not in errors[0]
    assert "6000" in errors[0] and lab.target_kind != "file" and lab.custom is None
    assert lab.message_kind == "danger" and "points:" in lab.message


def test_link_points_reject_non_finite_values_and_a_zip_bomb():
    import base64
    import struct
    import zlib
    from app.lab import linkdata
    from dynamics.knobs import ConfigError

    def text(raw):
        return base64.urlsafe_b64encode(zlib.compress(raw, 9)).rstrip(b"=").decode()
    nan = struct.pack("<BBI", 1, 2, 1) + np.array([np.nan, 0], "<f4").tobytes()
    with pytest.raises(ConfigError, match="^points: .*non-finite"):
        linkdata.decode(text(nan))
    bomb = text(b"\0" * (3 * 2**20))                           # 3 MiB of zeros in 4 KB
    assert len(bomb) < linkdata.LINK_CHARS_MAX
    with pytest.raises(ConfigError, match="^points: .*too large"):
        linkdata.decode(bomb)


# ---------------------------------------------------------------- names declared once (issue 12)
def test_frames_carry_the_declared_live_observables_and_the_views_draw_only_those():
    """A frame's metrics are the observables declared live (source cloud or state, plus the
    distances on a point set), so a series the views draw under a name nobody measures (a
    silent NaN line) fails here."""
    from dynamics import observables
    sim = build(resolve({"particles": 16, "disc.width": 8}))
    s = _run(sim, 2)
    live = {n for n in observables.names(when=("step",), source=("cloud", "state"))
            if observables.OBSERVABLES[n].targets is None}
    f = frames.make_frame(sim, s, frames.make_scene(sim, 1), 1, x_prev=s.x)
    assert set(f.metrics) == live
    drawn = {c for lines in views.SERIES.values() for c, _, _ in lines}
    assert drawn <= live, drawn - live
    assert [c for c, _, _ in views.DISTANCES] == list(observables.names(when=("request",)))
    assert set(views.DISTANCE_STYLE) == set(observables.names(when=("request",)))


def test_the_live_spectrum_limit_comes_from_the_kernel_registry(monkeypatch):
    """A kernel whose Θ costs a backward pass per particle (KernelKind.theta_per_particle) stops
    showing every level above SPECTRUM_N_MAX_PER_PARTICLE; a dense one goes on to SPECTRUM_N_MAX."""
    from dynamics import kernels
    monkeypatch.setattr(frames, "SPECTRUM_N_MAX_PER_PARTICLE", 4)
    for kind, full in (("network", False), ("rbf", True)):
        assert kernels.KERNELS[kind].theta_per_particle is not full
        sim = build(resolve({"particles": 8, "kernel.kind": kind, "kernel.net_width": 16, "disc.width": 4}))
        levels, _ = frames.spectrum(sim, sim.init())
        assert (len(levels) == 8) is full, kind


def test_the_field_colour_bar_holds_its_range_between_frames():
    """The critic field's colour bar widens at once when the field grows (nothing is clipped) but
    does not follow every small shrink, so the same colour means the same D over time; it
    narrows once the field has fallen below a quarter of the range, and restarts with a run."""
    assert views.steady_limit(None, 1.0) == 1.0
    assert views.steady_limit(1.0, 0.8) == 1.0 and views.steady_limit(1.0, 0.3) == 1.0
    assert views.steady_limit(1.0, 0.2) == 0.2 and views.steady_limit(1.0, 3.0) == 3.0
    sim = build(resolve({"particles": 16}))
    scene = frames.make_scene(sim, 1)
    grid = frames.field_points(scene, sim.device, sim.dtype)
    v = views.Views()
    s = sim.init()
    highs = []
    for _ in range(6):
        prev, s = s.x, sim.step(s)
        f = frames.make_frame(sim, s, scene, 1, prev, field_grid=grid)
        v.update(f)
        highs.append((v.field_mapper.high, float(np.abs(f.field).max())))
    for (h0, _), (h1, lim1) in zip(highs, highs[1:]):
        assert h1 >= lim1 and (h1 == lim1 or h1 == h0)          # covers the field; changes only by the rule


def test_line_labels_sit_above_the_data_of_every_series_figure():
    """Each series figure's y range leaves the top band for its canvas labels: a coverage of 1
    and the largest value of a fitted series draw below the lowest label."""
    sim = build(resolve({"particles": 16}))
    scene = frames.make_scene(sim, 1)
    v = views.Views()
    s = sim.init()
    for _ in range(5):
        prev, s = s.x, sim.step(s)
        v.update(frames.make_frame(sim, s, scene, 1, prev))
    v.flush()
    for name, lines in views.SERIES.items():
        f = v.series_figs[name]
        r = f.y_range
        top = 1.0 if name == "modes" else max(float(np.nanmax(v.series.data[k])) for k, _, _ in lines)
        share = (top - r.start) / (r.end - r.start)                 # where the data's top draws, 0 … 1
        assert share <= 1 - views.label_room(len(lines)) + 1e-9, (name, share)


# ---------------------------------------------------------------- per-frame cost (issue 13 item 5)
def test_what_changes_every_frame_is_drawn_on_the_overlay_layer_alone():
    """Particles, force arrows and the series lines sit on BokehJS's overlay layer, which a
    change repaints without the layers under it; the field, the target and the mode circles stay
    below, so a frame does not repaint them."""
    v = views.Views()
    live = {v.particles, v.arrows, v.series, v.meter_series}
    figs = [v.particle_fig, *v.series_figs.values(), *v.meter_figs.values()]
    renderers = [r for f in figs for r in f.renderers + f.center]
    fed = [r for r in renderers if getattr(r, "data_source", getattr(r, "source", None)) in live]
    assert {getattr(r, "data_source", getattr(r, "source", None)) for r in fed} == live
    assert all(r.level == views.LIVE_LEVEL == "overlay" for r in fed)
    still = [r for r in v.particle_fig.renderers if r.data_source in (v.field, v.target, v.modes)]
    assert len(still) == 3 and all(r.level != "overlay" for r in still)


def test_particles_outside_the_shown_ranges_are_not_drawn():
    """The overlay is not clipped to the plot's frame: a particle outside the ranges the user
    panned or zoomed to is sent as NaN (not drawn) instead of over the axes; inside, unchanged."""
    sim = build(resolve({"particles": 16, "disc.width": 8}))
    s = _run(sim, 2)
    scene = frames.make_scene(sim, 1)
    f = frames.make_frame(sim, s, scene, 1, s.x)
    v = views.Views()
    v.update(f)
    assert np.array_equal(v.particles.data["x"], f.xy[:, 0])             # the scene's ranges hold them all
    x0, x1 = float(np.median(f.xy[:, 0])), scene.extent[1]
    v.particle_fig.x_range.update(start=x0, end=x1)                       # zoomed to the right half
    v.update(f)
    x, y = v.particles.data["x"], v.particles.data["y"]
    inside = (f.xy[:, 0] >= x0) & (f.xy[:, 0] <= x1)
    assert 0 < inside.sum() < len(inside)
    assert np.array_equal(x[inside], f.xy[inside, 0]) and np.array_equal(y[inside], f.xy[inside, 1])
    assert np.isnan(x[~inside]).all() and np.isnan(y[~inside]).all()
    assert x.dtype == np.float32


def test_the_single_view_states_its_modes_covered_and_a_point_set_none():
    """The transport row reads 'modes covered k / K' from the frame it shows (the collapse
    preset: fewer than all 8 after 300 steps); a point set, shown by distances, gets none."""
    from app.lab.page import coverage_text
    from dynamics import observables
    sim = build(resolve(presets.load("collapse"), {"particles": 64}))
    s = _run(sim, 300)
    f = frames.make_frame(sim, s, frames.make_scene(sim, 1), 1)
    k = int(observables.cheap(s.x, sim.target)["modes_covered"][0])
    assert coverage_text(f) == f"<b>modes covered</b> {k} / 8" and k < 8      # collapse: fewer than all
    assert coverage_text(None) == ""
    assert coverage_text(dataclasses.replace(f, scene=dataclasses.replace(f.scene, distances=True))) == ""
