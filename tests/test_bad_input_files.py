"""Fuzz harness for files and sweep specs: every case is answered with one line and exit 2.

Cases are generated, not listed by hand: every sweep-spec field (dynamics.sweep.spec.FIELDS)
and every knob (dynamics.knobs.KNOBS) under [set] and [axes], times wrong type / out of
range / unknown key / path traversal; every point-file kind (CSV, .npy of each dtype kind);
sweep results (Zarr damaged or partial, netCDF with crafted attributes). The CLI runs in
process (`app.cli.main`), its stderr captured. The parametrize ids start with the
category, so `pytest --co -q tests/test_bad_input_files.py | cut -d[ -f2 | cut -d- -f1 | sort
| uniq -c` gives the counts per category.
"""
from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
import xarray as xr

from app.cli import main
from dynamics.knobs import KNOBS
from dynamics.sweep.spec import FIELDS, MAX_POINTS, sweepable

ACCEPTED = "--workers: 0 is not allowed"      # a spec that parses reaches the option check and stops there


def toml_value(v) -> str:
    """A TOML inline value (enough for the values generated here)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)


def spec_text(**fields) -> str:
    base = {"steps": 2, "seeds": [1], "set": {"particles": 4}, "axes": {"kernel.ratio": [0.1]}}
    base.update(fields)
    return "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in base.items() if v is not None) + "\n"


def one_line(capsys, rc) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("effgan ") and "Traceback" not in err, err
    return err


def run_spec(tmp_path, text, capsys) -> str:
    spec = tmp_path / "fuzz.toml"
    spec.write_text(text)
    return one_line(capsys, main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0",
                                  "--no-progress"]))


# ---------------------------------------------------------------- spec fields
WRONG = {"bool": True, "float": 1.5, "string": "x", "list": [1, "a"], "table": {"a": 1}, "negative": -3,
         "huge": 10**15}
VALID_TYPES = {"name": "string", "doc": "string", "base": "string", "config": "string", "seeds": "list",
               "steps": None, "record_every": None, "metrics": "list", "series": "list", "chunk": None,
               "set": "table", "axes": "table", "figure": "list", "quick": "table"}


def field_cases():
    for field in FIELDS:
        for kind, value in WRONG.items():
            if kind == VALID_TYPES[field] or (field == "doc" and kind == "string"):
                continue
            yield pytest.param(field, value, id=f"spec-field-{field}-{kind}")
    yield pytest.param("sweeps", 3, id="spec-field-unknown")
    yield pytest.param("kernel.ratio", 0.1, id="spec-field-knob-at-top")


@pytest.mark.parametrize("field,value", list(field_cases()))
def test_spec_field_of_wrong_type(tmp_path, capsys, field, value):
    err = run_spec(tmp_path, spec_text(**{field: value}), capsys)
    if field in ("steps", "record_every") and value == 10**15:
        assert ACCEPTED not in err                                            # out of the knob's range
    elif not (field == "seeds" and value == 10**15):
        assert ACCEPTED not in err and (field in err or "SPEC:" in err), err


def _out_of_range(k):
    if k.allowed() is not None:
        return "no-such-choice"
    if k.bounds is not None and k.kind in (int, float):
        lo, hi = k.bounds
        return (hi * 10 + 10) if hi is not None else (lo - 10 if lo is not None else None)
    return None


def knob_cases(where: str):
    keys = sweepable() if where == "axes" else list(KNOBS)
    for key in keys:
        k = KNOBS[key]
        bad = _out_of_range(k)
        if bad is not None:
            yield pytest.param(key, bad, id=f"{where}-range-{key}")
        yield pytest.param(key, {"nested": [1]}, id=f"{where}-type-{key}")
    yield pytest.param("no.such.knob", 1, id=f"{where}-unknown-key")


@pytest.mark.parametrize("key,bad", list(knob_cases("set")))
def test_set_knob_bad_value(tmp_path, capsys, key, bad):
    err = run_spec(tmp_path, spec_text(set={"particles": 4, key: bad}, axes={"lr.disc": [0.01]}), capsys)
    assert ACCEPTED not in err, err


@pytest.mark.parametrize("key,bad", list(knob_cases("axes")))
def test_axes_knob_bad_value(tmp_path, capsys, key, bad):
    value = bad if isinstance(bad, dict) else [bad]
    err = run_spec(tmp_path, spec_text(set={"particles": 4}, axes={key: value}), capsys)
    assert ACCEPTED not in err and "axes" in err, err


RANGES = {"huge-lin": {"lin": [0.0, 1.0, 10**9]}, "huge-log": {"log": [1e-3, 1.0, MAX_POINTS + 1]},
          "num-zero": {"lin": [0.0, 1.0, 0]}, "num-float": {"lin": [0.0, 1.0, 2.5]},
          "two-forms": {"lin": [0, 1, 2], "log": [1, 2, 2]}, "short": {"lin": [0.0, 1.0]},
          "values-not-list": {"values": 3}, "empty": [], "repeated": [0.1, 0.1]}


@pytest.mark.parametrize("name", sorted(RANGES), ids=lambda n: f"axes-form-{n}")
def test_axes_range_forms(tmp_path, capsys, name):
    err = run_spec(tmp_path, spec_text(axes={"kernel.ratio": RANGES[name]}), capsys)
    assert ACCEPTED not in err and "axes.kernel.ratio" in err, err


FIGURE_FILES = {"parent": "../../x.png", "absolute": "/x.png", "subfolder": "a/b.png", "dotdot": "..",
                "backslash": "..\\x.png", "no-format": "x.txt", "empty": "", "not-a-string": 3}


@pytest.mark.parametrize("name", sorted(FIGURE_FILES), ids=lambda n: f"figure-file-{n}")
def test_figure_file_stays_in_out(tmp_path, capsys, name):
    err = run_spec(tmp_path, spec_text(figure=[{"kind": "phase", "file": FIGURE_FILES[name]}]), capsys)
    assert ACCEPTED not in err and "figure[0]" in err, err
    assert not list(tmp_path.parent.glob("x.png"))


@pytest.mark.parametrize("field,value", [("seeds", "x"), ("steps", -1), ("axes", {"kernel.ratio": [2.0]}),
                                         ("figure", [{"file": "../x.png"}]), ("sweeps", 1)],
                         ids=lambda v: f"quick-{v}" if isinstance(v, str) else "")
def test_quick_table_is_checked_without_quick(tmp_path, capsys, field, value):
    err = run_spec(tmp_path, spec_text(quick={field: value}), capsys)
    assert ACCEPTED not in err and "quick" in err, err


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f"hypothesis-field-{f}")
def test_any_value_in_any_field_is_one_line(tmp_path, capsys, field):
    """Values drawn by hypothesis (nested lists/tables of any scalars) in each spec field."""
    hyp = pytest.importorskip("hypothesis")                    # a test extra; the listed cases need none
    st = hyp.strategies
    scalars = st.one_of(st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True), st.text(max_size=20))
    values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), c, max_size=3)),
                          max_leaves=8)

    @hyp.settings(max_examples=15, deadline=None, database=None)
    @hyp.given(value=values)
    def check(value):
        if field == "seeds" and isinstance(value, list) and len(value) > 1:
            value = value[:1]                                                 # keep an accepted spec cheap
        run_spec(tmp_path, spec_text(**{field: value}), capsys)
    check()


# ---------------------------------------------------------------- point files
def run_target(path, capsys) -> str:
    err = one_line(capsys, main(["run", "--set", "target.kind=file", "--set", f"target.file={path}",
                                 "--steps", "1"]))
    assert "target.file" in err, err
    return err


CSV = {"empty": b"", "header-only": b"x,y\n", "ragged": b"1,2\n3\n", "nan-first-row": b"nan,nan\n1,2\n",
       "inf-first-row": b"inf,1\n1,2\n", "binary": bytes(range(256)), "text-cell": b"1,2\n3,x\n",
       "blank-lines": b"\n\n\n", "latin-1": "é,1\n".encode("latin-1")}


@pytest.mark.parametrize("name", sorted(CSV), ids=lambda n: f"csv-{n}")
def test_bad_csv(tmp_path, capsys, name):
    p = tmp_path / "points.csv"
    p.write_bytes(CSV[name])
    err = run_target(p, capsys)
    if "first-row" in name:
        assert "non-finite values (point 1 of 2)" in err                     # read as data, not dropped


def test_csv_huge_file_is_refused_by_size(tmp_path, capsys):
    p = tmp_path / "huge.csv"
    with open(p, "wb") as f:
        f.truncate(65 * 2**20)                                                # sparse: no 65 MB written
    assert "allowed files up to 64 MB" in run_target(p, capsys)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("kind", ["fifo", "folder"], ids=lambda k: f"csv-not-a-file-{k}")
def test_points_path_not_a_regular_file(tmp_path, capsys, kind):
    p = tmp_path / "p.csv"
    os.mkfifo(p) if kind == "fifo" else p.mkdir()
    assert "is not a regular file" in run_target(p, capsys)


NPY = {"unicode": np.array([["a", "b"]]), "bytes": np.array([[b"a", b"b"]]),
       "structured": np.zeros(3, dtype=[("x", "f8"), ("y", "f8")]), "complex64": np.ones((3, 2), np.complex64),
       "complex128": np.ones((3, 2), np.complex128), "datetime64": np.array(["2020-01-01"] * 3, "datetime64[D]"),
       "timedelta64": np.array([1, 2, 3], "timedelta64[s]"), "bool": np.ones((3, 2), bool),
       "object": np.array([[1, None]], dtype=object), "scalar": np.float64(1.0), "3d": np.zeros((2, 2, 2)),
       "empty": np.zeros((0, 2)), "nan": np.array([[np.nan, 1.0]]), "inf": np.array([[1.0, np.inf]])}


@pytest.mark.parametrize("name", sorted(NPY), ids=lambda n: f"npy-{n}")
def test_bad_npy(tmp_path, capsys, name):
    p = tmp_path / "points.npy"
    np.save(p, NPY[name], allow_pickle=True)
    run_target(p, capsys)


@pytest.mark.parametrize("name", ["truncated", "bad-magic"], ids=lambda n: f"npy-{n}")
def test_broken_npy(tmp_path, capsys, name):
    p = tmp_path / "points.npy"
    np.save(p, np.ones((50, 2)))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2] if name == "truncated" else b"XX" + data[2:])
    run_target(p, capsys)


# ---------------------------------------------------------------- sweep results
@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A finished tiny sweep (results.zarr + results.nc)."""
    root = tmp_path_factory.mktemp("fuzzres")
    spec = root / "s.toml"
    spec.write_text(spec_text(steps=10, record_every=5, seeds=[1, 2], chunk=2,
                              axes={"kernel.ratio": [0.0, 0.5], "lr.disc": [0.01, 0.1]}))
    assert main(["sweep", str(spec), "--out", str(root / "out"), "--workers", "1", "--no-progress"]) == 0
    return spec, root / "out"


