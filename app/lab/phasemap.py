"""The phase map: the neighbourhood of the live setting over two knobs, run in the background.

A map is an `effgan sweep` spec (TOML, `dynamics.sweep.spec`) written from the live config:
`plan_map` writes it and parses it back, so the spec a user downloads is the one that ran.
`dynamics.sweep.plan` cuts it into chunks: hyper axes and seeds are members of one batch along
the engine's leading axis, a structural axis (the critic's activation) one batch per value.
`MapRun` runs the chunks in a thread of its own (one torch thread: the live simulation keeps
the other core) and fills an xarray Dataset laid out as a sweep's results, so the netCDF
export opens in `effgan figure`. Finished maps are cached per spec fingerprint.
`panel(lab)` is the lab's card: axis pickers, a heatmap that fills as chunks land, and a click
on a cell moves the live knobs there (the same path as a knob widget, so the URL follows).
"""
from __future__ import annotations

import collections
import dataclasses
import io
import itertools
import json
import logging
import math
import tempfile
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from dynamics import aot, budget, convention, presets
from dynamics.knobs import KNOBS, ConfigError, defaults, hyper_keys, one_line, resolve
from dynamics.observables import OBSERVABLES
from dynamics.results import write_netcdf
from dynamics.run import simulate
from dynamics.sweep.plan import Chunk, Plan, make_plan
from dynamics.sweep.task import simulation
from dynamics.sweep.spec import Spec, available_metrics, parse_spec

from .state import SESSION_BYTES

log = logging.getLogger(__name__)
# the colour choices, each a declared observable (final value, mean over seeds)
COLOURS = {"coverage": "modes covered / K", "mode_entropy": "mode entropy H / log K",
           "mode_kl": "KL to uniform", "spread_rel": "spread / mode spacing", "convergence_step": "convergence step",
           "diverged": "diverged (fraction of seeds)"}
STORED = tuple(COLOURS) + ("modes_covered", "mean_error", "hops", "diverged_step")
assert all(m in OBSERVABLES for m in STORED), "a map metric is not declared in dynamics.observables"
CATEGORICAL = ("disc.activation", "loss", "reg.kind", "update")     # structural axes: one batch per value
POINTS = (2, 24)           # cells along a numeric axis
SEEDS = (1, 8)             # seeds per cell
STEPS = (10, 20_000)       # steps of every cell
CHUNK = 32                 # members per batch: a CPU core's sweet spot (benchmarks/engine.py)
# cells x seeds x steps x N: ~5e6 particle-steps/s on one core with the fused step, so the cap is
# about a minute of one core (eager: a few minutes)
MAX_WORK = 3e8
RECORDS = 50               # records per cell run (hops, convergence step)
THREADS = 1                # torch threads of the map's thread
CACHE_MAX = 16             # finished maps kept (a map of 24 x 24 x 8 cells is ~0.5 MB)
_CACHE: "collections.OrderedDict[str, xr.Dataset]" = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()
# one map computes at a time in a server process: each takes a core, and the live views need the other
_SLOT = threading.Semaphore(1)
_ids = itertools.count(1)


class Cancelled(Exception):
    """Raised inside a chunk's run when the map is cancelled."""


# ---------------------------------------------------------------- what to map
@dataclasses.dataclass(frozen=True)
class Axis:
    """One side of the map: a numeric range (start, stop, points) or a categorical list."""
    key: str
    start: float | None = None
    stop: float | None = None
    points: int = 8
    values: tuple = ()

    @property
    def categorical(self) -> bool:
        return self.key in CATEGORICAL


@dataclasses.dataclass(frozen=True)
class Request:
    x: Axis
    y: Axis
    seeds: int = 2
    steps: int = 2000
    compile: bool = True           # the fused step (compile = auto, a cached package): ~4x eager


def axis_keys(cfg: dict | None = None) -> list[str]:
    """Knobs a map can sweep: live knobs and the categorical structural ones that matter for cfg."""
    keys = [k for k in hyper_keys() if KNOBS[k].kind is float] + list(CATEGORICAL)
    if cfg is None:
        return keys
    return [k for k in keys if KNOBS[k].applies is None or cfg[KNOBS[k].applies[0]] in KNOBS[k].applies[1]]


