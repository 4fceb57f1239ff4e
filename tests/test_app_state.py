"""The live lab's state object, headless: knob routing, URL round trip, uploads, divergence,
workers, and the pure frame/view/export functions. No browser, no server."""
from __future__ import annotations

import io
import re
import time
import urllib.parse

import numpy as np
import pytest
import torch

pytest.importorskip("panel")

from dynamics import presets  # noqa: E402
from dynamics.knobs import KNOBS  # noqa: E402
from app.lab import export, frames, knobui, views  # noqa: E402
from app.lab.state import ATTR, KEY, Lab  # noqa: E402
from dynamics.knobs import ConfigError, resolve  # noqa: E402
from dynamics.targets import load_points, parse_csv  # noqa: E402
from app.lab.worker import LIVE, Worker  # noqa: E402


def wait_until(fn, timeout=20.0, interval=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def lab():
    lab = Lab(particles=32)
    lab.start()
    yield lab
    lab.close()


def steady(worker, dt=0.15):
    n = worker.steps_done
    time.sleep(dt)
    return worker.steps_done == n


def frame_of(lab, pred=lambda f: True, timeout=20.0):
    """Drain frames until one satisfies pred."""
    got = []

    def ok():
        f = lab.take_frame()
        if f is not None and pred(f):
            got.append(f)
        return bool(got)
    wait_until(ok, timeout)
    return got[0]


# ---------------------------------------------------------------- knobs -> params and widgets
def test_parameters_are_generated_from_the_knob_declarations():
    for k in knobui.SHOWN:
        p = Lab.param[ATTR[k.name]]
        assert p.doc == k.doc and p.label == knobui.label(k)
        if k.allowed() is not None:
            assert list(p.objects) == k.allowed()
        elif k.kind in (int, float):
            assert tuple(p.bounds) == tuple(k.lab or k.bounds)        # the lab's stricter bounds where set
    assert not any(k.role == "run" for k in knobui.SHOWN)          # steps / record.* make no sense live
    assert "reg_strength" in ATTR.values() and "seed" in ATTR.values()


def test_widgets_follow_the_declarations():
    import panel as pn
    for k in knobui.SHOWN:
        w, to_w, from_w = knobui.make_widget(k, k.default)
        kind = knobui.widget_kind(k)
        if kind == "log":
            assert isinstance(w, pn.widgets.FloatSlider) and k.log
            assert w.start <= to_w(k.default) <= w.end
            lo, hi = k.bounds
            assert 10 ** w.start >= (lo or 0) and 10 ** w.end <= hi
            assert from_w(to_w(0.3)) == pytest.approx(0.3)
        elif kind == "select":
            assert w.options == k.allowed()
        elif kind in ("slider", "input"):
            assert (w.start, w.end) == tuple(knobui.bounds(k))
    # the regulariser knob is declared log: its slider spans decades, out-of-range values widen it
    k = KNOBS["reg.strength"]
    assert knobui.widget_kind(k) == "log"
    assert knobui.log_range(k, 500.0)[1] >= 500.0


def test_applies_names_real_knobs_and_choices():
    declared = [k for k in KNOBS.values() if k.applies is not None]
    assert {"ct.rho", "ct.max_step", "kernel.ratio", "disc.width", "critic.restarts"} <= {k.name for k in declared}
    for k in declared:
        key, values = k.applies
        assert key in KNOBS and key != k.name, k.name
        assert values and set(values) <= set(KNOBS[key].allowed()), k.name
        chain = [k.name]                            # a chain (disc.beta1 -> disc.optimizer -> disc.kind) ends
        while KNOBS[chain[-1]].applies is not None:
            chain.append(KNOBS[chain[-1]].applies[0])
            assert len(chain) == len(set(chain)), chain
    assert knobui.APPLIES["ct.max_step"] == ("disc.kind", {"ct"})
    assert knobui.group(KNOBS["ct.rho"]) == knobui.group(KNOBS["critic.restarts"]) == "Discriminator"


def test_a_knob_matters_only_when_its_whole_chain_holds():
    """reg.strength needs a penalty (not reg.kind = none) and a critic trained by ascent: the
    first broken link is named, by the lab (which hides the slider) and by --set."""
    from dynamics.knobs import check_applies, inapplicable, resolve
    cfg = resolve({})
    assert inapplicable("reg.strength", cfg) is None
    assert inapplicable("reg.strength", {**cfg, "reg.kind": "none"})[0] == "reg.kind"
    assert inapplicable("reg.strength", {**cfg, "disc.kind": "ct"})[0] == "disc.kind"
    assert inapplicable("disc.beta1", {**cfg, "disc.optimizer": "adam", "disc.kind": "ct"})[0] == "disc.kind"
    with pytest.raises(ConfigError, match=r"^--set reg.strength: has no effect with reg.kind = none; allowed only"):
        given = {"reg.kind": "none", "reg.strength": 1.0}
        check_applies(resolve(given), given, "--set")


def _changed(k):
    """A valid value of knob k other than its default."""
    if k.allowed() is not None:
        return next(v for v in k.allowed() if v != k.default)
    if k.kind is bool:
        return not k.default
    if k.kind is str:                                  # a free-form string knob: one valid example
        return {"disc.widths": "16,32,16"}[k.name]
    lo, hi = k.bounds
    v = k.default + 1 if k.kind is int else (k.default * 2 if k.default else 0.5)
    return min(v, hi)


def _trajectory(cfg, steps=3):
    from dynamics.engine import build
    sim = build({"particles": 8, "dtype": "float64", "device": "cpu", **cfg})
    s = sim.init()
    for _ in range(steps):
        s = sim.step(s)
    return s.x


def _buildable(key):
    """Choices that build with default knobs (file needs points, grid a square mode count)."""
    return [v for v in KNOBS[key].allowed() if v not in ("file", "grid")]


@pytest.mark.parametrize("name", [k.name for k in knobui.SHOWN if k.applies is not None])     # target.file: a path
def test_a_knob_changes_the_run_exactly_where_it_applies(name):
    """The `applies` declarations are the physics: changing the knob moves the particles for
    every choice it names and leaves them bit-identical for every other one."""
    k = KNOBS[name]
    key, values = k.applies
    extra = {"ct.max_step": 0.01} if name == "ct.max_step" else {}     # its default 0 is the off switch
    # the output bias c has ∂J/∂c = 0 under the ipm loss (E_p c − E_q c): it shows under ns
    context = {"disc.out_bias": {"loss": "ns"}}.get(name, {})
    for choice in _buildable(key):
        base = {**context, key: choice}
        a = _trajectory(base)
        b = _trajectory({**base, name: extra.get(name, _changed(k))})
        same = a.shape == b.shape and torch.equal(a, b)
        assert same != (choice in values), f"{name} with {key} = {choice}"


# ---------------------------------------------------------------- routing of changes
def test_live_knob_applies_through_set_hyper_without_reset(lab):
    wait_until(lambda: lab.worker.steps_done > 20)
    epoch = frame_of(lab).epoch
    lab.reg_strength = 0.7
    wait_until(lambda: lab.worker.hyper.get("reg.strength") == pytest.approx(0.7))
    assert lab.message.startswith("applied live") and lab.message_kind == "success"
    f = frame_of(lab, lambda f: f.hyper["reg.strength"] == pytest.approx(0.7))
    assert f.epoch == epoch and f.t > 20                          # same run, not restarted
    assert lab.worker.cfg["particles"] == 32


def test_structural_knob_rebuilds_and_says_so(lab):
    wait_until(lambda: lab.worker.steps_done > 20)
    before = frame_of(lab).epoch
    lab.param.update(particles=48, disc_activation="tanh")
    wait_until(lambda: lab.worker.cfg["particles"] == 48)
    assert lab.worker.cfg["disc.activation"] == "tanh"
    assert lab.message.startswith("restarts: particles changed") and lab.message_kind == "warning"
    f = frame_of(lab, lambda f: f.epoch > before)
    assert f.xy.shape == (48, 2) and f.t < 20


def _flat(tree, pre=""):
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{pre}{k}.") if isinstance(v, dict) else {pre + k: v.clone()})
    return out


def _paused(lab, steps=30):
    """Let the run take `steps` steps, pause it and return a copy of its state's parts."""
    wait_until(lambda: lab.worker.steps_done > steps)
    lab.running = False
    wait_until(lambda: steady(lab.worker))
    s = lab.worker._state
    return s.x.clone(), _flat(s.disc), _flat(s.opt), s.t


@pytest.mark.parametrize("attr, value", [("disc_activation", "sigmoid"), ("loss", "ns"), ("reg_kind", "wgan_gp")])
def test_a_critic_swap_keeps_particles_weights_and_step(lab, attr, value):
    x, disc, opt, t = _paused(lab)
    epoch = lab.worker._epoch
    setattr(lab, attr, value)
    wait_until(lambda: lab.worker.cfg[KEY[attr]] == value)
    lab.take_frame()
    s = lab.worker._state
    assert torch.equal(s.x, x) and s.t == t                                   # bitwise the same particles
    assert _flat(s.disc).keys() == disc.keys() and all(torch.equal(_flat(s.disc)[k], disc[k]) for k in disc)
    assert all(torch.equal(_flat(s.opt)[k], opt[k]) for k in opt)
    assert lab.message.startswith("kept the run") and lab.t == t
    assert lab.worker.marks == (epoch, (t,)) and lab.worker.record.knob_history()[1][-1][:2] == \
        (t, KEY[attr])
    lab.step_once()
    f = frame_of(lab, lambda f: f.t == t + 1)                                 # t goes on, same series
    assert f.epoch == epoch and not np.array_equal(f.xy, x[0].numpy())


def test_a_kernel_change_keeps_the_particles(lab):
    x, disc, _, t = _paused(lab)
    lab.kernel_kind = "rbf"
    wait_until(lambda: lab.worker.cfg["kernel.kind"] == "rbf")
    s = lab.worker._state
    assert torch.equal(s.x, x) and s.t == t and "z" in s.kernel
    assert all(torch.equal(_flat(s.disc)[k], disc[k]) for k in disc)
    lab.step_once()
    wait_until(lambda: lab.worker._state.t == t + 1)


def test_a_kernel_that_makes_its_own_particles_restarts_and_says_why(lab):
    _paused(lab)
    lab.param.update(kernel_kind="network", kernel_net_width=64)
    wait_until(lambda: (lab.take_frame(), "makes its own" in lab.message)[1])
    assert lab.worker.cfg["kernel.kind"] == "network" and lab.worker._state.t == 0 and lab.t == 0
    assert lab.message.startswith("restarts: the network kernel makes its own particles")


def test_a_swap_queued_behind_a_restart_restarts_too(monkeypatch):
    """The worker builds only the newest of the loads queued while it is busy: a swap queued
    behind a seed change must not carry the old run (and its old seed) over."""
    import threading
    from app.lab import state
    from dynamics import rng
    gate, real = threading.Event(), state.build
    lab = Lab(particles=16).start()
    try:
        wait_until(lambda: lab.worker.steps_done > 3)
        monkeypatch.setattr(state, "build", lambda cfg, **kw: (gate.wait(30), real(cfg, **kw))[1])
        lab.disc_width = 64                       # the worker is busy building this one ...
        wait_until(lambda: lab.worker.building)
        lab.seed = 3                              # ... while a restart and a swap queue behind it
        lab.disc_activation = "tanh"
        assert lab.message.startswith("restarts: an earlier change")
        gate.set()
        wait_until(lambda: lab.worker.cfg["disc.activation"] == "tanh")
        s = lab.worker._state
        assert lab.worker.cfg["seed"] == 3 and torch.equal(s.key, rng.member_keys([3], s.key.device))
    finally:
        gate.set()
        lab.close()


def test_a_particle_count_change_restarts_with_a_message(lab):
    _paused(lab)
    lab.particles = 40
    assert lab.message.startswith("restarts: particles changed")
    wait_until(lambda: lab.worker.cfg["particles"] == 40)
    assert lab.worker._state.t == 0 and lab.worker.marks[1] == ()


def test_a_rejected_combination_is_reverted_and_the_run_goes_on(lab):
    wait_until(lambda: lab.worker.steps_done > 5)
    lab.target_kind = "grid"                                       # 8 modes is not a square
    assert lab.target_kind == "ring" and lab.message_kind == "danger" and "square" in lab.message
    n = lab.worker.steps_done
    wait_until(lambda: lab.worker.steps_done > n + 5)
    assert lab.worker.cfg["target.kind"] == "ring"


def test_preset_loads_its_knobs():
    lab = Lab()
    lab.preset = "collapse"
    assert lab.kernel_ratio == presets.load("collapse")["kernel.ratio"]
    assert "hops" in lab.message or "collapses" in lab.message


def test_transport_step_reset_and_pause(lab):
    wait_until(lambda: lab.worker.steps_done > 10)
    lab.running = False
    wait_until(lambda: steady(lab.worker))
    t0 = lab.worker.steps_done
    time.sleep(0.3)
    assert lab.worker.steps_done == t0                             # paused
    lab.step_once()
    wait_until(lambda: lab.worker.steps_done == t0 + 1)
    lab.reset()
    f = frame_of(lab, lambda f: f.t == 0)
    assert f.hyper["reg.strength"] == pytest.approx(lab.reg_strength)
    lab.running = True
    wait_until(lambda: lab.worker.steps_done > t0 + 10)


# ---------------------------------------------------------------- URL
def test_url_round_trip_restores_every_knob():
    a = Lab()
    a.param.update(preset="damping")
    a.param.update(reg_strength=3.5, seed=11, disc_activation="tanh", particles=20, teach=False, speed=3)
    q = a.query()
    assert q["preset"] == "damping" and q["reg.strength"] == "3.5" and q["seed"] == "11"
    assert "lr.disc" not in q                                      # unchanged knobs stay out of the link
    parsed = dict(urllib.parse.parse_qsl(urllib.parse.urlencode(q)))     # through a real query string
    b = Lab()
    assert b.apply_query(parsed) == []
    assert b.knob_values() == a.knob_values()
    assert (b.preset, b.teach, b.speed) == ("damping", False, 3)


def test_bad_url_parameters_are_reported_and_skipped():
    lab = Lab()
    errors = lab.apply_query({"reg.strength": ["-2"], "particles": [b"abc"], "bogus": ["1"], "preset": ["nope"],
                              "kernel.ratio": ["0.9"]})
    assert len(errors) == 4
    assert lab.message_kind == "danger" and "out of range" in lab.message and "bogus" in lab.message
    base = resolve_preset(presets.DEFAULT)
    assert lab.reg_strength == base["reg.strength"] and lab.particles == base["particles"]
    assert lab.kernel_ratio == 0.9                                 # the good one still applies


def resolve_preset(name):
    from dynamics.knobs import resolve
    return resolve(presets.load(name))


def test_bad_combination_in_url_falls_back_at_start():
    lab = Lab()
    lab.apply_query({"target.kind": "grid", "target.modes": "8"})
    lab.start()
    try:
        wait_until(lambda: lab.worker.cfg is not None)
        assert "square" in lab.message
        assert lab.worker.cfg["target.modes"] in (4, 9, 16, 25) or lab.worker.cfg["target.kind"] == "ring"
    finally:
        lab.close()


# ---------------------------------------------------------------- your own target
@pytest.mark.parametrize("name,data,why", [
    ("bad.csv", b"x,y\n1,2\n3,oops\n", "cannot read"),
    ("ragged.csv", b"1,2\n3\n", "cannot read"),
    ("empty.csv", b"", "is empty"),
    ("nan.csv", b"1,2\nnan,4\n", "non-finite"),
    ("binary.csv", bytes(range(256)), "cannot read"),
    ("bad.npy", b"not a numpy file", "cannot read"),
])
def test_malformed_upload_is_a_message_and_keeps_the_run(lab, name, data, why):
    wait_until(lambda: lab.worker.steps_done > 5)
    assert lab.upload(name, data) is False
    assert lab.message_kind == "danger" and why in lab.message and "kept the running simulation" in lab.message
    assert lab.target_kind == "ring" and lab.worker.cfg["target.kind"] == "ring"
    n = lab.worker.steps_done
    wait_until(lambda: lab.worker.steps_done > n + 5)


def test_upload_and_drawn_points_become_the_target(lab):
    assert lab.upload("pts.csv", b"x,y\n1,0\n-1,0\n0,1.5\n") is True
    wait_until(lambda: (lab.worker.cfg or {}).get("target.kind") == "file")
    f = frame_of(lab, lambda f: f.scene.n_modes == 3)
    assert f.scene.centers_xy.shape == (3, 2)
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).normal(size=(50, 5)))
    assert lab.upload("cloud.npy", buf.getvalue()) is True
    f = frame_of(lab, lambda f: f.scene.dim == 5)
    assert f.xy.shape[1] == 2                                      # shown in a 2-D projection
    assert lab.use_points(np.array([[0.0, 0.0], [2.0, 2.0]])) is True
    assert "target.kind" not in lab.query()                        # points cannot travel in a link
    np.testing.assert_array_equal(load_points("a.csv", b"x;y\n1;2\n\n3;4e-1\n"), [[1, 2], [3, 0.4]])