def figure_of(path, tmp_path, capsys, *extra) -> str:
    return one_line(capsys, main(["figure", str(path), "--kind", "phase", "--metric", "modes_covered",
                                  "--out", str(tmp_path / "f.png"), *extra]))


ATTRS = {"axes-not-json": ("axes", "{{{"), "axes-not-list": ("axes", '{"a": 1}'),
         "axes-list-of-ints": ("axes", "[1, 2]"), "axes-unknown-dim": ("axes", '[{"key": "nope"}]'),
         "axes-repeated": ("axes", '[{"key": "lr.disc"}, {"key": "lr.disc"}]'),
         "axes-key-not-str": ("axes", '[{"key": 3}]'),
         "config-not-json": ("config", "{{"), "config-a-list": ("config", "[1]"),
         "config-bad-values": ("config", '{"target.radius": "far", "kernel.kind": 3}')}


@pytest.mark.parametrize("name", sorted(ATTRS), ids=lambda n: f"netcdf-attr-{n}")
def test_netcdf_with_crafted_attribute(results, tmp_path, capsys, name):
    _, out = results
    key, value = ATTRS[name]
    ds = xr.open_dataset(out / "results.nc", engine="h5netcdf").load()
    ds.attrs[key] = value
    ds.to_netcdf(tmp_path / "crafted.nc", engine="h5netcdf")
    if key == "config":                                                      # only the theory overlay reads it
        for kind in ("curve", "spectrum", "phase"):
            rc = main(["figure", str(tmp_path / "crafted.nc"), "--kind", kind, "--select", "seed=1",
                       "--out", str(tmp_path / "f.png")])
            err = capsys.readouterr().err
            assert rc == 0 or (rc == 2 and err.count("\n") == 1 and "Traceback" not in err), err
        return
    err = figure_of(tmp_path / "crafted.nc", tmp_path, capsys)
    assert f"damaged {key} attribute" in err, err


