"""Sweeps: spec checking, grid/chunk layout, batched == single runs, kill + resume, Dask."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from app.cli import main
from dynamics.knobs import ConfigError, resolve
from dynamics.run import simulate
from dynamics.sweep import load_spec, make_plan, open_results, parse_spec
from dynamics.sweep.store import done_chunks

ROOT = Path(__file__).resolve().parent.parent

# 2 lr × 3 r × 2 critics × 2 seeds; chunk 4 -> 8 chunks of (1, 1, 2, 2) / (1, 1, 1, 2) members
TINY = """
base = "ring8"
seeds = [1, 2]
steps = {steps}
record_every = 20
chunk = 4
metrics = ["modes_covered", "spread", "convergence_step"]
series = ["modes_covered"]
[set]
particles = 8
"disc.width" = 8
[axes]
"lr.disc" = [0.01, 0.1]
"kernel.ratio" = {{lin = [0.0, 0.9, 3]}}
"disc.activation" = ["relu", "tanh"]
"""


def write_spec(path: Path, steps: int = 60) -> Path:
    path.write_text(TINY.format(steps=steps))
    return path


def sweep(*args) -> int:
    return main(["sweep", *map(str, args), "--no-progress"])


def data(ds: xr.Dataset) -> dict:
    return {v: ds[v].values for v in ds.data_vars}


def assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        assert a[v].dims == b[v].dims
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)     # bit for bit (NaN == NaN)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One in-process run of the tiny spec: (spec path, output folder)."""
    root = tmp_path_factory.mktemp("tiny")
    spec = write_spec(root / "tiny.toml")
    assert sweep(spec, "--out", root / "out", "--workers", 1) == 0
    return spec, root / "out"


# ---------------------------------------------------------------- spec and plan
def test_ranges_are_expanded_and_checked_against_the_knobs():
    s = parse_spec("""
        seeds = 3
        [axes]
        "lr.disc" = {log = [1e-3, 1e-1, 3]}
        kernel.ratio = {lin = [0.0, 0.9, 4]}
        "kernel.latent_dim" = {log = [4, 1024, 5]}
        "disc.activation" = {values = ["relu", "sigmoid"]}
    """)
    axes = {a.key: a for a in s.axes}
    assert axes["lr.disc"].values == (0.001, 0.01, 0.1) and axes["lr.disc"].scale == "log"
    assert axes["kernel.ratio"].values == (0.0, 0.3, 0.6, 0.9)            # dotted TOML keys nest; joined back
    assert axes["kernel.latent_dim"].values == (4, 16, 64, 256, 1024)      # integer knob: integers
    assert all(isinstance(v, int) for v in axes["kernel.latent_dim"].values)
    assert s.seeds == (1, 2, 3)
    assert "diverged" in s.metrics and "diverged_step" in s.metrics        # always recorded


def test_plan_groups_struct_keys_and_covers_every_point_once():
    s = parse_spec(TINY.format(steps=10))
    plan = make_plan(s, "cpu")
    # struct axes lead the storage dims; members differ only in seed and hyper knobs
    assert plan.dims == ("disc.activation", "lr.disc", "kernel.ratio", "seed")
    assert plan.shape == (2, 2, 3, 2) and plan.chunk_shape == (1, 1, 2, 2) and len(plan.chunks) == 8
    seen = np.zeros(plan.shape, int)
    for c in plan.chunks:
        assert c.size <= 4 and all(set(m) <= {"seed", "lr.disc", "kernel.ratio"} for m in c.members)
        act = plan.coords["disc.activation"][c.region[0][0]]
        assert c.cfg["disc.activation"] == act                              # one build per chunk
        seen[tuple(slice(a, b) for a, b in c.region)] += 1
        # members are the region's points in C order
        lr0, r0 = c.region[1][0], c.region[2][0]
        assert c.members[0] == {"lr.disc": plan.coords["lr.disc"][lr0], "kernel.ratio": plan.coords["kernel.ratio"][r0],
                                "seed": 1}
    assert (seen == 1).all()
    # the plan does not depend on the device's default once the spec fixes the chunk size
    assert make_plan(s, "cuda").chunk_shape == plan.chunk_shape