@pytest.mark.parametrize("text,says", [
    ("x,y\n1,2\n3,oops\n", "row 3 holds 'oops'"),
    ("1,2\n3\n", "row 2 has 1 values where the first row has 2"),
    ("1,2\n3,4,5\n", "row 2 has 3 values where the first row has 2"),
])
def test_parse_csv_names_the_field_the_row_and_what_is_allowed(text, says):
    with pytest.raises(ConfigError) as e:
        parse_csv(text, "pts.csv")
    msg = str(e.value)
    assert msg.startswith("target.file: cannot read pts.csv, ") and says in msg and "\n" not in msg
    assert "allowed numbers only, one point per row" in msg


def test_load_points_reports_files_and_uploads_alike(tmp_path):
    """One parser for a path and for uploaded bytes: the same one-line ConfigError."""
    bad = b"1,2\n3,oops\n"
    (tmp_path / "p.csv").write_bytes(bad)
    with pytest.raises(ConfigError) as on_disk:
        load_points(str(tmp_path / "p.csv"))
    with pytest.raises(ConfigError) as uploaded:
        load_points("p.csv", bad)
    assert str(on_disk.value) == str(uploaded.value)
    for name, data, says in [("b.csv", bytes(range(128, 256)), "not UTF-8 text"),
                             ("b.npy", b"not a numpy file", "cannot read b.npy (ValueError); allowed a numeric .npy"),
                             ("e.csv", b"", "shape"), ("n.csv", b"1,2\ninf,4\n", "non-finite")]:
        with pytest.raises(ConfigError, match=f"^target.file: .*{re.escape(says)}") as e:
            load_points(name, data)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_points(str(tmp_path / "missing.csv"))