def is_log(key: str) -> bool:
    return KNOBS[key].log


def propose(key: str, value: Any, points: int = 8) -> Axis:
    """A range around the current value: a decade either side on a log knob, the whole declared
    range of a short linear one, half to twice the value otherwise; every choice of a categorical."""
    k = KNOBS[key]
    if key in CATEGORICAL:
        return Axis(key, values=tuple(k.allowed()))
    lo, hi = k.bounds or (None, None)

    def clip(v: float) -> float:
        return min(max(v, -math.inf if lo is None else lo), math.inf if hi is None else hi)

    if k.log:
        v = value if value > 0 else max(lo or 0.0, 1e-3)
        a, b = clip(v / 10), clip(v * 10)
        a = a if a > 0 else v / 10
    elif lo is not None and hi is not None and hi - lo <= 20:
        a, b = lo, hi
    else:
        a, b = (clip(value / 2), clip(value * 2)) if value else (clip(0.0), clip(1.0))
        a, b = min(a, b), max(a, b)
    return Axis(key, float(f"{a:.3g}"), float(f"{b:.3g}"), points)


def default_request(cfg: dict) -> Request:
    keys = axis_keys(cfg)
    numeric = [k for k in keys if k not in CATEGORICAL]
    x = "kernel.ratio" if "kernel.ratio" in keys else numeric[0]
    y = "lr.disc" if "lr.disc" in keys else next(k for k in numeric if k != x)
    return Request(propose(x, cfg[x]), propose(y, cfg[y]))


# ---------------------------------------------------------------- the spec and its plan
@dataclasses.dataclass(frozen=True)
class MapPlan:
    request: Request
    spec: Spec
    plan: Plan
    toml: str

    @property
    def key(self) -> str:
        return self.spec.fingerprint()

    @property
    def cells(self) -> int:
        return self.plan.points // len(self.spec.seeds)

    @property
    def members(self) -> int:
        return self.plan.points


def _axis_table(a: Axis, field: str, cfg: dict) -> Any:
    """The spec's [axes] value of one side, checked: one line naming the field and what is allowed."""
    k = KNOBS.get(a.key)
    if k is None or a.key not in axis_keys():
        raise ConfigError(f"{field}: {a.key!r} cannot be mapped; allowed {', '.join(axis_keys())}")
    if a.key not in axis_keys(cfg):
        other, values = k.applies
        raise ConfigError(f"{field}: {a.key} has no effect with {other} = {cfg[other]}; allowed "
                          f"{', '.join(axis_keys(cfg))}")
    if a.categorical:
        try:
            values = [k.coerce(v) for v in a.values]
        except ConfigError as e:
            raise ConfigError(f"{field}.values: {e}") from None
        if not values or len(set(values)) != len(values):
            raise ConfigError(f"{field}.values: {list(a.values)!r}; allowed distinct values, one or more of "
                              f"{', '.join(k.allowed())}")
        return values
    ends = []
    for end, v in (("start", a.start), ("stop", a.stop)):
        try:
            ends.append(k.coerce(v))
        except ConfigError as e:
            raise ConfigError(f"{field}.{end}: {e}") from None
    n = a.points
    if not isinstance(n, int) or isinstance(n, bool) or not POINTS[0] <= n <= POINTS[1]:
        raise ConfigError(f"{field}.points: {n!r} is out of range; allowed integers in [{POINTS[0]}, {POINTS[1]}]")
    if ends[0] == ends[1]:
        raise ConfigError(f"{field}: start = stop = {ends[0]:g}; allowed two different ends in {k.describe()}")
    if k.log and min(ends) <= 0:
        raise ConfigError(f"{field}.start: {min(ends):g} on the log axis of {a.key}; allowed numbers > 0 "
                          f"(and {k.describe()})")
    return {"log" if k.log else "lin": [ends[0], ends[1], n]}


