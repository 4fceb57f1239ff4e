"""compile = auto: the step as an ahead-of-time compiled package (AOTInductor), cached on disk.

A warm `effgan run` must not pay for the compiler: importing dynamo/inductor and re-tracing the
step costs seconds per process even with torch's caches warm. So the step is exported once
(`torch.export`), compiled into a `.pt2` package and stored under a key of everything the
compiled code depends on (the dynamics source, torch, the structural knobs, the target's
points, the shapes); a later process loads it through torch's C++ loader in milliseconds,
without importing the compiler at all.

The rule: only small problems (`fits`: at most AUTO_MAX_POINTS points, dimension AUTO_MAX_DIM,
where per-operation overhead dominates an eager step; large ones are compute-bound, and their
blocked kernels must not be traced into one graph) and then (`pays`) a cached package is always
used, a missing one is built (tens of seconds, once, with a note) only for a run of one member
whose projected eager stepping is at least AUTO_MIN_S, a run a user is likely to repeat. Sweeps
and experiments, which batch members and vary their configs, stay eager unless compile = true.
Any failure (no C++ compiler, an op torch.export refuses) warns once and runs eagerly: the
same maths.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pathlib
import sys
import threading
import warnings
from typing import Callable

import torch
from torch.utils import _pytree as pytree

from .knobs import KNOBS, hyper_keys, one_line

AUTO_MIN_S = 2.0                 # build a package when the eager stepping would take this long
EAGER_STEP_S = 3e-4              # eager cost of a step at B = 1 (2 shared cores): a fixed part ...
EAGER_POINT_S = 4e-9             # ... and per point·hidden unit·critic update (N + M)·H·disc.steps
BUILD_NOTE = ("compile = auto: compiling this run's {what} once (~{s} s); later runs of this problem "
              "load it at once (compile = false: eager now)")
BUILD_S = 40
CACHE_ENV = "EFFGAN_CACHE_DIR"
AUTO_MAX_POINTS = 2048           # N + M
AUTO_MAX_DIM = 8
AUTO_KEEP = 32                   # packages kept in the cache (~2 MB each), the newest
AUTO_MAX_CONSTANT = 2**16        # elements of the constants (the target's points) baked into a package


def cache_dir() -> pathlib.Path:
    """$EFFGAN_CACHE_DIR, else $XDG_CACHE_HOME/effgan/aot (~/.cache/effgan/aot)."""
    if os.environ.get(CACHE_ENV):
        return pathlib.Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "effgan" / "aot"


def eager_seconds(cfg: dict, batch: int) -> float:
    """Projected eager seconds of cfg's run (the rule's estimate, from BENCHMARKS.md's machine)."""
    M = cfg["real"] or cfg["particles"]
    work = batch * (cfg["particles"] + M) * cfg["disc.width"] * cfg["disc.steps"]
    return cfg["steps"] * (EAGER_STEP_S + EAGER_POINT_S * work)


def fits(cfg: dict, x: torch.Tensor, constants: tuple[torch.Tensor, ...]) -> bool:
    """A problem small enough for the compiled step to pay (see the module's doc), on the CPU
    (the only device this path has been measured on; a GPU step has no host sync anyway)."""
    points = cfg["particles"] + (cfg["real"] or cfg["particles"])
    return (x.device.type == "cpu" and points <= AUTO_MAX_POINTS and x.shape[-1] <= AUTO_MAX_DIM
            and sum(t.numel() for t in constants) <= AUTO_MAX_CONSTANT)


_may_build = threading.local()       # .on: a package may be built; .batches: for a batch too


@contextlib.contextmanager
def allow_build(batches: bool = False):
    """Within it (`run.simulate`: a run of known length), a missing package may be built, for
    one member; with batches, for a batch too (the lab's phase map: the same setting is mapped
    again with other ranges, its live knobs are the package's inputs). A step called elsewhere
    (the lab's live loop, a user's own loop) only loads cached ones: it never stops for the
    compiler unannounced. Nested calls keep what an outer one allowed."""
    before = (getattr(_may_build, "on", False), getattr(_may_build, "batches", False))
    _may_build.on, _may_build.batches = True, before[1] or batches
    try:
        yield
    finally:
        _may_build.on, _may_build.batches = before


def pays(cfg: dict, batch: int, cached: bool) -> bool:
    """Use the compiled step: cached (loading is free), or worth building for this run (a
    simulate() run of one member long enough: `allow_build`)."""
    one = batch == 1 or getattr(_may_build, "batches", False)
    return cached or (getattr(_may_build, "on", False) and one and eager_seconds(cfg, batch) >= AUTO_MIN_S)


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 of the dynamics package's source: any code change makes a new package."""
    h = hashlib.sha256()
    root = pathlib.Path(__file__).parent
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def package_key(what: str, cfg: dict, constants: tuple[torch.Tensor, ...], flat: list[torch.Tensor], spec) -> str:
    """What the compiled step depends on: source, torch, structural knobs (not the live hyper
    knobs, which are inputs, nor run length, seed or compile), constants such as the target's
    points, and the inputs' tree, shapes and dtypes."""
    skip = set(hyper_keys()) | {"seed", "compile"}
    knobs = sorted((k, repr(v)) for k, v in cfg.items() if k not in skip and KNOBS[k].role != "run")
    h = hashlib.sha256(f"{what}|{source_digest()}|{torch.__version__}|{sys.version_info[:2]}|{knobs}|{spec}".encode())
    for t in (*constants, *flat):
        h.update(f"{tuple(t.shape)}{t.dtype}{t.device}".encode())
    for t in constants:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