# ---------------------------------------------------------------- divergence and workers
def test_diverging_run_shows_a_banner_and_pauses():
    lab = Lab(particles=16, lr_gen=1e4, lr_disc=100.0).start()
    try:
        frame_of(lab, lambda f: f.diverged_step >= 0)
        assert "diverged at step" in lab.diverged and lab.running is False
        lab.param.update(lr_gen=0.1, lr_disc=0.01)                 # live knobs cannot un-freeze it ...
        lab.reset()                                                # ... a reset does
        assert lab.diverged == ""
        lab.step_once()
        frame_of(lab, lambda f: f.t == 1 and f.diverged_step < 0)
    finally:
        lab.close()


def test_worker_stops_and_releases_on_close():
    lab = Lab(particles=16).start()
    w = lab.worker
    wait_until(lambda: w.steps_done > 3)
    assert w in LIVE and w.alive and not w.released
    lab.close()
    assert w not in LIVE
    wait_until(lambda: not w.alive, 10)                            # close() does not block the event loop
    assert w.released                                              # tensors dropped


def test_worker_failure_becomes_a_message():
    lab = Lab(particles=16).start()
    try:
        wait_until(lambda: lab.worker.steps_done > 3)
        lab.worker.set_hyper({"no.such": 1.0})                     # raises inside the thread
        wait_until(lambda: lab.worker.error != "")
        lab.take_frame()
        assert lab.message_kind == "danger" and "stopped" in lab.message and lab.worker.alive
    finally:
        lab.close()