def _int_field(v: Any, field: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{field}: {v!r} is out of range; allowed integers in [{lo}, {hi}]")
    return v


def spec_text(cfg: dict, preset: str, req: Request) -> str:
    """The map as an `effgan sweep` spec: the preset, every knob of cfg that differs from it,
    the two axes, the seeds, the steps and a figure."""
    if cfg["target.kind"] == "file":
        raise ConfigError("target.kind: file (your own points) cannot be mapped: a spec cannot carry them; "
                          "allowed the built-in targets")
    if req.x.key == req.y.key:
        raise ConfigError(f"y.key: {req.y.key} is already the x axis; allowed another knob")
    axes = {"x": _axis_table(req.x, "x", cfg), "y": _axis_table(req.y, "y", cfg)}
    seeds = _int_field(req.seeds, "seeds", *SEEDS)
    steps = _int_field(req.steps, "steps", *STEPS)
    ref = resolve(presets.load(preset))
    skip = {req.x.key, req.y.key, "seed", "device", "target.file"}
    fixed = {k: v for k, v in cfg.items() if k not in skip and KNOBS[k].role != "run" and v != ref[k]}
    fixed["compile"] = "auto" if req.compile else False       # auto: an ahead-of-time package, cached on disk
    dumps = json.dumps                    # a JSON scalar or list of scalars is a TOML value
    lines = [f"# the lab's phase map: {req.x.key} x {req.y.key} around the live setting",
             f"name = {dumps('phasemap')}", f"doc = {dumps(f'phase map of {req.x.key} and {req.y.key}')}",
             f"base = {dumps(preset)}", f"seeds = {dumps([cfg['seed'] + i for i in range(seeds)])}",
             f"steps = {steps}", f"record_every = {max(1, steps // RECORDS)}", f"chunk = {CHUNK}",
             f"metrics = {dumps(list(STORED))}", "", "[set]"]
    lines += [f"{dumps(k)} = {dumps(v)}" for k, v in sorted(fixed.items())]
    lines += ["", "[axes]"]
    for side in ("x", "y"):
        a, table = getattr(req, side), axes[side]
        value = dumps(table) if isinstance(table, list) else "{" + ", ".join(
            f"{form} = {dumps(v)}" for form, v in table.items()) + "}"
        lines.append(f"{dumps(a.key)} = {value}")
    fig = _figure_table(req)
    if fig:
        lines += ["", "[[figure]]"] + [f"{k} = {dumps(v)}" for k, v in fig.items()]
    return "\n".join(lines) + "\n"


def _figure_table(req: Request) -> dict:
    """The spec's figure: a phase diagram of two numeric axes, curves over one numeric axis per
    value of a categorical one; none for two categorical axes."""
    num = [a.key for a in (req.x, req.y) if not a.categorical]
    cat = [a.key for a in (req.x, req.y) if a.categorical]
    if len(num) == 2:
        return {"kind": "phase", "metric": "coverage", "x": num[0], "y": num[1], "file": "phasemap.png"}
    if num:
        return {"kind": "curve", "metric": "coverage", "x": num[0], "hue": cat[0], "file": "phasemap.png"}
    return {}


def plan_map(cfg: dict, preset: str, req: Request, limit_bytes: int | None = None) -> MapPlan:
    """Check the request (ranges against the knob table, the work and memory caps) and plan it."""
    text = spec_text(cfg, preset, req)
    spec = parse_spec(text, name="phasemap")
    plan = make_plan(spec, "cpu", CHUNK)
    work = plan.points * spec.config["steps"] * spec.config["particles"]
    if work > MAX_WORK:
        cells = plan.points // len(spec.seeds)
        raise ConfigError(f"map size: {cells} cells x {len(spec.seeds)} seeds x {spec.config['steps']} steps x "
                          f"N = {spec.config['particles']} is {work:.2g} particle-steps; allowed at most "
                          f"{MAX_WORK:.0e} (about a minute of one core): fewer points, seeds or steps")
    if limit_bytes is None:
        limit_bytes = SESSION_BYTES
    size = max(c.size for c in plan.chunks)
    for cfg_g in {json.dumps(c.cfg, sort_keys=True): c.cfg for c in plan.chunks}.values():
        try:
            budget.check(cfg_g, members=size, limit_bytes=limit_bytes)
        except ConfigError as e:
            raise ConfigError(f"map memory: {e}") from None
    return MapPlan(req, spec, plan, text)


# ---------------------------------------------------------------- results
def template(mp: MapPlan) -> xr.Dataset:
    """An empty Dataset in the layout of a sweep's results (`dynamics.sweep.store`): final_<m>
    over (struct axes, hyper axes, seed), NaN / -1 / False until a chunk lands; `done` flags."""
    plan, spec = mp.plan, mp.spec
    kinds = available_metrics()[0]
    fdtype = np.dtype(spec.config["dtype"])
    data = {}
    for m in STORED:
        dt = {"f": fdtype, "b": np.dtype(bool)}.get(kinds[m], np.dtype(np.int64))
        fill = np.nan if dt.kind == "f" else (False if dt.kind == "b" else -1)
        data[f"final_{m}"] = (plan.dims, np.full(plan.shape, fill, dt))
    data["done"] = (plan.dims, np.zeros(plan.shape, bool))
    coords = {}
    for a in spec.axes:
        k = KNOBS[a.key]
        vals = np.asarray([str(v) for v in a.values]) if isinstance(a.values[0], str) else np.asarray(a.values)
        coords[a.key] = (a.key, vals, {"scale": a.scale, "role": a.role, "doc": k.doc, "label": k.label or a.key})
    coords["seed"] = ("seed", np.asarray(spec.seeds))
    attrs = {"name": spec.name, "doc": spec.doc, "config": json.dumps(spec.config, sort_keys=True),
             "spec": spec.source, "fingerprint": spec.fingerprint(),
             "axes": json.dumps([{"key": a.key, "scale": a.scale, "role": a.role} for a in spec.axes]),
             "metrics": json.dumps(list(STORED)), "device": "cpu",
             "update_rule": convention.of(spec.config).rule}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def run_chunk(chunk: Chunk, full: int = 0, cancel: threading.Event | None = None) -> dict[str, np.ndarray]:
    """The chunk's members as one batch -> final_<m> arrays of chunk.shape. `full`: pad the
    batch to this many members (repeating the last; members are independent), so that a fused
    step, compiled for one batch size, is not compiled again for a shorter last chunk."""
    members = list(chunk.members)
    if chunk.cfg["compile"] and full > len(members):
        members += [members[-1]] * (full - len(members))

    def check(_done: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled

    with aot.allow_build(batches=True):     # the map's package serves every later map of this setting
        h = simulate(chunk.cfg, members, sim=simulation(chunk.cfg), progress=check)
    n = chunk.size
    return {f"final_{m}": np.asarray(h.final[m][:n]).reshape(chunk.shape) for m in STORED}


class MapRun:
    """One map being computed in a thread of its own (or found in the cache, done at once).
    `ds` fills chunk by chunk; `version` counts landed chunks; `status` is running, done,
    cancelled or failed (`error`: one line)."""

    def __init__(self, mp: MapPlan, threads: int = THREADS):
        self.mp = mp
        self.threads = threads
        self.lock = threading.Lock()
        self.version = 0
        self.error = ""
        self.seconds = 0.0
        self._cancel = threading.Event()
        self.queued = False                  # waiting for another map to finish
        with _CACHE_LOCK:
            cached = _CACHE.get(mp.key)
            if cached is not None:
                _CACHE.move_to_end(mp.key)
        self.cached = cached is not None
        if cached is not None:
            self.ds, self.done_members, self.status = cached, mp.members, "done"
            self.thread = None
            return
        self.ds, self.done_members, self.status = template(mp), 0, "running"
        self.thread = threading.Thread(target=self._loop, name=f"effgan-phasemap-{next(_ids)}", daemon=True)

    def start(self) -> "MapRun":
        if self.thread is not None and not self.thread.is_alive() and self.status == "running":
            self.thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self.thread is not None and self.thread.is_alive():
            self.thread.join(timeout)
        return self.status != "running"

    @property
    def fraction(self) -> float:
        return self.done_members / self.mp.members

    def _loop(self) -> None:
        torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        plan = self.mp.plan
        full = math.prod(plan.chunk_shape)
        slot = False
        try:
            while not (slot := _SLOT.acquire(timeout=0.1)):
                self.queued = True
                if self._cancel.is_set():
                    raise Cancelled
            self.queued, t0 = False, time.perf_counter()
            for chunk in plan.chunks:
                if self._cancel.is_set():
                    raise Cancelled
                result = run_chunk(chunk, full, self._cancel)
                region = {d: slice(a, b) for d, (a, b) in zip(plan.dims, chunk.region)}
                with self.lock:
                    for name, arr in result.items():
                        self.ds[name][region] = arr
                    self.ds["done"][region] = True
                    self.done_members += chunk.size
                    self.version += 1
            self.seconds = time.perf_counter() - t0
            with _CACHE_LOCK:
                _CACHE[self.mp.key] = self.ds
                while len(_CACHE) > CACHE_MAX:
                    _CACHE.popitem(last=False)
            self.status = "done"
        except Cancelled:
            self.status = "cancelled"
        except Exception as e:  # noqa: BLE001 - a failed map is a message; the live run goes on
            log.warning("the phase map failed", exc_info=True)
            self.error = one_line(e)
            self.status = "failed"
        finally:
            self.seconds = time.perf_counter() - t0
            if slot:
                _SLOT.release()


def cells(ds: xr.Dataset, x: str, y: str) -> dict[str, np.ndarray]:
    """Per cell (y, x), the seed mean of every stored metric (convergence: over the seeds that
    converged; NaN for none) and whether the cell is done; arrays of shape (len y, len x)."""
    out = {}
    done = ds["done"].all("seed").transpose(y, x).values
    for m in STORED:
        da = ds[f"final_{m}"].astype(float)
        if m in ("convergence_step", "diverged_step"):
            da = da.where(da >= 0)
        with warnings.catch_warnings():            # a cell of no converged seed: NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            v = da.mean("seed", skipna=True).transpose(y, x).values
        out[m] = np.where(done, v, np.nan)
    out["done"] = done
    return out


# ---------------------------------------------------------------- exports
def netcdf_bytes(ds: xr.Dataset) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "phasemap.nc"
        write_netcdf(ds, path)
        return path.read_bytes()


FIGURE_FORMATS = ("png", "svg", "pdf")
CAPTION_WIDTH = 90


def describe(ds: xr.Dataset, axes: tuple[str, ...]) -> str:
    """The fixed knobs of a map in a line or two: seeds, steps and every knob off its default."""
    cfg, base = json.loads(ds.attrs["config"]), defaults()
    seeds = [int(s) for s in ds["seed"].values]
    skip = set(axes) | {"seed", "steps", "compile", "device"} | {k for k in KNOBS if KNOBS[k].role == "run"}
    knobs = [f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
             for k, v in cfg.items() if k not in skip and v != base[k]]
    line = " · ".join([f"{len(seeds)} seed{'s' * (len(seeds) > 1)} ({', '.join(map(str, seeds))})",
                       f"{cfg['steps']} steps"] + knobs)
    return "\n".join(textwrap.wrap(line, CAPTION_WIDTH, break_on_hyphens=False))


def figure_bytes(ds: xr.Dataset, req: Request, metric: str, fmt: str = "png") -> bytes:
    """The map as the offline figures draw a sweep (`app.plots.figures`, the figure style),
    titled with the knob values it was run at."""
    from app.plots import figures, style       # HoloViews: loaded when a figure is asked for

    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"format: {fmt!r} is not allowed; allowed {', '.join(FIGURE_FORMATS)}")
    if metric not in COLOURS:
        raise ConfigError(f"metric: {metric!r} is not allowed; allowed {', '.join(COLOURS)}")
    table = _figure_table(req)
    if not table:
        raise ConfigError("figure: two categorical axes have no figure; allowed at least one numeric axis")
    table = {k: v for k, v in table.items() if k not in ("file", "metric")}
    title = describe(ds, (req.x.key, req.y.key))
    done = ds.where(ds["done"]) if not bool(ds["done"].all()) else ds
    obj = figures.figure(done, metric=metric, title=title, **table)
    fig, box = figures.render(obj, "single")
    for ax in fig.axes:
        ax.title.set_fontsize(5.5)
        ax.title.set_wrap(True)
    buf = io.BytesIO()
    style.write(fig, buf, fmt, box, meta=style.metadata(fmt, "effgan phase map", title))
    return buf.getvalue()
