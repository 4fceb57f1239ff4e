"""Sweep results on disk: a Zarr store written chunk by chunk, and the Dataset read back.

`create` writes a template (coordinates, attrs, empty arrays whose Zarr chunks are the plan's
chunks); `write_chunk` fills one chunk's region and then marks its points in `done`, so a
killed sweep leaves finished chunks complete and `done_chunks` finds them on resume.
Layout: dims = the axes (struct first, then hyper) + seed, plus step (time series) and eig
(kernel spectrum); final metrics are `final_<name>`, series `<name>`.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .. import convention
from ..knobs import KNOBS, ConfigError
from ..results import versions as engine_versions
from ..run import record_steps
from .plan import Plan
from .spec import Spec, available_metrics, sweep_targets
from .task import META, Wants

STORE = "results.zarr"
NETCDF = "results.nc"
ZARR = {"consolidated": False}      # region writes change no metadata: nothing to consolidate
READ = {"consolidated": None}       # consolidated metadata where there is some (ours), plain otherwise


def versions() -> dict[str, str]:
    import dask
    import distributed
    import zarr
    return {**engine_versions(), "zarr": zarr.__version__, "dask": dask.__version__,
            "distributed": distributed.__version__}


def prepare_out(out: Path) -> Path:
    """Make the output folder, or fail with one line if it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--out: cannot write {out} ({e.strerror or type(e).__name__}); allowed a writable "
                          "folder") from None
    return out


def create(path: Path, spec: Spec, plan: Plan, wants: Wants, device: str) -> None:
    import dask.array as da
    final_kinds, series_kinds = available_metrics(sweep_targets(spec.config, spec.axes))
    fdtype = np.dtype(spec.config["dtype"])
    chunks = plan.chunk_shape
    steps = np.asarray(record_steps(spec.config["steps"], spec.config["record.every"]))

    def dtype(kind):
        return {"f": fdtype, "b": np.dtype(bool)}.get(kind, np.dtype(np.int64))

    def empty(dt, extra=()):
        fill = np.nan if dt.kind == "f" else (False if dt.kind == "b" else -1)
        return da.full(plan.shape + extra, fill, dtype=dt, chunks=chunks + extra)

    data = {f"final_{m}": (plan.dims, empty(dtype(final_kinds[m]))) for m in wants.metrics if m != "spectrum"}
    for m in wants.series:
        data[m] = (plan.dims + ("step",), empty(dtype(series_kinds[m]), (len(steps),)))
    if wants.spectrum:
        data["spectrum"] = (plan.dims + ("eig",), empty(np.dtype(np.float64), (wants.eig,)))
        data["spectrum_multiplicity"] = (plan.dims + ("eig",), empty(np.dtype(np.int64), (wants.eig,)))
    data["done"] = (plan.dims, empty(np.dtype(bool)))
    coords = {}
    for a in spec.axes:
        vals = np.asarray(a.values, dtype=object) if isinstance(a.values[0], str) else np.asarray(a.values)
        k = KNOBS[a.key]
        coords[a.key] = (a.key, vals, {"scale": a.scale, "role": a.role, "doc": k.doc, "label": k.label or a.key})
    coords["seed"] = ("seed", np.asarray(spec.seeds))
    if wants.series:
        coords["step"] = ("step", steps)
    if wants.spectrum:
        coords["eig"] = ("eig", np.arange(wants.eig))
    attrs = {
        "name": spec.name, "doc": spec.doc, "quick": int(spec.quick),
        "config": json.dumps(spec.config, sort_keys=True), "spec": spec.source, "fingerprint": spec.fingerprint(),
        "axes": json.dumps([{"key": a.key, "scale": a.scale, "role": a.role} for a in spec.axes]),
        "metrics": json.dumps(list(wants.metrics)), "series": json.dumps(list(wants.series)),
        "plan": json.dumps({"chunk": plan.chunk, "chunk_shape": list(plan.chunk_shape), "chunks": len(plan.chunks),
                            "groups": plan.groups, "points": plan.points}),
        "versions": json.dumps(versions()), "device": device,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "update_rule": convention.of(spec.config).rule,
    }
    attrs["device_requested"] = device
    # the template is written aside and renamed: a run killed meanwhile leaves only `.part`,
    # which the next run (plain or --resume) replaces, never a store that cannot be resumed
    tmp = path.with_name(path.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet():
        xr.Dataset(data, coords=coords, attrs=attrs).to_zarr(tmp, mode="w-", compute=False, consolidated=True)
    os.replace(tmp, path)


@contextlib.contextmanager
def _quiet():
    """zarr 3 warns that consolidated metadata is outside its format spec; xarray reads it, and
    without it `xr.open_zarr` warns on every open."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated")
        yield


def _open(path: Path, truth: bool = False) -> xr.Dataset:
    """truth: read each array's own metadata (a resume checks what is there, not the summary)."""
    with _quiet():
        return xr.open_zarr(path, **(ZARR if truth else READ))


def check_template(path: Path, plan: Plan, wants: Wants) -> None:
    """A store to resume holds every variable the plan writes, in the plan's shape."""
    ds = _open(path, truth=True)
    need = [f"final_{m}" for m in wants.metrics] + list(wants.series) + ["done"]
    need += ["spectrum", "spectrum_multiplicity"] if wants.spectrum else []
    for name in need:
        shape = ds[name].shape[:len(plan.dims)] if name in ds else None
        if shape != plan.shape:
            why = "has no variable" if shape is None else f"has shape {shape} (the spec needs {plan.shape}) for"
            raise ConfigError(f"--resume: {path} {why} {name!r}, it is not this sweep's store; allowed a store "
                              "written by effgan sweep with this spec (delete it, or use a new --out folder)")


def stored_attrs(path: Path) -> dict:
    try:
        attrs = dict(_open(path, truth=True).attrs)
    except Exception as e:  # noqa: BLE001 - e.g. killed while the template was written
        raise ConfigError(f"--resume: {path} is not a readable sweep store ({type(e).__name__}); allowed a folder "
                          "written by effgan sweep (delete it to start again)") from None
    try:
        chunk = json.loads(attrs["plan"])["chunk"]
        ok = isinstance(attrs["fingerprint"], str) and isinstance(chunk, int) and not isinstance(chunk, bool) \
            and chunk >= 1
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"--resume: {path} is not a sweep store (its fingerprint or plan attribute is missing or "
                          "damaged); allowed a folder written by effgan sweep")
    return attrs