# ---------------------------------------------------------------- frames, views, exports
def test_frames_views_and_exports_fit_together():
    from dynamics.engine import build
    from dynamics.knobs import resolve
    sim = build(resolve(presets.load("ring8"), {"particles": 24}))
    s = sim.init()
    for _ in range(5):
        prev, s = s.x, sim.step(s)
    scene = frames.make_scene(sim, 1)
    grid = frames.field_points(scene, sim.device, sim.dtype)
    f = frames.make_frame(sim, s, scene, 1, prev, field_grid=grid, arrows=True, with_spectrum=True)
    assert f.xy.dtype == np.float32 and f.xy.shape == (24, 2)
    assert f.field.shape == (frames.FIELD_GRID, frames.FIELD_GRID) and abs(f.field.mean()) < 1e-3
    assert f.arrows.shape == (24, 4)
    levels, mult = f.spectrum
    assert list(mult) == [1, 23]
    assert levels[0] == pytest.approx(1 + 23 * 0.1) and levels[1] == pytest.approx(0.9)
    d = views.spectrum_data(levels, mult)
    assert d["stems"]["label"] == ["×1", "×23"]
    assert d["collective"] == pytest.approx(levels[0]) and d["relative"] == pytest.approx(levels[1])
    p = views.particle_data(f)
    assert p["x"].dtype == np.float32 and p["x"].flags.c_contiguous
    row = views.series_row(f)
    assert 0 <= row["coverage"][0] <= 1 and np.isfinite(row["speed_collective"][0])
    v = views.Views()
    v.update(f)
    assert len(v.particles.data["x"]) == 24 and len(v.series.data["t"]) == 0     # rows wait for flush
    v.flush()
    assert len(v.series.data["t"]) == 1
    assert views.image_grid(np.ones((16, 8, 8), np.float32)).shape == (36, 36)

    w = Worker()
    w.record.cfg = dict(sim.cfg)
    w.record.add_row(5, f.metrics)
    w.record.add_snapshot(5, s.x[0].numpy())
    nc = export.netcdf_bytes(w.record, "cpu")
    import xarray as xr
    ds = xr.open_dataset(io.BytesIO(nc), engine="h5netcdf")
    assert ds["positions"].shape == (1, 1, 24, 2) and int(ds["step"][0]) == 5
    assert export.gif_bytes(*w.record.snapshots(), scene)[:6] == b"GIF89a"
    assert export.figure_png(w.record, scene)[:8] == b"\x89PNG\r\n\x1a\n"