ZARR_DAMAGE = {"chunk-garbage": lambda z: _garble(z / "final_modes_covered" / "c"),
               "coords-garbage": lambda z: _garble(z / "seed" / "c"),
               "metadata-garbage": lambda z: (z / "zarr.json").write_bytes(b"\x00garbage"),
               "no-metadata": lambda z: (z / "zarr.json").unlink(),
               "array-metadata-garbage": lambda z: (z / "done" / "zarr.json").write_text("[]")}


def _garble(folder):
    first = next(p for p in sorted(folder.rglob("*")) if p.is_file())
    first.write_bytes(b"not a chunk")


@pytest.mark.parametrize("name", sorted(ZARR_DAMAGE), ids=lambda n: f"zarr-{n}")
@pytest.mark.parametrize("command", ["figure", "resume"])
def test_damaged_zarr_store(results, tmp_path, capsys, name, command):
    spec, out = results
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "results.nc").unlink()
    ZARR_DAMAGE[name](bad / "results.zarr")
    if command == "figure" and name == "array-metadata-garbage":             # read from the consolidated copy
        assert main(["figure", str(bad), "--kind", "phase", "--metric", "modes_covered", "--select", "seed=1",
                     "--out", str(tmp_path / "f.png")]) == 0
    elif command == "figure":
        err = figure_of(bad, tmp_path, capsys, "--select", "seed=1")
        assert "RESULTS:" in err
        if name.endswith("-garbage") and "chunk" in name:
            assert "is damaged" in err and "modes_covered" in err
    else:
        rc = main(["sweep", str(spec), "--out", str(bad), "--resume", "--workers", "1", "--no-progress"])
        if name == "chunk-garbage":                                          # healed: computed again
            assert rc == 0 and "damaged chunk(s) computed again" in capsys.readouterr().err
        else:
            assert "--resume" in one_line(capsys, rc)


