"""The lab's phase map without a browser: planning (cells -> members, chunks), the runner
(bitwise equal to a direct run, cache, cancel, turns), bad requests, exports, and the card
(`app.lab.mapcard`): its messages, downloads, marks and the jump."""
from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("panel")

from app.lab import phasemap as pm  # noqa: E402
from app.lab.mapcard import MapView  # noqa: E402
from app.lab.state import Lab  # noqa: E402
from dynamics import presets  # noqa: E402
from dynamics.knobs import ConfigError, resolve  # noqa: E402
from dynamics.run import simulate  # noqa: E402
from dynamics.sweep.spec import load_spec  # noqa: E402

PRESET = presets.DEFAULT


def live(**over):
    return resolve(presets.load(PRESET), {"particles": 16, **over})


def request(x=pm.Axis("kernel.ratio", 0.0, 0.9, 4), y=pm.Axis("lr.disc", 0.005, 0.05, 3), seeds=2, steps=40):
    return pm.Request(x, y, seeds, steps, compile=False)


def cell_values(mp):
    """(x value, y value, seed) of every member of every chunk, with its storage index."""
    for chunk in mp.plan.chunks:
        ranges = [range(a, b) for a, b in chunk.region]
        for member, idx in zip(chunk.members, itertools.product(*ranges)):
            full = {**chunk.cfg, **member}
            yield tuple(full[d] for d in mp.plan.dims), tuple(mp.plan.coords[d][i] for d, i in zip(mp.plan.dims, idx))


def test_cells_map_to_members_and_chunks_cover_every_cell_once():
    mp = pm.plan_map(live(), PRESET, request(seeds=3))
    assert mp.plan.dims == ("kernel.ratio", "lr.disc", "seed") and mp.plan.shape == (4, 3, 3)
    assert len(mp.plan.chunks) > 1 and mp.plan.groups == 1        # hyper axes: members of one build
    seen = collections.Counter()
    for member, at in cell_values(mp):
        assert member == at                                       # the member runs the cell it is stored at
        seen[at] += 1
    grid = set(itertools.product(*(mp.plan.coords[d] for d in mp.plan.dims)))
    assert set(seen) == grid and set(seen.values()) == {1}
    assert mp.plan.coords["seed"] == (1, 2, 3)                    # the live seed, then the next ones


def test_a_categorical_axis_is_one_batch_per_value():
    mp = pm.plan_map(live(), PRESET, request(y=pm.Axis("disc.activation", values=("relu", "tanh"))))
    assert mp.plan.dims[0] == "disc.activation" and mp.plan.groups == 2
    assert {c.cfg["disc.activation"] for c in mp.plan.chunks} == {"relu", "tanh"}
    assert all(set(m) == {"kernel.ratio", "seed"} for c in mp.plan.chunks for m in c.members)


def test_results_equal_a_direct_run_of_the_cell_bitwise():
    cfg = live(**{"lr.gen": 0.3})
    mp = pm.plan_map(cfg, PRESET, request(y=pm.Axis("disc.activation", values=("relu", "sigmoid"))))
    run = pm.MapRun(mp).start()
    assert run.wait(120) and run.status == "done", run.error
    assert bool(run.ds["done"].all())
    for act, r, seed in (("relu", 0.0, 1), ("sigmoid", 0.6, 2), ("sigmoid", 0.9, 1)):
        alone = simulate(resolve(cfg, {"disc.activation": act, "kernel.ratio": r, "seed": seed, "steps": 40,
                                       "record.every": mp.spec.config["record.every"], "record.snapshots": 0}))
        at = run.ds.sel({"disc.activation": act, "kernel.ratio": r, "seed": seed})
        for m in pm.STORED:
            assert np.array_equal(at[f"final_{m}"].values, alone.final[m][0], equal_nan=True), m


def test_a_finished_map_is_cached_and_a_cancelled_one_is_not():
    mp = pm.plan_map(live(), PRESET, request(steps=20))
    first = pm.MapRun(mp).start()
    assert first.wait(120) and first.status == "done"
    again = pm.MapRun(mp)
    assert again.cached and again.status == "done" and again.ds is first.ds and again.thread is None
    big = pm.plan_map(live(particles=64), PRESET, request(x=pm.Axis("kernel.ratio", 0.0, 1.0, 8),
                                                          y=pm.Axis("lr.disc", 1e-3, 1e-1, 8), steps=20_000))
    run = pm.MapRun(big).start()
    run.cancel()
    assert run.wait(60) and run.status == "cancelled"
    assert run.done_members < big.members and not pm.MapRun(big).cached


