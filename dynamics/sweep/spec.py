"""A sweep spec: a TOML file naming a base config, the axes, seeds, metrics and figures.

    name = "collapse-phase"          # optional, default: the file's stem
    base = "ring8"                   # a preset (default: the default preset) ...
    config = "base.json"             # ... and/or a JSON config, relative to the spec
    seeds = [1, 2, 3]                # or a count: seeds = 3 means 1, 2, 3
    steps = 4000                     # shortcuts for [set] steps / record.every
    record_every = 100
    metrics = ["modes_covered", "mode_entropy"]   # final values, stored as final_<name>;
                                                  # "spectrum" stores the kernel spectrum
    series = ["modes_covered"]       # time series, stored with a step dimension
    chunk = 16                       # members per batch chunk (default: by device)

    [set]                            # fixed knobs (dotted keys, quoted or as nested tables)
    "target.std" = 0.05

    [axes]                           # one dimension per key, in this order
    "kernel.ratio" = {lin = [0.0, 0.95, 20]}      # start, stop, number of points
    "lr.disc" = {log = [1e-3, 1e-1, 20]}
    "disc.activation" = ["relu", "sigmoid"]      # or a plain list

    [[figure]]                       # drawn after the run (see `effgan figure --help`)
    kind = "phase"
    metric = "modes_covered"
    file = "phase.png"

    [quick]                          # overrides used with --quick (same fields as above)
    seeds = [1]

Every key and value is checked against `dynamics.knobs` (bounds, choices, doc): a bad one
raises ConfigError with one line naming the field and what is allowed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from .. import presets
from ..knobs import KNOBS, ConfigError, resolve, unknown_key
from ..observables import OBSERVABLES
from ..textfile import read_text

FIELDS = ("name", "doc", "base", "config", "seeds", "steps", "record_every", "metrics", "series", "chunk",
          "set", "axes", "figure", "quick")
RANGE_FORMS = ("lin", "log", "values")
NOT_AXES = ("seed", "device")                # seeds have their own field; the device is the runner's
DEFAULT_METRICS = ("modes_covered", "mode_entropy", "high_quality_fraction", "spread", "mean_error", "hops",
                   "modes_visited", "convergence_step")
ALWAYS = ("diverged", "diverged_step")       # a diverged point is data, never an error
SPECTRUM = "spectrum"
# The plan keeps one member dict per grid point (~0.2 kB) and the store one entry per point and
# metric: 250 000 points are ~60 MB of plan and days of CPU time; more is a typo, not a sweep.
MAX_POINTS = 250_000


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept knob: its values (checked, in order) and how they were given (lin/log/list)."""
    key: str
    values: tuple
    scale: str

    @property
    def role(self) -> str:
        return KNOBS[self.key].role


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    doc: str
    config: dict                     # resolved base config (preset, JSON, [set], steps)
    axes: tuple[Axis, ...]
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]         # final metrics, ALWAYS included; may hold SPECTRUM
    series: tuple[str, ...]
    chunk: int | None
    figures: tuple[dict, ...]
    source: str                      # the TOML text
    quick: bool = False

    @property
    def spectrum(self) -> bool:
        return SPECTRUM in self.metrics

    def fingerprint(self) -> str:
        """What fixes the numbers: a resumed sweep must match it (figures may change)."""
        data = {"config": self.config, "axes": [[a.key, list(a.values)] for a in self.axes],
                "seeds": list(self.seeds), "metrics": list(self.metrics), "series": list(self.series)}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_spec(path: str | Path, quick: bool = False) -> Spec:
    """Read and check a TOML spec; `quick` applies its [quick] table."""
    p = Path(path)
    try:
        text = read_text(p, "SPEC", "a TOML sweep spec (examples in assets/sweeps/)")
    except FileNotFoundError:
        raise ConfigError(f"SPEC: {p} does not exist; allowed a TOML sweep spec (examples in assets/sweeps/)") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError):
        raise ConfigError(f"SPEC: cannot read {p}; allowed a TOML sweep spec (examples in assets/sweeps/)") from None
    return parse_spec(text, name=p.stem, root=p.parent, quick=quick)