def test_high_dimensional_targets_are_projected_to_their_principal_plane():
    from dynamics.engine import build
    from dynamics.knobs import resolve
    sim = build(resolve(presets.load("ring8"), {"particles": 16, "target.dim": 6}))
    scene = frames.make_scene(sim, 1)
    assert scene.basis.shape == (6, 2)
    assert np.allclose(scene.basis.T @ scene.basis, np.eye(2), atol=1e-8)
    r = np.linalg.norm(scene.centers_xy - scene.centers_xy.mean(0), axis=1)
    assert np.allclose(r, 2.0, atol=0.05)                          # the ring survives the projection


def _choices():
    from dynamics.knobs import KNOBS
    return [(ATTR[k], v) for k in ("disc.kind", "kernel.kind", "target.kind", "loss")
            for v in KNOBS[k].allowed() if v not in ("file", "grid")]      # file needs points; grid a square


@pytest.mark.parametrize("attr,value", _choices())
def test_every_registered_choice_runs_in_the_lab(attr, value):
    """Each critic, kernel, target and loss the engine registers streams frames with every view
    (the critic's field where the critic has a value D; conditional transport has none)."""
    lab = Lab(particles=12, arrows=True, **{attr: value}).start()
    try:
        seen, want = set(), {"arrows", "spectrum"}

        def all_parts():
            f = lab.take_frame()
            if f is not None:
                seen.update(k for k in ("field", "arrows", "spectrum") if getattr(f, k) is not None)
                assert np.isfinite(f.xy).all() and f.xy.shape == (12, 2)
                if f.scene.valued:
                    want.add("field")
                else:
                    assert f.field is None
            return seen >= want
        wait_until(all_parts, 60)
        assert lab.worker.error == "" and lab.worker.cfg[KEY_OF[attr]] == value
    finally:
        lab.close()


KEY_OF = {v: k for k, v in ATTR.items()}


def test_teach_mode_hides_advanced_knobs_and_kinds_hide_what_does_not_apply():
    from app.lab.page import knob_cards
    lab = Lab()
    _, widgets = knob_cards(lab)
    advanced = [k.name for k in knobui.SHOWN if k.advanced]
    assert advanced and all(not widgets[n].visible for n in advanced)       # teach mode is on by default
    lab.teach = False
    assert all(widgets[n].visible for n in advanced if n not in knobui.APPLIES)
    assert widgets["kernel.ratio"].visible and not widgets["kernel.width"].visible
    lab.kernel_kind = "rbf"                                                   # not started: no rebuild
    assert widgets["kernel.width"].visible and not widgets["kernel.ratio"].visible


def test_the_page_builds_headless_from_a_query():
    from app.lab.page import create
    page = create(query={"reg.strength": [b"0.5"], "preset": [b"collapse"]})
    try:
        assert page.lab.reg_strength == 0.5 and page.lab.kernel_ratio == 0.9
        assert page.title.startswith("effgan")
    finally:
        page.lab.close()


# ---------------------------------------------------------------- companion meters (papers A-C)
def _sim(**knobs):
    from dynamics.engine import build
    from dynamics.knobs import resolve
    return build(resolve({"particles": 48, "dtype": "float64", "device": "cpu", **knobs}))


def _run(sim, steps):
    s = sim.init()
    for _ in range(steps):
        s = sim.step(s)
    return s


def test_ct_meter_is_the_loss_the_engine_descends():
    """forward = the CT loss at ρ = 1, backward = the loss at ρ = 0, and the ρ-weighted loss is
    the loss_g the next step reports: the meter reads the engine's own objective and batch."""
    from app.lab import meters
    sim = _sim(**{"disc.kind": "ct", "ct.rho": 0.3, "real": 40})
    s = _run(sim, 15)
    m = meters.ct_meter(sim, s)
    assert m["ct_forward"] == pytest.approx(float(sim.forces(sim.set_hyper(s, {"ct.rho": 1.0}))[0][0]), rel=1e-10)
    assert m["ct_backward"] == pytest.approx(float(sim.forces(sim.set_hyper(s, {"ct.rho": 0.0}))[0][0]), rel=1e-10)
    assert m["ct_loss"] == pytest.approx(float(sim.step(s).loss_g[0]), rel=1e-10)
    assert m["ct_loss"] == pytest.approx(0.3 * m["ct_forward"] + 0.7 * m["ct_backward"], rel=1e-10)


def test_approximability_of_the_f1_neuron_is_a_fraction_of_w1():
    """The f1 neuron is 1-Lipschitz, so its IPM never exceeds the exact W1 of the same samples;
    for a pure mean shift (paper B, Thm 3.1: Gaussians) it sees nearly all of it."""
    from app.lab import meters
    shift = _sim(**{"disc.kind": "f1_neuron", "target.kind": "point", "target.std": 0.05, "init.std": 0.05,
                    "lr.gen": 0.0})
    s = shift.init()
    for t in range(1, 31):
        s = shift.step(s)
        m = meters.approx_meter(shift, s)
        assert abs(m["ra_ratio"]) <= 1 + 1e-9 and m["ra_w1"] == pytest.approx(2.0, abs=0.1)
    assert m["ra_ratio"] > 0.85
    ring = _sim(**{"disc.kind": "f1_neuron"})                      # particles start inside the ring
    ratios = []
    s = ring.init()
    for _ in range(40):
        s = ring.step(s)
        ratios.append(meters.approx_meter(ring, s)["ra_ratio"])
    assert max(abs(r) for r in ratios) <= 1 + 1e-9
    assert max(ratios) < 0.6                 # a blob inside the ring: one neuron sees a part of W1
    assert meters.approx_meter(ring, ring.init()) == {}           # no trained critic yet