PARTIAL = {"no-done": lambda z: shutil.rmtree(z / "done"),
           "no-fingerprint": lambda z: _edit_attrs(z, lambda a: a.pop("fingerprint")),
           "plan-not-json": lambda z: _edit_attrs(z, lambda a: a.update(plan="{{")),
           "plan-chunk-string": lambda z: _edit_attrs(z, lambda a: a.update(plan='{"chunk": "2"}')),
           "wrong-shape": lambda z: _reshape_done(z)}


def _edit_attrs(z, change):
    import zarr
    g = zarr.open_group(str(z), mode="r+", use_consolidated=False)
    attrs = dict(g.attrs)
    change(attrs)
    g.attrs.clear() if hasattr(g.attrs, "clear") else None
    g.attrs.put(attrs) if hasattr(g.attrs, "put") else g.attrs.update(attrs)
    zarr.consolidate_metadata(str(z))


def _reshape_done(z):
    meta = json.loads((z / "done" / "zarr.json").read_text())
    meta["shape"] = [1] * len(meta["shape"])
    (z / "done" / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("name", sorted(PARTIAL), ids=lambda n: f"zarr-partial-{n}")
def test_partial_store_on_resume(results, tmp_path, capsys, name):
    spec, out = results
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    PARTIAL[name](bad / "results.zarr")
    err = one_line(capsys, main(["sweep", str(spec), "--out", str(bad), "--resume", "--workers", "1",
                                 "--no-progress"]))
    assert "--resume" in err