def write_chunk(path: Path, plan: Plan, chunk, result: dict) -> None:
    """Region-write one chunk's arrays, then its `done` flags (last, so done implies data)."""
    region = {d: slice(a, b) for d, (a, b) in zip(plan.dims, chunk.region)}
    data = {}
    for name, arr in result.items():
        if name in META:
            continue
        extra = {"spectrum": ("eig",), "spectrum_multiplicity": ("eig",)}.get(
            name, () if name.startswith("final_") else ("step",))
        data[name] = (plan.dims + extra, arr)
    xr.Dataset(data).to_zarr(path, region=region, mode="r+", **ZARR)
    xr.Dataset({"done": (plan.dims, np.ones(chunk.shape, bool))}).to_zarr(path, region=region, mode="r+", **ZARR)


def note_devices(path: Path, devices: set[str]) -> None:
    """Record where chunks actually ran (a Dask worker may differ from the requested device)."""
    import zarr
    group = zarr.open_group(str(path), mode="r+")
    before = {d for d in str(group.attrs.get("devices", "")).split(", ") if d}
    ran = ", ".join(sorted(before | devices))
    group.attrs.update({"devices": ran, "device": ran})     # where they ran, not "auto"
    with _quiet():
        zarr.consolidate_metadata(str(path))


def damaged(path: Path) -> dict[str, list[tuple[int, ...]]]:
    """Variable -> indices of its Zarr chunks that cannot be decoded (a truncated or overwritten
    chunk file). Each variable is read whole; only a failing one is read chunk by chunk."""
    import zarr
    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    out = {}
    for name, arr in group.arrays():
        try:
            arr[...]
        except Exception:  # noqa: BLE001 - codecs raise their own kinds for bad bytes
            out[name] = [idx for idx in np.ndindex(*arr.cdata_shape) if not _readable(arr, idx)]
    return out


def _readable(arr, idx) -> bool:
    try:
        arr.blocks[idx]
        return True
    except Exception:  # noqa: BLE001
        return False