def test_paper_a_meter_sees_a_shift_above_its_null_and_below_exact_w1():
    from app.lab import meters
    sim = _sim(**{"disc.kind": "f1_neuron", "target.kind": "point", "target.std": 0.3, "init.std": 0.3,
                  "lr.gen": 0.0, "particles": 128})
    s = _run(sim, 2)
    a, ra = meters.paper_a_meter(sim, s), meters.approx_meter(sim, s)
    for k in ("f1", "f2", "msw1", "sw1"):
        assert a[k] > 3 * a[k + "_null"] > 0
    assert a["msw1"] <= ra["ra_w1"] + 1e-9           # the same samples: max-sliced W1 ≤ W1
    assert a["sw1"] <= a["msw1"] + 1e-9              # an average over directions ≤ the best one
    assert a["msw1"] == pytest.approx(ra["ra_w1"], rel=0.2)       # a shift is one direction


@pytest.mark.parametrize("kind,expect", [("ct", {"ct"}), ("mlp", {"approx"}), ("linear", {"approx"}),
                                         ("f1_neuron", {"approx", "paper_a"}), ("f2_features", {"approx", "paper_a"})])
def test_meters_stream_only_for_the_kinds_they_apply_to(kind, expect):
    from app.lab import meters
    lab = Lab(particles=24, disc_kind=kind).start()
    try:
        f = frame_of(lab, lambda f: f.meters is not None and f.t > 0 and
                     all(k in f.meters for n in expect for k in KEYS[n]))
        assert set(f.scene.meters) == expect == set(meters.applicable(lab.worker.cfg))
        others = {k for n in set(KEYS) - expect for k in KEYS[n]}
        seen = set(f.meters)
        for _ in range(5):
            g = frame_of(lab, lambda g: g.meters is not None)
            seen |= set(g.meters)
        assert not seen & others and all(np.isfinite(v) for v in f.meters.values())
        v = views.Views()
        v.update(f)
        assert {n for n, fig in v.meter_figs.items() if fig.visible} == expect
        v.flush()
        assert v.meter_series.data["t"] == [f.meters["t"]]
        if "paper_a" in expect:
            assert v.meter_series.data["f1_rel"][0] == pytest.approx(f.meters["f1"] / f.meters["f1_null"])
        assert set(KEYS[sorted(expect)[0]]) <= set(lab.worker.record.history().series)     # exported too
        assert lab.worker.error == ""
    finally:
        lab.close()


KEYS = {"ct": ("ct_forward", "ct_backward"), "approx": ("ra_ratio", "ra_gap"), "paper_a": ("f1", "f2_null", "msw1")}


def test_costly_meters_take_a_bounded_share_of_the_worker():
    """Each meter waits max(Meter.every, cost / METER_SHARE) after an evaluation, so over a run
    it takes at most METER_SHARE of the thread's time (plus the evaluation under way)."""
    from app.lab import worker
    lab = Lab(particles=64, disc_kind="f1_neuron")
    start = time.monotonic()
    lab.start()
    try:
        wait_until(lambda: lab.worker.meter_time["paper_a"] > 0)
        time.sleep(3)
        elapsed = time.monotonic() - start
        for name in ("approx", "paper_a"):
            spent = lab.worker.meter_time[name]
            assert spent <= worker.METER_SHARE * elapsed + 2 * lab.worker.meter_cost[name], name
        assert lab.worker.steps_done > 100                        # stepping went on between meters
    finally:
        lab.close()


def test_spectrum_of_a_large_dense_kernel_shows_its_top_levels(monkeypatch):
    """Above SPECTRUM_N_MAX a cached Θ shows its top SPECTRUM_TOP eigenvalues (block Krylov),
    equal to the full eigendecomposition's, and the view says it is the top of the spectrum;
    without a cached Θ the view says it is not computed live."""
    from dynamics import kernels
    from dynamics.engine import build
    monkeypatch.setattr(frames, "SPECTRUM_N_MAX", 100)
    sim = build({"kernel.kind": "rbf", "kernel.width": 0.5, "particles": 300, "dtype": "float64"})
    s = sim.init()
    levels, mult = frames.spectrum(sim, s)
    full = torch.linalg.eigvalsh(s.kernel["theta"][0]).flip(0)[:kernels.SPECTRUM_TOP].numpy()
    np.testing.assert_allclose(levels, full, rtol=1e-8, atol=1e-8 * full[0])
    assert list(mult) == [1] * kernels.SPECTRUM_TOP
    v = views.Views()
    v.set_spectrum(levels, mult, n=300)
    assert v.spectrum_fig.title.text == f"Kernel spectrum Θ: top {kernels.SPECTRUM_TOP} of 300 eigenvalues"
    assert not v.relative.visible and v.collective.visible
    monkeypatch.setattr(frames, "SPECTRUM_TOP_N_MAX", 200)
    levels, _ = frames.spectrum(sim, s)
    v.set_spectrum(levels, np.zeros(0, dtype=np.int64), n=300)
    assert len(levels) == 0 and "not computed live" in v.spectrum_fig.title.text


# ---------------------------------------------------------------- safety: builds, limits, memory, serve
def test_building_never_blocks_the_caller_the_event_loop(monkeypatch):
    """A structural change returns at once; the build runs in the session's worker thread."""
    import threading
    from app.lab import state
    gate, built_in = threading.Event(), []
    real = state.build

    def slow_build(cfg, **kw):
        built_in.append(threading.current_thread().name)
        gate.wait(30)
        return real(cfg, **kw)

    lab = Lab(particles=16).start()
    try:
        wait_until(lambda: lab.worker.steps_done > 3)
        monkeypatch.setattr(state, "build", slow_build)
        setter = threading.Thread(target=setattr, args=(lab, "disc_width", 64), daemon=True)
        setter.start()
        setter.join(10)
        assert not setter.is_alive(), "setting a structural knob waited for the build"
        assert lab.building
        wait_until(lambda: built_in)
        assert built_in[0].startswith("effgan-worker")
        gate.set()
        wait_until(lambda: lab.worker.cfg["disc.width"] == 64)
        lab.take_frame()
        assert not lab.building
    finally:
        gate.set()
        lab.close()