class _Module(torch.nn.Module):
    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def build_package(fn: Callable, args: tuple, path: pathlib.Path, what: str = "step") -> None:
    """Export fn at args and compile it into the package at path (written atomically)."""
    import torch._inductor                  # the compiler stack: only when a package is built
    print(BUILD_NOTE.format(what=what, s=BUILD_S), file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.pt2")
    with warnings.catch_warnings():                        # torch's own deprecations, not the user's
        warnings.simplefilter("ignore", FutureWarning)
        exported = torch.export.export(_Module(fn), args, strict=False)
        torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp))
    os.replace(tmp, path)
    prune(path.parent, AUTO_KEEP)


def prune(folder: pathlib.Path, keep: int) -> None:
    """Keep the newest `keep` packages: the others are of older code or other problems."""
    for old in sorted(folder.glob("*.pt2"), key=lambda f: f.stat().st_mtime)[:-keep]:
        old.unlink(missing_ok=True)


# pytree's generic flatten and unflatten cost as much as the compiled step itself (~40 µs at
# B = 1); the step's tree is fixed, so both are built once, as closures over its structure.
def flattener(example) -> Callable:
    """leaves(obj) -> list of leaves in pytree's order, for objects shaped like example
    (tuples and dicts of tensors)."""
    if isinstance(example, dict):
        if not any(isinstance(v, (dict, tuple, list)) for v in example.values()):
            keys = list(example)                           # a dict of tensors: one comprehension
            return lambda obj: [obj[k] for k in keys]
        parts = [(k, flattener(v)) for k, v in example.items()]
        return lambda obj: [t for k, f in parts for t in f(obj[k])]
    if isinstance(example, (tuple, list)):
        parts = [flattener(v) for v in example]
        return lambda obj: [t for f, v in zip(parts, obj) for t in f(v)]
    return lambda obj: [obj]


def unflattener(spec) -> Callable:
    """build(iterator of leaves) -> the tree `spec` describes (tuples and dicts)."""
    if spec.is_leaf():
        return next
    kids = [unflattener(c) for c in spec.children()]
    if spec.type is dict:
        keys = spec.context
        return lambda it: {k: f(it) for k, f in zip(keys, kids)}
    if spec.type in (tuple, list):
        return lambda it: spec.type([f(it) for f in kids])
    raise TypeError(f"compile: auto cannot rebuild a {spec.type.__name__} from the compiled step")


def load_package(path: pathlib.Path) -> Callable:
    """call(flat tensors) -> the outputs as fn returned them, via torch's C++ loader (no
    compiler import)."""
    loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
    with warnings.catch_warnings():                        # torch's own spec format deprecations
        warnings.simplefilter("ignore", FutureWarning)
        build = unflattener(pytree.treespec_loads(loader.get_call_spec()[1]))
    return lambda flat: build(iter(loader.boxed_run(flat)))


def aot_or_eager(fn: Callable, cfg: dict, constants: tuple[torch.Tensor, ...],
                 call_args: Callable, what: str = "step") -> Callable:
    """fn, run from a cached AOTInductor package where `pays` says so, else eagerly. Decided
    at the first call (its arguments fix the shapes); call_args maps a call's arguments to
    the exported ones (all tensors)."""
    chosen: list[Callable] = []

    def decide(args) -> Callable:
        targs = call_args(*args)
        if not fits(cfg, targs[0], constants):
            return fn
        flat, spec = pytree.tree_flatten((targs, {}))
        path = cache_dir() / f"{package_key(what, cfg, constants, flat, spec)}.pt2"
        failed = path.with_suffix(".failed")                   # tried before: eager at once, no second warning
        cached = path.exists()
        if failed.exists() or not pays(cfg, targs[0].shape[0], cached):
            return fn
        try:
            if not cached:
                build_package(fn, targs, path, what)
            run = load_package(path)
            run(flat)                                      # a package that cannot run falls back here
        except Exception as err:  # noqa: BLE001  (any compiler or loader failure: eager, never crash)
            warnings.warn(f"compile: auto could not compile the {what} ({one_line(err)}); running it eagerly",
                          RuntimeWarning, stacklevel=4)
            try:
                failed.parent.mkdir(parents=True, exist_ok=True)
                failed.write_text(one_line(err))
            except OSError:
                pass
            return fn
        leaves = flattener(targs)
        return lambda *a: run(leaves(call_args(*a)))

    def call(*args):
        if not chosen:
            chosen.append(decide(args))
        return chosen[0](*args)
    return call