@pytest.mark.parametrize("req, field, allowed", [
    (request(x=pm.Axis("kernel.ratio", 0.0, 1.5, 4)), "x.stop: kernel.ratio: 1.5", "numbers in [0, 1]"),
    (request(y=pm.Axis("lr.disc", 0.0, 0.1, 4)), "y.start: 0 on the log axis of lr.disc", "numbers > 0"),
    (request(y=pm.Axis("lr.disc", 0.01, 0.1, 1)), "y.points: 1", "integers in [2, 24]"),
    (request(x=pm.Axis("kernel.ratio", 0.5, 0.5, 4)), "x: start = stop", "two different ends"),
    (request(x=pm.Axis("particles", 1, 10, 4)), "x: 'particles' cannot be mapped", "kernel.g1"),
    (request(y=pm.Axis("kernel.ratio", 0.0, 1.0, 3)), "y.key: kernel.ratio is already the x axis", "another knob"),
    (request(y=pm.Axis("disc.activation", values=("relu", "cosh"))), "disc.activation: cosh", "one of"),
    (request(seeds=0), "seeds: 0", "integers in [1, 8]"),
    (request(steps=10**6), "steps: 1000000", "integers in [10, 20000]"),
    (request(x=pm.Axis("kernel.ratio", 0, 1, 24), y=pm.Axis("lr.disc", 1e-3, 1e-1, 24), seeds=8, steps=20_000),
     "map size: 576 cells x 8 seeds", "at most 3e+08"),
])
def test_bad_requests_are_one_line_naming_the_field_and_the_range(req, field, allowed):
    with pytest.raises(ConfigError) as e:
        pm.plan_map(live(particles=64), PRESET, req)
    text = str(e.value)
    assert field in text and allowed in text and "\n" not in text


def test_the_memory_cap_names_the_knobs():
    with pytest.raises(ConfigError, match=r"^map memory: .*particles = 16.*allowed smaller"):
        pm.plan_map(live(), PRESET, request(), limit_bytes=1000)


def test_a_bad_range_on_the_card_says_so_and_leaves_the_lab_alone():
    lab = Lab(particles=16)
    view = MapView(lab)
    view.sides["x"]["stop"].value = 2.0
    before = lab.param.values()
    assert view.start() is None and view.run is None
    assert view.alert.visible and "x.stop: kernel.ratio: 2.0 is out of range" in view.alert.object
    assert lab.param.values() == before


def test_the_spec_runs_as_effgan_sweep_reads_it(tmp_path):
    cfg = live(**{"reg.strength": 0.5, "disc.width": 64})
    mp = pm.plan_map(cfg, PRESET, request())
    path = tmp_path / "phasemap.toml"
    path.write_text(mp.toml)
    spec = load_spec(path)
    assert spec.fingerprint() == mp.key
    assert [(a.key, a.scale) for a in spec.axes] == [("kernel.ratio", "lin"), ("lr.disc", "log")]
    for k, v in cfg.items():
        if k not in ("kernel.ratio", "lr.disc", "steps", "record.every", "record.snapshots", "compile"):
            assert spec.config[k] == v, k


def test_exports_open_as_sweep_results_and_figures(tmp_path):
    from dynamics.sweep.store import open_results
    mp = pm.plan_map(live(), PRESET, request(steps=20))
    run = pm.MapRun(mp).start()
    assert run.wait(120) and run.status == "done"
    (tmp_path / "map.nc").write_bytes(pm.netcdf_bytes(run.ds))
    ds = open_results(tmp_path / "map.nc")
    xr.testing.assert_equal(ds["final_coverage"], run.ds["final_coverage"])
    assert ds.attrs["fingerprint"] == mp.key
    heads = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}
    for fmt, head in heads.items():
        assert pm.figure_bytes(run.ds, mp.request, "mode_entropy", fmt).startswith(head)
    svg = pm.figure_bytes(run.ds, mp.request, "coverage", "svg").decode()
    assert "2 seeds (1, 2)" in svg and "particles = 16" in svg                 # the knob values in the figure


def test_a_cell_moves_the_live_knobs_and_the_link():
    lab = Lab(particles=16)
    view = MapView(lab)
    for side, (a, b, n) in (("x", (0.0, 0.9, 4)), ("y", (0.005, 0.05, 3))):
        view.sides[side]["start"].value, view.sides[side]["stop"].value = a, b
        view.sides[side]["points"].value = n
    view.seeds.value, view.steps.value, view.fused.value = 1, 20, False
    run = view.start()
    assert run.wait(120) and run.status == "done"
    view.jump(2, 1)
    assert lab.kernel_ratio == pytest.approx(0.6) and lab.lr_disc == pytest.approx(run.ds["lr.disc"].values[1])
    q = lab.query()
    assert float(q["kernel.ratio"]) == pytest.approx(0.6) and "phase map: moved to" in lab.message
    assert view.here.data["i"] == [pytest.approx(2.0)] and view.here.data["j"] == [pytest.approx(1.0)]