BAD = {
    "unknown-axis": ('[axes]\n"kernel.ratioo" = [0.1]\n', "axes.kernel.ratioo: unknown key (did you mean kernel.ratio?); allowed keys:"),
    "empty-list": ('[axes]\n"kernel.ratio" = []\n', "axes.kernel.ratio: empty range; allowed"),
    "empty-lin": ('[axes]\n"kernel.ratio" = {lin = [0.0, 1.0, 0]}\n', "axes.kernel.ratio: empty range"),
    "log-negative": ('[axes]\n"lr.disc" = {log = [-1.0, 1.0, 3]}\n', "axes.lr.disc: log range [-1.0, 1.0] is not positive"),
    "out-of-bounds": ('[axes]\n"kernel.ratio" = [0.5, 1.5]\n', "axes.kernel.ratio: 1.5 is out of range; allowed numbers in [0, 1]"),
    "bad-choice": ('[axes]\n"disc.activation" = ["relu", "swish"]\n', "axes.disc.activation: swish is not allowed; allowed one of"),
    "seed-axis": ('[axes]\nseed = [1, 2]\n', "axes.seed: cannot be swept (use the seeds field)"),
    "unknown-metric": ('metrics = ["modes"]\n[axes]\n"kernel.ratio" = [0.1]\n', "metrics: unknown metric 'modes'; allowed"),
    "unknown-field": ('sweeps = 3\n', "sweeps: unknown spec field; allowed"),
    "malformed": ('[axes\n"kernel.ratio" = [0.1]\n', "SPEC: not valid TOML"),
    "set-and-axis": ('[set]\n"kernel.ratio" = 0.2\n[axes]\n"kernel.ratio" = [0.1]\n', "axes.kernel.ratio: also fixed in [set]"),
    "no-quick": ('[axes]\n"kernel.ratio" = [0.1]\n', "--quick: the spec has no [quick] table"),
    "bad-base": ('base = "ringg8"\n[axes]\n"kernel.ratio" = [0.1]\n', "base: unknown preset 'ringg8'; allowed"),
    "escaping-name": ('name = "../../evil"\n[axes]\n"kernel.ratio" = [0.1]\n', "name: '../../evil' is not allowed"),
    # sizes are refused before anything is allocated, with the count and the limit
    "huge-range": ('[axes]\n"kernel.ratio" = {lin = [0.0, 1.0, 1000000000]}\n',
                   "axes.kernel.ratio: lin with num = 1000000000 is too many points; allowed num <= 250000"),
    "huge-seeds": ('seeds = 1000000000\n[axes]\n"kernel.ratio" = [0.1]\n', "seeds: 1000000000 seeds is too many"),
    "huge-grid": ('seeds = 1000\n[axes]\n"kernel.ratio" = {lin = [0.0, 1.0, 1000]}\n',
                  "axes: 1000000 grid points (1000 kernel.ratio x 1000 seeds) is too many; allowed up to 250000"),
    # a figure is written into --out, never beside or above it
    "figure-escapes": ('[axes]\n"kernel.ratio" = [0.1]\n[[figure]]\nfile = "../../x.png"\n',
                       "figure[0].file: '../../x.png' is not a plain file name"),
    "figure-absolute": ('[axes]\n"kernel.ratio" = [0.1]\n[[figure]]\nfile = "/x.png"\n',
                        "figure[0].file: '/x.png' is not a plain file name"),
    # a broken [quick] table is refused on every run, not only under --quick
    "bad-quick-table": ('[axes]\n"kernel.ratio" = [0.1]\n[quick]\n[quick.axes]\n"kernel.ratio" = [2.0]\n',
                        "quick.axes.kernel.ratio: 2.0 is out of range"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_is_one_line_and_exit_code_2(case, tmp_path, capsys):
    text, message = BAD[case]
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    extra = ["--quick"] if case == "no-quick" else []
    assert sweep(spec, "--out", tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("effgan sweep: error: ")
    assert message in err
    assert not (tmp_path / "out" / "results.zarr").exists()                   # nothing ran


def test_bad_output_and_options_exit_2(tmp_path, capsys):
    spec = write_spec(tmp_path / "tiny.toml")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [(["--out", blocker / "sub"], "--out: cannot write"),
             (["--out", tmp_path / "o", "--workers", 0], "--workers: 0 is not allowed"),
             (["--out", tmp_path / "o", "--scheduler", "localhost:8786"], "--scheduler: 'localhost:8786' is not an address"),
             (["--out", tmp_path / "o", "--device", "gpu"], "device: gpu is not allowed"),
             ([], None)]
    for args, message in cases[:-1]:
        assert sweep(spec, *args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert sweep(tmp_path / "missing.toml") == 2
    assert "SPEC: " in capsys.readouterr().err


def test_existing_results_need_resume_and_the_same_spec(tiny, tmp_path, capsys):
    spec, out = tiny
    assert sweep(spec, "--out", out) == 2
    assert "already holds sweep results; allowed --resume" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text(TINY.format(steps=61))
    assert sweep(other, "--out", out, "--resume") == 2
    err = capsys.readouterr().err
    assert "--resume: " in err and "was made by another spec" in err
    # resuming a complete sweep computes nothing and changes nothing
    before = open_results(out)
    assert sweep(spec, "--out", out, "--resume") == 0
    assert "computed 0 chunks" in capsys.readouterr().out
    assert_same(before, open_results(out))


# ---------------------------------------------------------------- results
def test_batched_sweep_equals_single_runs(tiny):
    spec_path, out = tiny
    spec = load_spec(spec_path)
    ds = open_results(out)
    assert ds["final_modes_covered"].dims == ("lr.disc", "kernel.ratio", "disc.activation", "seed")
    assert ds["modes_covered"].dims[-1] == "step" and ds.sizes["step"] == 4
    assert bool(ds["done"].all())
    for point in [dict(lr=0.1, r=0.9, act="tanh", seed=2), dict(lr=0.01, r=0.45, act="relu", seed=1),
                  dict(lr=0.01, r=0.9, act="relu", seed=2)]:                 # the last sits in a 2-member edge chunk
        cfg = resolve(spec.config, {"lr.disc": point["lr"], "kernel.ratio": point["r"],
                                    "disc.activation": point["act"], "seed": point["seed"], "device": "cpu"})
        h = simulate(cfg)
        at = ds.sel({"lr.disc": point["lr"], "kernel.ratio": point["r"], "disc.activation": point["act"],
                     "seed": point["seed"]})
        for m in ("modes_covered", "spread", "convergence_step", "diverged", "diverged_step"):
            assert at[f"final_{m}"].values == h.final[m][0], (point, m)
        np.testing.assert_array_equal(at["modes_covered"].values, h.series["modes_covered"][0])


def test_netcdf_export_has_the_data_config_versions_and_device(tiny):
    spec_path, out = tiny
    z, nc = open_results(out / "results.zarr"), open_results(out / "results.nc")
    assert_same(z, nc)
    cfg = json.loads(nc.attrs["config"])
    assert cfg["particles"] == 8 and cfg["steps"] == 60 and cfg["record.snapshots"] == 0
    assert {"torch", "xarray", "zarr", "dask", "numpy"} <= set(json.loads(nc.attrs["versions"]))
    assert nc.attrs["device"] == "cpu" and nc.attrs["devices"] == "cpu"
    assert nc.attrs["spec"] == spec_path.read_text()
    assert nc["lr.disc"].attrs["doc"].startswith("η_D")                      # knob docs travel with the axes
    assert (out / "chunks.log").read_text().count(" done: ") == 8


def test_diverged_points_are_recorded_not_fatal(tmp_path, capsys):
    spec = tmp_path / "div.toml"
    spec.write_text("""
        base = "damping"
        steps = 80
        record_every = 20
        metrics = ["mean_error"]
        [set]
        "disc.kind" = "linear"
        "reg.strength" = 5.0
        [axes]
        "lr.disc" = [0.01, 1.0]          # lr.disc * γ = 5 > 2: the critic's update explodes
    """)
    assert sweep(spec, "--out", tmp_path / "o", "--workers", 1) == 0
    assert "1 diverged" in capsys.readouterr().out
    ds = open_results(tmp_path / "o")
    div = ds["final_diverged"].sel(seed=1)
    assert div.values.tolist() == [False, True]
    step = ds["final_diverged_step"].sel(seed=1).values
    assert step[0] == -1 and 1 <= step[1] <= 80


# ---------------------------------------------------------------- kill, resume, dask
@pytest.mark.slow
def test_killed_sweep_resumes_with_only_missing_chunks_bit_identical(tiny, tmp_path):
    spec = write_spec(tmp_path / "slow.toml", steps=400)                      # ~0.5 s per chunk
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "sweep", str(spec), "--out", str(out),
                             "--workers", "1", "--no-progress"], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "chunks.log"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and " done: " in log.read_text():
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)                                   # our own child's group only
        proc.wait()
    plan = make_plan(load_spec(spec), "cpu")
    finished = done_chunks(out / "results.zarr", plan)
    assert 1 <= len(finished) < len(plan.chunks), "kill came too late to test resume"
    kept = open_results(out / "results.zarr", mask=False)

    assert sweep(spec, "--out", out, "--resume", "--workers", 1) == 0
    lines = log.read_text().splitlines()
    last_start = max(i for i, l in enumerate(lines) if l.startswith("start "))
    computed = {int(l.split()[1]) for l in lines[last_start:] if " done: " in l}
    assert computed == {c.index for c in plan.chunks} - finished              # only the missing ones

    resumed = open_results(out)
    for c in plan.chunks:                                                     # finished chunks untouched
        if c.index in finished:
            region = {d: slice(a, b) for d, (a, b) in zip(plan.dims, c.region)}
            assert_same(kept.isel(region), open_results(out, mask=False).isel(region))
    assert sweep(spec, "--out", ref_out, "--workers", 1) == 0
    assert_same(open_results(ref_out), resumed)                               # == an uninterrupted run


def test_a_template_cut_short_by_a_kill_is_replaced_by_a_rerun_or_resume(tmp_path, capsys, monkeypatch):
    """A kill while the Zarr template is written (simulated: the write stops before `done` and
    the run is interrupted) must not leave a folder that a plain rerun refuses or that --resume
    crashes on: the template is written aside and renamed, so both start over."""
    spec = write_spec(tmp_path / "tiny.toml", steps=20)
    ref = tmp_path / "ref"
    assert sweep(spec, "--out", ref, "--workers", 1) == 0
    real = xr.Dataset.to_zarr

    def killed(ds, path, **kw):
        if kw.get("compute") is False:                                        # the template
            real(ds.drop_vars("done"), path, **kw)
            raise KeyboardInterrupt
        return real(ds, path, **kw)
    for how in ([], ["--resume"]):
        out = tmp_path / f"cut{len(how)}"
        with monkeypatch.context() as m:
            m.setattr(xr.Dataset, "to_zarr", killed)
            assert sweep(spec, "--out", out, "--workers", 1) == 130
        capsys.readouterr()
        assert sweep(spec, "--out", out, "--workers", 1, *how) == 0, capsys.readouterr().err
        assert not (out / "results.zarr.part").exists()
        assert_same(open_results(ref), open_results(out))


def test_an_incomplete_store_is_refused_on_resume_with_what_to_do(tiny, tmp_path, capsys):
    import shutil
    spec, out = tiny
    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    shutil.rmtree(cut / "results.zarr" / "done")                              # a store left by an older effgan
    assert sweep(spec, "--out", cut, "--resume") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no variable 'done'" in err and "delete it" in err


def test_a_damaged_chunk_is_named_by_figure_and_computed_again_by_resume(tiny, tmp_path, capsys):
    import shutil
    spec, out = tiny
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "results.nc").unlink()
    (bad / "results.zarr" / "final_spread" / "c" / "0" / "0" / "0" / "0").write_bytes(b"overwritten")
    assert main(["figure", str(bad), "--kind", "phase", "--metric", "spread", "--select", "lr.disc=0.01",
                 "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chunk (0, 0, 0, 0) of 'final_spread' is damaged" in err and "--resume" in err
    assert sweep(spec, "--out", bad, "--resume", "--workers", 1) == 0
    captured = capsys.readouterr()
    assert "1 damaged chunk(s) computed again: chunk 0 (final_spread)" in captured.err
    assert "computed 1 chunks" in captured.out
    assert_same(open_results(out), open_results(bad))


def test_the_store_is_consolidated_and_records_where_it_ran(tiny):
    import warnings
    spec, out = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                        # no "consolidated metadata" warning
        ds = xr.open_zarr(out / "results.zarr")
    assert ds.attrs["devices"] == "cpu" and ds.attrs["device"] == "cpu"      # the consolidated attrs are current


@pytest.mark.slow
def test_an_unreachable_scheduler_leaves_nothing_behind(tmp_path, capsys):
    pytest.importorskip("distributed")
    spec = write_spec(tmp_path / "tiny.toml")
    out = tmp_path / "o"
    for _ in range(2):                                                        # the retry is not refused either
        assert sweep(spec, "--out", out, "--scheduler", "tcp://127.0.0.1:1") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--scheduler: cannot reach tcp://127.0.0.1:1" in err
        assert not (out / "results.zarr").exists()


def _children(pid: int) -> set[int]:
    """PIDs whose parent is pid (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_a_killed_sweep_leaves_no_worker_behind(tmp_path, sig):
    """SIGTERM or SIGKILL to a sweep with 2 worker processes: no worker outlives it (they would
    otherwise idle under PID 1, or finish chunks nobody records). SIGTERM stops the workers
    before the sweep says "interrupted", keeps the chunks already finished, and exits 143.
    Every wait is on an event, with generous deadlines (the machine may be loaded)."""
    spec = write_spec(tmp_path / "slow.toml", steps=4000)
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "sweep", str(spec), "--out", str(out),
                             "--workers", "2", "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    workers = set()
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and len(workers) < 2:
            workers = {w for w in _children(proc.pid) if "spawn" in Path(f"/proc/{w}/cmdline").read_text()}
            time.sleep(0.1)
        assert len(workers) == 2, "the sweep did not start its workers"
        log = out / "chunks.log"
        if sig == signal.SIGTERM:                                             # one chunk on disk, others running
            while time.time() < deadline + 180 and proc.poll() is None and " done: " not in log.read_text():
                time.sleep(0.05)
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
        else:
            time.sleep(1.0)                                                   # let them pick up chunks
        proc.send_signal(sig)
        if sig == signal.SIGTERM:
            line = proc.stderr.readline()                                     # blocks until it is printed
            assert "interrupted (--resume continues it)" in line, line
            assert not {w for w in workers if _alive(w)}, "workers still ran when the sweep said interrupted"
        rc = proc.wait(timeout=120)
        stuck, deadline = workers, time.time() + 60
        while stuck and time.time() < deadline:
            stuck = {w for w in stuck if _alive(w)}
            time.sleep(0.2)
        assert not stuck, f"workers {stuck} outlived the sweep"
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert rc == 128 + signal.SIGTERM
        logged = {int(line.split()[1]) for line in log.read_text().splitlines() if " done: " in line}
        assert logged and logged <= done_chunks(out / "results.zarr", make_plan(load_spec(spec), "cpu"))
    else:
        assert rc == -signal.SIGKILL


@pytest.mark.slow
def test_dask_cluster_gives_the_numbers_of_a_local_run(tiny, tmp_path):
    distributed = pytest.importorskip("distributed")
    spec, out = tiny
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        assert sweep(spec, "--out", tmp_path / "dask", "--scheduler", cluster.scheduler_address) == 0
    assert_same(open_results(out), open_results(tmp_path / "dask"))
    attrs = open_results(tmp_path / "dask").attrs
    assert attrs["devices"] == "cpu" and attrs["device"] == "cpu" and attrs["device_requested"] == "auto"


@pytest.mark.parametrize("path", sorted((ROOT / "assets" / "sweeps").glob("*.toml")), ids=lambda p: p.stem)
def test_example_specs_parse_and_plan(path):
    for quick in (False, True):
        spec = load_spec(path, quick=quick)
        assert spec.name == path.stem and spec.axes and spec.figures
        plan = make_plan(spec, "cpu")
        assert sum(c.size for c in plan.chunks) == plan.points


def test_a_packaged_spec_is_found_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                                               # no assets/ here, as after pip install
    # the spec is found and parsed: the run stops only at the bad --workers value
    assert sweep("collapse-phase", "--quick", "--out", tmp_path / "o", "--workers", 0) == 2
    assert "--workers: 0 is not allowed" in capsys.readouterr().err
    assert sweep("collapse-phasee") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a file nor a packaged sweep spec; allowed" in err and "collapse-phase" in err


def test_dynamics_never_loads_the_plotting_stack():
    code = ("import sys, dynamics.experiments, app.cli_sweep, dynamics.sweep.execute; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('holoviews', 'panel', 'bokeh', 'matplotlib')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_config_error_type_is_reused():
    with pytest.raises(ConfigError, match=r"^axes\.kernel\.ratio: empty range"):
        parse_spec('[axes]\n"kernel.ratio" = []\n')