def parse_spec(text: str, name: str = "sweep", root: Path | None = None, quick: bool = False) -> Spec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"SPEC: not valid TOML ({_one_line(e)}); allowed a TOML sweep spec "
                          "(examples in assets/sweeps/)") from None
    _check_fields(raw, "")
    if quick:
        over = raw.get("quick")
        if over is None:
            raise ConfigError("--quick: the spec has no [quick] table; allowed a spec with one")
        _table(over, "quick")
        _check_fields(over, "quick.")
        if "quick" in over or "name" in over:
            raise ConfigError("quick: cannot set name or quick; allowed the other spec fields")
        raw = {**raw, **over}
    root = root or Path.cwd()

    layers = [presets.load(_str(raw.get("base", presets.DEFAULT), "base"), "base")]
    if "config" in raw:
        cfg_path = root / _str(raw["config"], "config")
        layers.append({k: v for k, v in presets.read_json(cfg_path, "config").items() if not k.startswith("_")})
    fixed = _flatten(_table(raw.get("set", {}), "set"), "set", leaf=lambda v: not isinstance(v, dict))
    for key, value in fixed.items():
        if key not in KNOBS:
            raise unknown_key(key, field=f"set.{key}")
        fixed[key] = _coerce(KNOBS[key], value, key, table="set")
    for field, key in (("steps", "steps"), ("record_every", "record.every")):
        if field in raw:
            try:
                fixed[key] = KNOBS[key].coerce(raw[field])
            except ConfigError as e:                   # name the spec's field, not the knob it sets
                raise ConfigError(f"{field}: {str(e).split(': ', 1)[-1]}") from None
    layers.append(fixed)
    layers.append({"record.snapshots": 0})          # sweeps keep metrics, not particle clouds

    axes = tuple(parse_axis(k, v) for k, v in _flatten(_table(raw.get("axes", {}), "axes"), "axes",
                                                          leaf=_is_range).items())
    for a in axes:
        if a.key in fixed:
            raise ConfigError(f"axes.{a.key}: also fixed in [set]; allowed in one of the two places")
    config = resolve(*layers)

    seeds = _seeds(raw.get("seeds", [config["seed"]]))
    _check_points(axes, seeds)
    targets = sweep_targets(config, axes)
    metrics = _names(raw.get("metrics", list(DEFAULT_METRICS)), "metrics", final=True, targets=targets)
    metrics = tuple(dict.fromkeys(metrics + ALWAYS))
    series = _names(raw.get("series", []), "series", final=False, targets=targets)
    chunk = raw.get("chunk")
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or not 1 <= chunk <= MAX_POINTS):
        raise ConfigError(f"chunk: {chunk!r} is not allowed; allowed an integer in [1, {MAX_POINTS}] (members per "
                          "batch)")
    figures = tuple(_figure(f, i) for i, f in enumerate(_list(raw.get("figure", []), "figure")))
    name = _str(raw.get("name", name), "name")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):       # it names a folder under runs/
        raise ConfigError(f"name: {name!r} is not allowed; allowed letters, digits, '.', '_' and '-', "
                          "starting with a letter or digit")
    spec = Spec(name=name, doc=_str(raw.get("doc", ""), "doc"), config=config,
                axes=axes, seeds=seeds, metrics=metrics, series=series, chunk=chunk, figures=figures,
                source=text, quick=quick)
    if not quick and "quick" in raw:
        _check_quick(text, name, root)
    return spec


def _check_quick(text: str, name: str, root: Path) -> None:
    """A [quick] table is checked with every run, not only when --quick finds it broken."""
    try:
        parse_spec(text, name, root, quick=True)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(("quick", "--quick")) else f"quick.{msg}") from None


def parse_axis(key: str, value: Any) -> Axis:
    """A list, or a table {lin|log = [start, stop, num]} or {values = [...]}, checked against the knob."""
    field = f"axes.{key}"
    if key not in KNOBS:
        raise unknown_key(key, sweepable(), field=field)
    knob = KNOBS[key]
    if key in NOT_AXES or knob.role == "run":
        hint = {"seed": " (use the seeds field)", "steps": " (use the steps field)"}.get(key, "")
        raise ConfigError(f"{field}: cannot be swept{hint}; allowed keys: {', '.join(sweepable())}")
    allowed = "a non-empty list or a table {lin|log = [start, stop, num >= 1]}"
    if isinstance(value, list):
        scale, raw = "list", value
    elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in RANGE_FORMS:
        scale, arg = next(iter(value.items()))
        if scale == "values":
            scale, raw = "list", arg
            if not isinstance(raw, list):
                raise ConfigError(f"{field}: values must be a list; allowed {allowed}")
        else:
            raw = _range(field, scale, arg, knob.kind, allowed)
    else:
        raise ConfigError(f"{field}: {value!r} is not a range; allowed {allowed}")
    if not raw:
        raise ConfigError(f"{field}: empty range; allowed {allowed}")
    values = tuple(_coerce(knob, v, field) for v in raw)
    if len(set(values)) != len(values):
        raise ConfigError(f"{field}: repeated values {list(values)}; allowed distinct values (fewer points "
                          "for integer ranges)")
    return Axis(key, values, scale)


def _check_points(axes, seeds) -> None:
    n = len(seeds)
    for a in axes:
        n *= len(a.values)
    if n > MAX_POINTS:
        sizes = " x ".join(f"{len(a.values)} {a.key}" for a in axes)
        raise ConfigError(f"axes: {n} grid points ({sizes} x {len(seeds)} seeds) is too many; allowed up to "
                          f"{MAX_POINTS} points per sweep")


def sweepable() -> list[str]:
    return [k.name for k in KNOBS.values() if k.role != "run" and k.name not in NOT_AXES]