def damaged_chunks(path: Path, plan: Plan) -> dict[int, str]:
    """Plan chunk index -> the variable in which it is damaged; damaged coordinates cannot be
    computed again and are refused."""
    start = {tuple(a for a, _ in c.region): c.index for c in plan.chunks}
    out = {}
    for name, blocks in damaged(path).items():
        if name in plan.dims or name in ("step", "eig"):
            raise ConfigError(f"--resume: {path}: coordinate {name!r} is damaged (chunk {blocks[0]}); allowed an "
                              "intact store (start again in a new --out folder)")
        for idx in blocks:
            key = tuple(i * n for i, n in zip(idx, plan.chunk_shape))
            out.setdefault(start.get(key, -1), name)
    out.pop(-1, None)
    return out


def done_chunks(path: Path, plan: Plan, redo: dict[int, str] | None = None) -> set[int]:
    """Chunks whose `done` flags are all set and which are not damaged (`redo`)."""
    redo = damaged_chunks(path, plan) if redo is None else redo
    done = _open(path, truth=True)["done"]
    finished = set()
    for c in plan.chunks:
        if c.index not in redo and bool(done[tuple(slice(a, b) for a, b in c.region)].values.all()):
            finished.add(c.index)
    return finished


def resolve_results(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir() and (p / STORE).is_dir():
        return p / STORE
    if p.suffix == ".zarr" and p.is_dir():
        return p
    if p.suffix == ".nc" and p.is_file():
        return p
    raise ConfigError(f"RESULTS: {p} is not sweep results; allowed a sweep folder (holding {STORE}), a .zarr "
                      "store or a .nc file")


def open_results(path: str | Path, mask: bool = True) -> xr.Dataset:
    """The sweep Dataset in memory, dims in spec order (axes, seed, step/eig); points not yet
    computed are NaN when `mask`."""
    p = resolve_results(path)
    try:
        ds = (_open(p) if p.suffix == ".zarr" else xr.open_dataset(p, engine="h5netcdf")).load()
    except Exception as e:  # noqa: BLE001 - any read failure is a user-facing one-liner
        where, hint = "", ""
        if p.suffix == ".zarr":
            with contextlib.suppress(Exception):
                name, blocks = next(iter(damaged(p).items()))
                where = f": chunk {blocks[0]} of {name!r} is damaged"
                hint = " (effgan sweep SPEC --out DIR --resume computes damaged chunks again)"
        raise ConfigError(f"RESULTS: cannot read {p}{where} ({type(e).__name__}); allowed results written by "
                          f"effgan sweep or effgan run{hint}") from None
    for name in list(ds.coords):
        if ds[name].dtype.kind in "OT":             # StringDType/object -> plain str for plotting
            ds = ds.assign_coords({name: (ds[name].dims, np.array([str(v) for v in ds[name].values.ravel()])
                                          .reshape(ds[name].shape), ds[name].attrs)})
    if "axes" in ds.attrs:
        ds = ds.transpose(*_axes_order(ds, p), ...)
    if mask and "done" in ds and not bool(ds["done"].all()):
        done = ds["done"]
        ds = ds.assign({v: ds[v].where(done) for v in ds.data_vars if v != "done" and set(done.dims) <= set(ds[v].dims)})
    return ds


def _axes_order(ds: xr.Dataset, p: Path) -> list[str]:
    """The `axes` attribute read back: a JSON list of {"key": dim}, each a distinct dim of `ds`."""
    raw = ds.attrs["axes"]
    try:
        order = [a["key"] for a in json.loads(raw)]
        ok = all(isinstance(k, str) and k in ds.dims for k in order) and len(set(order)) == len(order)
    except (TypeError, ValueError, KeyError):
        ok = False
    if not ok:
        raise ConfigError(f"RESULTS: {p} has a damaged axes attribute ({str(raw)[:60]!r}); allowed a JSON list of "
                          "{\"key\": DIM} naming distinct dimensions of the results (as effgan sweep writes it)")
    return order + (["seed"] if "seed" in ds.dims and "seed" not in order else [])


def export_netcdf(store: Path, path: Path) -> None:
    from ..results import write_netcdf
    write_netcdf(open_results(store, mask=False), path)


def log_line(out: Path, text: str) -> None:
    """Append one line to the sweep's log (opened per line: a killed run keeps all lines)."""
    with open(out / "chunks.log", "a") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