@pytest.mark.parametrize("fail", [MemoryError("cannot allocate"), RuntimeError("engine broke")])
def test_any_failure_while_building_reverts_with_a_message_and_keeps_the_run(monkeypatch, fail):
    from app.lab import state
    lab = Lab(particles=16).start()
    try:
        wait_until(lambda: lab.worker.steps_done > 3)

        def broken(cfg, **kw):
            raise fail
        monkeypatch.setattr(state, "build", broken)
        lab.disc_width = 64
        wait_until(lambda: (lab.take_frame(), lab.message_kind == "danger")[1])
        assert type(fail).__name__ in lab.message and "kept the running simulation" in lab.message
        assert lab.disc_width == 128 and lab.worker.cfg["disc.width"] == 128 and lab.worker.error == ""
        n = lab.worker.steps_done
        wait_until(lambda: lab.worker.steps_done > n + 5)            # the old run goes on
    finally:
        lab.close()


def test_init_pair_without_the_sphere_pair_is_a_message_and_keeps_the_run(lab):
    wait_until(lambda: lab.worker.steps_done > 3)
    lab.init_kind = "pair"
    assert lab.init_kind == "gaussian" and lab.message_kind == "danger" and "sphere_pair" in lab.message
    n = lab.worker.steps_done
    wait_until(lambda: lab.worker.steps_done > n + 5)
    assert lab.worker.error == "" and lab.worker.running


@pytest.mark.parametrize("query, says", [
    ({"particles": "1000000"}, "particles: 1000000 is over the lab's limit; allowed 1 to 20000"),
    ({"target.modes": "10000"}, "target.modes: 10000 is over the lab's limit; allowed 1 to 500"),
    ({"seed": "9" * 400}, "seed:"),
    ({"kernel.ratio": b"\xff\xfe"}, "kernel.ratio:"),
])
def test_a_link_over_the_lab_limits_is_a_message_and_the_preset_runs(query, says):
    lab = Lab()
    errors = lab.apply_query(query)
    assert len(errors) == 1 and errors[0].startswith(says), errors
    assert lab.message.startswith("ignored in the link") and "\n" not in lab.message
    assert lab.particles == 64 and lab.target_modes == 8 and lab.seed == 1


def test_the_session_cost_cap_refuses_a_combination_in_the_lab_bounds():
    """Each knob within its lab bound, together over the session's memory: refused before allocating."""
    lab = Lab(particles=16).start()
    try:
        wait_until(lambda: lab.worker.steps_done > 3)
        lab.param.update(kernel_kind="rbf", particles=20_000)
        assert "MiB" in lab.message and "kept the running simulation" in lab.message
        assert lab.particles == 16 and lab.worker.cfg["particles"] == 16
    finally:
        lab.close()


APPLIES_FOR = {"target.samples": {"target.kind": "digits"}, "target.sphere_dim": {"target.kind": "sphere_pair"},
               "critic.restarts": {"disc.kind": "f1_neuron"}, "kernel.net_width": {"kernel.kind": "network"}}


@pytest.mark.parametrize("name", [k.name for k in KNOBS.values() if k.lab is not None])
def test_each_lab_bound_fits_one_session_and_is_stricter_than_the_cli(name):
    """The lab bounds are sized by memory: one knob at its lab bound, the rest at the defaults,
    stays under the session's cap (combinations are the cap's to refuse)."""
    from app.lab.state import check_cost
    from dynamics.knobs import resolve
    k = KNOBS[name]
    assert k.bounds[0] <= k.lab[0] and k.lab[1] < k.bounds[1]
    check_cost(resolve({**APPLIES_FOR.get(name, {}), name: k.lab[1]}))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (__import__("os").sysconf("SC_PAGE_SIZE") / 2**20)


@pytest.mark.slow
def test_a_session_at_the_lab_limits_gives_its_memory_back():
    """Sessions at the largest size the lab allows, opened and closed one after the other: the
    RSS comes back near where it was (the old lab let ?particles=1000000 take 3 GB and kept it)."""
    import gc

    def session():
        lab = Lab()
        lab.apply_query({"particles": "20000", "target.modes": "500"})
        lab.start()
        wait_until(lambda: lab.worker.steps_done > 5, 60)
        assert lab.worker.cfg["particles"] == 20_000 and lab.message == ""
        peak = _rss_mb()
        w = lab.worker
        lab.close()
        wait_until(lambda: not w.alive, 30)
        return peak

    session()                                   # the first one warms torch's caches and code
    gc.collect()
    base = _rss_mb()
    peaks = [session() for _ in range(3)]
    gc.collect()
    assert max(peaks) - base < (256 + 128)      # the session's cap, with room for the allocator
    assert _rss_mb() - base < 64, (base, peaks, _rss_mb())


def test_serve_names_the_port_or_the_address_it_cannot_use():
    import argparse
    import socket
    from app.lab import server
    ap = argparse.ArgumentParser()
    server.add_serve_arguments(ap)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^--port: {port} is busy"):
            server.main_serve(ap.parse_args(["--port", str(port)]))
    for address in ("no.such.host.invalid", "10.255.255.1"):
        with pytest.raises(ConfigError, match=r"^--address: ") as e:
            server.main_serve(ap.parse_args(["--address", address, "--port", "0"]))
        assert "\n" not in str(e.value)


