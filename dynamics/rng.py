"""Counter-based random numbers: a draw is a pure function of (member key, counter, stream).

Initial conditions come from one ``torch.Generator`` per member (seeded explicitly). The
per-step streams (fresh real batches, interpolation weights) come from this hash instead, so
that a step is a pure function of the state: a batch member follows exactly the trajectory
it follows alone, a saved state resumes exactly, and no Python loop over members or global
RNG sits in the hot path. Values are identical on CPU and GPU.

The mixer is a 32-bit integer hash (Mueller's 0x45d9f3b) evaluated in int64 so that every
product stays below 2**63 and no overflow behaviour is relied on. The counter (a step
number, shared by a batch) and the stream are folded in Python; per element only one
tensor mix runs, against a cached hashed index table.

`STREAMS` and `COUNTERS` below are the one table of who draws what: every stream id and every
counter range of the code base is named there (tests/test_rng.py checks the ranges are
disjoint and that the code draws nothing else), so a new draw cannot silently repeat another.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

_M32 = 0xFFFFFFFF
_MUL = 0x45D9F3B

STREAMS: dict[str, int] = {
    "sample": 11,        # a target's real points: mode index and Gaussian noise (targets.Target.sample)
    "generators": 13,    # seeds of per-member torch.Generators, for samplers that need torch's distributions
    "mix": 21,           # wgan_gp's interpolation weights between real and fake points (engine)
    "dropout": 23,       # mlp_layers' dropout masks of critic update k of step t, at its batch's counter
}


@dataclasses.dataclass(frozen=True)
class Counters:
    """Counters [start, stop) that one kind of draw uses, in every stream."""
    start: int
    stop: int
    doc: str


COUNTERS: dict[str, Counters] = {
    # steps <= 1e8 and disc.steps <= 1000 (their knobs' bounds) keep t·disc.steps + k below 2**40
    # (disc.steps_first adds a constant shift <= 1000: its extra first updates draw at 0 .. shift − 1)
    "steps": Counters(0, 2**40, "critic update k of step t draws its real batch (and mix) at "
                      "t·disc.steps + k + (disc.steps_first − disc.steps if disc.steps_first else 0)"),
    "fixed": Counters(2**40, 2**40 + 2**31, "reference samples at 2**40 + seed (Target.sample_fixed)"),
    "pairs": Counters(2**41, 2**41 + 1, "the fixed pseudo-supervision targets, drawn once per run"),
    "meter_test": Counters(2**43, 2**44, "the lab meters' held-out batches of step t, at 2**43 + t"),
    "meter_null": Counters(2**44, 2**45, "the lab meters' null batches of step t, at 2**44 + t"),
}


def _mix(h):
    """Avalanche int64 values in [0, 2**32) (tensor or Python int)."""
    h = h ^ (h >> 16)
    h = (h * _MUL) & _M32
    h = h ^ (h >> 16)
    h = (h * _MUL) & _M32
    return h ^ (h >> 16)


def member_keys(seeds, device=None) -> torch.Tensor:
    """(B,) int64 keys from integer seeds."""
    return torch.tensor([_mix(_mix(int(s) & _M32) ^ ((int(s) >> 32) & _M32)) for s in seeds],
                        dtype=torch.int64, device=device)


@functools.lru_cache(maxsize=64)
def _index_table(stream: int, n: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(n, dtype=torch.int64, device=device)
    return _mix(_mix(idx) ^ _mix((stream * 0x632BE5AB + 0x9E3779B9) & _M32)).view(1, n)


def bits(key: torch.Tensor, counter, stream: int, n: int) -> torch.Tensor:
    """(B, n) int64 hashes in [0, 2**32) for members `key (B,)` at an integer counter (a
    Python int, or a 0-d int64 tensor inside a compiled step: the same arithmetic)."""
    c = _mix(_mix(counter & _M32) ^ ((counter >> 32) & _M32) ^ 0x5BD1E995)
    # keys and c are both hashed, so key ^ c only collides for a 2**-32 fraction of pairs;
    # the one mix per element below then decorrelates neighbouring bases and indices
    # under torch.compile the table is traced (and fused) rather than looked up in the cache
    table = (_index_table.__wrapped__ if torch.compiler.is_compiling() else _index_table)(stream, n, key.device)
    return _mix((key ^ c).view(-1, 1) ^ table)


def to_uniform(h: torch.Tensor, dtype) -> torch.Tensor:
    """Hashes -> uniform numbers in the open interval (0, 1)."""
    if dtype == torch.float64:
        return (h.to(dtype) + 0.5) * 2.0**-32
    return ((h >> 8).to(dtype) + 0.5) * 2.0**-24   # 24 bits: exactly representable in float32


def box_muller(u: torch.Tensor) -> torch.Tensor:
    """(..., 2k) uniforms -> (..., k) standard normals."""
    u1, u2 = u.chunk(2, -1)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * torch.pi) * u2)


def uniform(key, counter: int, stream: int, shape, dtype=torch.float32) -> torch.Tensor:
    """(B, *shape) uniform numbers in (0, 1)."""
    n = 1
    for s in shape:
        n *= s
    return to_uniform(bits(key, counter, stream, n), dtype).view(key.shape[0], *shape)


def normal(key, counter: int, stream: int, shape, dtype=torch.float32) -> torch.Tensor:
    """(B, *shape) standard normals (Box–Muller)."""
    n = 1
    for s in shape:
        n *= s
    return box_muller(to_uniform(bits(key, counter, stream, 2 * n), dtype)).view(key.shape[0], *shape)


def generators(seeds) -> list[torch.Generator]:
    """One explicitly seeded CPU torch.Generator per member, for initial conditions."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def stacked_normal(gens: list[torch.Generator], shape, dtype, device) -> torch.Tensor:
    """(B, *shape) normals, member b drawn from gens[b] on the CPU in float64, then moved, so
    initial conditions are the same on every device and in every precision."""
    return torch.stack([torch.randn(*shape, generator=g, dtype=torch.float64) for g in gens]).to(
        device=device, dtype=dtype)