def test_the_spec_downloads_before_a_map_and_the_results_say_they_need_one():
    from dynamics.sweep.spec import parse_spec
    lab = Lab(particles=16)
    view = MapView(lab)
    spec, nc = view.downloads[0], view.downloads[1]
    text = spec.callback().getvalue().decode()
    assert [a.key for a in parse_spec(text).axes] == ["kernel.ratio", "lr.disc"]
    assert nc.callback().getvalue() == b"" and "nothing mapped yet" in view.alert.object


def test_cells_where_a_seed_diverged_are_crossed():
    view = MapView(Lab(particles=16))
    view.sides["y"]["key"].value = "lr.gen"
    view.sides["y"]["start"].value, view.sides["y"]["stop"].value = 1.0, 1000.0
    view.sides["x"]["points"].value = view.sides["y"]["points"].value = 3
    view.steps.value, view.fused.value, view.seeds.value = 200, False, 1
    run = view.start()
    assert run.wait(120) and run.status == "done"
    view._draw(force=True)
    diverged = run.ds["final_diverged"].any("seed").transpose("lr.gen", "kernel.ratio").values
    assert diverged.any() and not diverged.all()
    crossed = set(zip(view.crossed.data["i"].tolist(), view.crossed.data["j"].tolist()))
    assert crossed == {(i, j) for j, i in zip(*np.nonzero(diverged))}


def test_maps_take_turns_and_a_queued_one_can_be_cancelled():
    first = pm.MapRun(pm.plan_map(live(), PRESET, request(steps=20_000))).start()
    second = pm.MapRun(pm.plan_map(live(), PRESET, request(steps=19_999))).start()
    assert wait_for(lambda: second.queued) and first.status == "running"
    second.cancel()
    assert second.wait(30) and second.status == "cancelled" and second.done_members == 0
    first.cancel()
    assert first.wait(60) and first.status == "cancelled"


def test_a_categorical_axis_on_the_card_lists_its_choices_and_marks_the_live_one():
    lab = Lab(particles=16)
    view = MapView(lab)
    view.sides["y"]["key"].value = "disc.activation"
    w = view.sides["y"]
    assert w["values"].visible and not w["start"].visible
    view.sides["x"]["points"].value = 2
    w["values"].value = "tanh, relu"
    view.steps.value, view.fused.value, view.seeds.value = 20, False, 1
    run = view.start()
    assert run.wait(120) and run.status == "done"
    assert list(run.ds["disc.activation"].values) == ["tanh", "relu"]
    assert view.here.data["j"] == [1.0]                    # the live critic is relu: the second row


def wait_for(fn, timeout=30.0):
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.02)
    return False


def test_a_fused_map_builds_one_package_for_its_batch_and_a_plain_sweep_batch_does_not(tmp_path, monkeypatch):
    """The map's fused step is compile = auto allowed to build for a batch (the same setting is
    mapped again with other ranges: its live knobs are the package's inputs); a sweep's batch,
    the same chunk run by simulate alone, never builds. The spy refuses to build, so the map
    goes on eagerly: same cells."""
    import dataclasses

    from dynamics import aot
    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))
    built = []

    def spy(fn, args, path, what="step"):
        built.append((what, args[0].shape[0]))
        raise RuntimeError("no compiler in this test")
    monkeypatch.setattr(aot, "build_package", spy)
    monkeypatch.setattr(aot, "AUTO_MIN_S", 0.0)
    req = dataclasses.replace(request(seeds=1, steps=10), compile=True)
    mp = pm.plan_map(live(), PRESET, req)
    assert all(c.cfg["compile"] == "auto" for c in mp.plan.chunks)
    chunk = mp.plan.chunks[0]
    simulate(chunk.cfg, list(chunk.members))
    assert built == []                                           # a sweep's batch: eager, nothing built
    with pytest.warns(RuntimeWarning, match="compile: auto could not compile"):
        fused = pm.run_chunk(chunk, full=len(chunk.members))
    assert sorted(built) == [("recording", len(chunk.members)), ("step", len(chunk.members))]
    plain = pm.run_chunk(dataclasses.replace(chunk, cfg={**chunk.cfg, "compile": False}))
    for k in plain:
        np.testing.assert_array_equal(fused[k], plain[k])