def test_serve_leaves_torch_threads_to_the_library_policy_unless_told():
    """`effgan serve` without --threads sets no thread count of its own: each build applies
    `dynamics.threads` (one thread for a small simulation, every core for a large one);
    --threads T still forces T."""
    import argparse
    import socket
    from app.lab import server
    ap = argparse.ArgumentParser()
    server.add_serve_arguments(ap)
    before = torch.get_num_threads()
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = str(busy.getsockname()[1])
            for given, expected in ((None, 2), ("1", 1)):
                torch.set_num_threads(2)
                with pytest.raises(ConfigError, match="is busy"):       # serve got as far as binding
                    server.main_serve(ap.parse_args(["--port", port] + (["--threads", given] if given else [])))
                assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_the_log_drops_closed_tab_tracebacks_and_keeps_real_errors():
    import logging
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError
    from app.lab import server
    server.quiet_closed_tabs()
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    lg = logging.getLogger("tornado.application")
    lg.addHandler(handler)
    try:
        for exc in (WebSocketClosedError(), StreamClosedError(), ValueError("a real bug")):
            try:
                raise exc
            except Exception:
                lg.exception("Uncaught exception")
    finally:
        lg.removeHandler(handler)
    assert [type(r.exc_info[1]).__name__ for r in seen] == ["ValueError"]


def test_an_empty_upload_is_a_message(lab):
    assert lab.upload("empty.csv", b"") is False
    assert lab.message == ("target.file: empty.csv is empty; allowed a CSV or .npy file, one point per row "
                           "(kept the running simulation)")


# ---------------------------------------------------------------- changes that cannot act visibly
def _stepped_to(t, **knobs):
    """A paused lab that has taken exactly t steps (deterministic: no knob moved meanwhile)."""
    lab = Lab(running=False, **knobs).start()
    wait_until(lambda: lab.worker.cfg is not None)
    lab.worker.step(t)
    wait_until(lambda: lab.worker._state is not None and lab.worker._state.t == t, timeout=120)
    return lab


@pytest.mark.parametrize("t, settled", [(300, False), (3000, True)])
def test_a_sharing_change_on_a_settled_cloud_says_so_and_offers_a_restart(t, settled):
    """kernel.width 0.5 -> 3.7 on a covering cloud whose critic is balanced moves nothing (see
    worker.SETTLED): the lab says so; the same change on a cloud still spreading says nothing."""
    lab = _stepped_to(t, kernel_kind="rbf")
    try:
        lab.kernel_width = 3.7
        wait_until(lambda: lab.worker.hyper.get("kernel.width") == pytest.approx(3.7))
        frame_of(lab)
        assert lab.still == settled
        if not settled:
            assert lab.message.startswith("applied live") and lab.worker.settled() > 0.06
            return
        assert lab.message.startswith("no visible effect now: the cloud has settled") and "\n" not in lab.message
        lab.lr_disc = 0.02                                        # a critic change is not judged so
        assert not lab.still
        lab.kernel_width = 3.0
        wait_until(lambda: (lab.take_frame(), lab.still)[1])
        lab.reset()                                               # the button: restart from here with it
        assert not lab.still
        f = frame_of(lab, lambda f: f.t == 0)
        assert f.hyper["kernel.width"] == pytest.approx(3.0)
    finally:
        lab.close()


def test_the_preset_text_says_when_the_knobs_no_longer_hold_the_preset():
    """The sidebar's preset description describes the preset's own settings: once a knob differs
    (a live change, a link) it says which, instead of describing a run no longer on screen."""
    from app.lab import page
    lab = Lab()
    assert page.preset_note(lab) == presets.describe(lab.preset)
    setattr(lab, ATTR["kernel.ratio"], 0.9)
    note = page.preset_note(lab)
    assert note.startswith(f"Started from the preset {lab.preset}, now changed: kernel.ratio = 0.9.")
    setattr(lab, ATTR["kernel.ratio"], resolve(presets.load(lab.preset))["kernel.ratio"])
    assert page.preset_note(lab) == presets.describe(lab.preset)


def test_at_top_speed_the_worker_steps_through_the_whole_frame_interval():
    """At the slider's top the speed is the engine's: a frame carries every step one frame
    interval held (more than TOP_SPEED of a tiny simulation in 2 s), with no wait between
    batches; below the top a frame carries `speed` steps."""
    from dynamics.engine import build
    from app.lab import worker
    sim = build(resolve({"particles": 4, "disc.width": 4}))
    for speed, more in ((worker.TOP_SPEED, True), (7, False)):
        w = Worker(fps=0.5, speed=speed).start()
        try:
            w.load(sim)
            frames_seen = []
            wait_until(lambda: frames_seen.append(w.take()) or frames_seen[-1] is not None, 60, 0.01)
            first = frames_seen[-1]                                # the first frame after the load
            assert (first.t > worker.TOP_SPEED) is more, (speed, first.t)
            if not more:
                assert first.t == speed
        finally:
            w.stop()


def test_a_dropped_frames_slow_parts_carry_within_a_run_never_into_the_next():
    """A frame the page never took hands its field, spectrum and meters to the next frame of
    the same run; after a restart (new epoch) they stay behind: an old run's meter row, at its
    later step, drew a line back across the new run's series in the view export."""
    from dynamics.engine import build
    from dynamics.knobs import resolve

    from app.lab.worker import keep_slow_parts
    sim = build(resolve(presets.load("ring8"), {"particles": 12}))
    s = sim.step(sim.init())
    scene = frames.make_scene(sim, 1)
    grid = frames.field_points(scene, sim.device, sim.dtype)
    old = frames.make_frame(sim, s, scene, 1, field_grid=grid, with_spectrum=True, meters={"t": 2300, "kl": 9.0})
    bare = frames.make_frame(sim, sim.step(s), scene, 1)
    kept = keep_slow_parts(old, bare)
    assert kept.meters == {"t": 2300, "kl": 9.0} and kept.field is old.field and kept.spectrum is old.spectrum
    fresh = frames.make_frame(sim, sim.init(), scene, 2)
    after = keep_slow_parts(old, fresh)
    assert after.meters is None and after.field is None and after.spectrum is None
