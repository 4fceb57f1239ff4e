"""Runs as xarray Datasets: metrics over steps, particle snapshots, the config in attrs."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import xarray as xr

from . import convention
from .knobs import ConfigError
from .run import History


def versions() -> dict[str, str]:
    import torch
    return {"effgan": _version(), "torch": torch.__version__, "numpy": np.__version__,
            "xarray": xr.__version__, "python": platform.python_version()}


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("effgan")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "source"


def to_dataset(h: History, device: str = "") -> xr.Dataset:
    """Dims: member, step, snapshot, particle, axis. Member coordinates carry seeds and hypers."""
    B = h.snapshots.shape[0]
    data = {k: (("member", "step"), v) for k, v in h.series.items()}
    data["positions"] = (("member", "snapshot", "particle", "axis"), h.snapshots)
    for k, v in h.final.items():
        data[f"final_{k}"] = (("member",), np.asarray(v))
    coords = {"member": np.arange(B), "step": h.steps, "snapshot": np.arange(h.snapshots.shape[1]),
              "snapshot_step": ("snapshot", h.snap_steps)}
    keys = sorted({k for m in h.members for k in m})
    for k in keys:
        coords[k] = ("member", np.asarray([m.get(k, h.cfg[k]) for m in h.members]))
    attrs = {"config": json.dumps(h.cfg, sort_keys=True), "members": json.dumps(h.members),
             "versions": json.dumps(versions()), "device": device,
             "update_rule": convention.of(h.cfg).rule}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def check_writable(path: str | Path) -> Path:
    """The .nc path `--out` names, checked before a run so that its results are not lost after:
    an existing folder we may write in, and not itself a folder."""
    p = Path(path)
    if p.suffix != ".nc":
        raise ConfigError(f"--out: {str(path)!r} does not end in .nc; allowed a netCDF file path")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"--out: folder {folder} does not exist; allowed a writable .nc path")
    probe = p.with_name(p.name + ".part")
    try:
        if p.is_dir():
            raise IsADirectoryError
        probe.open("ab").close()                       # what the write will do: create the .part beside it
        probe.unlink()
    except OSError:
        raise ConfigError(f"--out: cannot write {p}; allowed a writable .nc path") from None
    return p


def write_netcdf(ds: xr.Dataset, path: str | Path) -> None:
    p = check_writable(path)
    tmp = p.with_name(p.name + ".part")
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(p)                    # a killed write never leaves a truncated file behind
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"--out: cannot write {p} ({type(e).__name__}); allowed a writable .nc path") from None