def available_metrics(targets: tuple[str, ...] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """(final, series): metric name -> numpy dtype kind ('f', 'i', 'b') of what
    `dynamics.run.simulate` records for every target, and for all of `targets` (the target
    kinds a sweep runs: the MNIST scores need a point set), read off `observables.OBSERVABLES`."""
    run = [o for o in OBSERVABLES.values() if o.when in ("step", "end")
           and (o.targets is None or (targets and set(targets) <= set(o.targets)))]
    return ({o.name: o.dtype_kind for o in run}, {o.name: o.dtype_kind for o in run if o.when == "step"})


# ---------------------------------------------------------------- helpers
def _range(field, scale, arg, kind, allowed) -> list:
    if not (isinstance(arg, list) and len(arg) == 3 and all(isinstance(a, (int, float)) and not isinstance(a, bool)
                                                           for a in arg)):
        raise ConfigError(f"{field}: {scale} = {arg!r} is not [start, stop, num]; allowed {allowed}")
    start, stop, num = arg
    if not float(num).is_integer() or num < 1:
        raise ConfigError(f"{field}: empty range ({scale} with num = {num}); allowed {allowed}")
    num = int(num)
    if num > MAX_POINTS:                              # before linspace allocates them
        raise ConfigError(f"{field}: {scale} with num = {num} is too many points; allowed num <= {MAX_POINTS}")
    if scale == "log":
        if start <= 0 or stop <= 0:
            raise ConfigError(f"{field}: log range [{start}, {stop}] is not positive; allowed start, stop > 0")
        vals = np.geomspace(start, stop, num)
    else:
        vals = np.linspace(start, stop, num)
    if kind is int:
        return [int(round(v)) for v in vals]
    return [float(f"{v:.12g}") for v in vals]     # 0.05, not linspace's 0.049999999999999996


def _coerce(knob, v, field, table="axes"):
    try:
        return knob.coerce(v)
    except ConfigError as e:
        raise ConfigError(f"{table}.{e}") from None


def _is_range(v) -> bool:
    return isinstance(v, list) or (isinstance(v, dict) and len(v) == 1 and next(iter(v)) in RANGE_FORMS) \
        or not isinstance(v, dict)


def _flatten(table: dict, field: str, leaf, prefix: str = "") -> dict:
    """TOML's `kernel.ratio = ...` nests tables; join them back into dotted keys."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if leaf(v):
            out[key] = v
        elif isinstance(v, dict) and v:
            out.update(_flatten(v, field, leaf, key + "."))
        else:
            raise ConfigError(f"{field}.{key}: empty table; allowed a value")
    return out


def _check_fields(raw: dict, prefix: str) -> None:
    for k in raw:
        if k not in FIELDS:
            hint = " (knobs go under [set] or [axes])" if k in KNOBS or "." in k else ""
            raise ConfigError(f"{prefix}{k}: unknown spec field{hint}; allowed {', '.join(FIELDS)}")


def _seeds(v) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise ConfigError(f"seeds: {v} is not a count >= 1; allowed a count or a non-empty list of integers")
        if v > MAX_POINTS:
            raise ConfigError(f"seeds: {v} seeds is too many; allowed a count up to {MAX_POINTS}")
        v = list(range(1, v + 1))
    if not isinstance(v, list) or not v:
        raise ConfigError(f"seeds: {v!r} is empty or not a list; allowed a count or a non-empty list of integers")
    seeds = tuple(KNOBS["seed"].coerce(s) if not isinstance(s, bool) else _bad_seed(s) for s in v)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: repeated seeds {list(seeds)}; allowed distinct integers")
    return seeds


def _bad_seed(s):
    raise ConfigError(f"seeds: {s!r} is not an integer; allowed integers in [0, {2**31 - 1}]")


def sweep_targets(config: dict, axes) -> tuple[str, ...]:
    """The target kinds a sweep runs: its config's, or every value of a target.kind axis."""
    return next((tuple(a.values) for a in axes if a.key == "target.kind"), (config["target.kind"],))


def _names(v, field: str, final: bool, targets: tuple[str, ...] = ()) -> tuple[str, ...]:
    names = _list(v, field)
    fin, ser = available_metrics(targets)
    allowed = list(fin) + [SPECTRUM] if final else list(ser)
    out = []
    for n in names:
        n = n.removeprefix("final_") if isinstance(n, str) else n
        if n not in allowed:
            raise ConfigError(f"{field}: unknown metric {n!r}; allowed {', '.join(allowed)}")
        out.append(n)
    return tuple(dict.fromkeys(out))


def _figure(f, i) -> dict:
    _table(f, f"figure[{i}]")
    if "file" not in f or not isinstance(f["file"], str):
        raise ConfigError(f"figure[{i}].file: missing; allowed a file name ending in .png, .svg or .pdf")
    file = f["file"]
    if Path(file).name != file or file in ("", ".", "..") or "\\" in file or "\0" in file:
        raise ConfigError(f"figure[{i}].file: {file[:80]!r} is not a plain file name; allowed a file name "
                          "(no folders) ending in .png, .svg or .pdf, written into --out")
    return dict(f)


def _table(v, field) -> dict:
    if not isinstance(v, dict):
        raise ConfigError(f"{field}: {v!r} is not a table; allowed a TOML table")
    return v


def _list(v, field) -> list:
    if not isinstance(v, list):
        raise ConfigError(f"{field}: {v!r} is not a list; allowed a TOML array")
    return v


def _str(v, field) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{field}: {v!r} is not a string; allowed a string")
    return v


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


