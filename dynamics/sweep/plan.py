"""From a spec to chunks: the grid, grouped by structure, cut into rectangular batches.

Storage dimensions are ordered struct axes, hyper axes, seed. A *group* fixes the struct
axes (one `build`); its members (hyper axes × seeds) run as one batch along the engine's
leading axis, cut into *chunks* of at most `chunk` members. A chunk is a rectangular block
of the grid (leading dims of size 1, one dim partly, trailing dims whole), so it is one
region write and one Zarr chunk: a finished chunk is on disk or it is not.

The plan depends only on the spec and the chunk size, never on the number of workers, so
local, process-pool and Dask runs compute the same batches and give the same numbers.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

from ..knobs import ConfigError, resolve
from .spec import Spec

CHUNK_CPU = 16          # small batches stay in cache on a CPU (per-member cost grows past ~32)
CHUNK_GPU = 4096        # one batch per group on a GPU


@dataclasses.dataclass(frozen=True)
class Chunk:
    """cfg: the group's resolved config; members: per-member overrides (seed, hyper keys)
    in C order of the block; region: (start, stop) per storage dim."""
    index: int
    cfg: dict
    members: tuple
    region: tuple

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in self.region)


@dataclasses.dataclass(frozen=True)
class Plan:
    dims: tuple[str, ...]            # storage dims: struct axes, hyper axes, "seed"
    coords: dict                     # dim -> tuple of values
    chunk: int                       # the chunk-size target the plan was cut with
    chunk_shape: tuple[int, ...]
    chunks: tuple[Chunk, ...]
    groups: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.coords[d]) for d in self.dims)

    @property
    def points(self) -> int:
        return math.prod(self.shape)


def default_chunk(device: str) -> int:
    return CHUNK_GPU if device.startswith("cuda") else CHUNK_CPU


def make_plan(spec: Spec, device: str, chunk: int | None = None) -> Plan:
    """Expand the grid; `chunk` (members per batch) defaults to the spec's, then the device's."""
    chunk = int(chunk or spec.chunk or default_chunk(device))
    struct = [a for a in spec.axes if a.role == "struct"]
    hyper = [a for a in spec.axes if a.role == "hyper"]
    dims = tuple(a.key for a in struct + hyper) + ("seed",)
    coords = {a.key: a.values for a in struct + hyper}
    coords["seed"] = spec.seeds
    block = [len(a.values) for a in hyper] + [len(spec.seeds)]

    # the first dim j whose trailing block fits; chunk c entries along it, the rest whole
    trailing = [math.prod(block[j + 1:]) for j in range(len(block))]
    j = next(j for j in range(len(block)) if trailing[j] <= chunk)
    c = min(block[j], max(1, chunk // trailing[j]))
    chunk_shape = (1,) * (len(struct) + j) + (c,) + tuple(block[j + 1:])

    chunks = []
    for sidx in itertools.product(*(range(len(a.values)) for a in struct)):
        over = {a.key: a.values[i] for a, i in zip(struct, sidx)}
        try:
            cfg = resolve(spec.config, over, {"device": device})
        except ConfigError as e:
            where = ", ".join(f"{k} = {v}" for k, v in over.items())
            raise ConfigError(f"axes: at {where}: {e}") from None
        for prefix in itertools.product(*(range(n) for n in block[:j])):
            for start in range(0, block[j], c):
                stop = min(start + c, block[j])
                ranges = [range(p, p + 1) for p in prefix] + [range(start, stop)] + [range(n) for n in block[j + 1:]]
                members = tuple(_member(hyper, spec.seeds, idx) for idx in itertools.product(*ranges))
                region = tuple((i, i + 1) for i in sidx) + tuple((r.start, r.stop) for r in ranges)
                chunks.append(Chunk(len(chunks), cfg, members, region))
    return Plan(dims, coords, chunk, chunk_shape, tuple(chunks), math.prod(len(a.values) for a in struct))


def _member(hyper, seeds, idx) -> dict:
    m = {a.key: a.values[i] for a, i in zip(hyper, idx[:-1])}
    m["seed"] = seeds[idx[-1]]
    return m
