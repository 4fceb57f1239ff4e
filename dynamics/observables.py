"""Observables of a particle cloud, batched over members: x `(B, N, d)` -> `(B,)` tensors.

`OBSERVABLES` at the bottom declares every metric a run, a sweep or the lab can report, once:
its name, one line of doc, when it is measured, its type and the function that computes it.
The lists elsewhere (what `run.simulate` records, the sweep's allowed metrics, the CLI's
summary, the lab's live values) are read from it, and tests check that what the code
measures is what is declared.

A particle sits on a mode when it is within the target's capture radius of one of the mode's
centres (9σ for a Gaussian mode, capped at 0.45 of the spacing of neighbouring modes); a mode is covered
when at least one particle sits on it; the mode entropy is taken over captured particles
only and normalised by log K (1: evenly spread over every mode, 0: all on one).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from .targets import Target

Tensor = torch.Tensor
CENTER_KL_MAX = 5000          # target points the cosine assignment of center_kl compares against


def nearest(x: Tensor, target: Target) -> tuple[Tensor, Tensor]:
    """Distance `(B, N)` to the nearest centre and that centre's mode label `(B, N)`."""
    c = target.centers.unsqueeze(0).expand(x.shape[0], -1, -1)
    dist, idx = torch.cdist(x, c).min(-1)
    return dist, target.labels[idx]


def coverage(x: Tensor, target: Target) -> dict[str, Tensor]:
    """modes_covered (a count), coverage (modes_covered / K), high_quality_fraction, mode_entropy
    (H/log K), mode_kl (KL to uniform)."""
    dist, lab = nearest(x, target)
    hit = (dist < target.capture).to(x.dtype)
    counts = torch.zeros(x.shape[0], target.n_modes, dtype=x.dtype, device=x.device).scatter_add_(1, lab, hit)
    total = counts.sum(1, keepdim=True)
    p = counts / total.clamp_min(1)
    H = (p * -torch.log(p.clamp_min(1e-30))).sum(1)          # +0, not −0, when nothing is captured
    K = target.n_modes
    covered = (counts > 0).sum(1).to(x.dtype)
    return {"modes_covered": covered, "coverage": covered / K,
            "high_quality_fraction": (dist < target.quality).to(x.dtype).mean(1),
            "mode_entropy": H / math.log(K) if K > 1 else (total.squeeze(1) > 0).to(x.dtype),
            "mode_kl": math.log(K) - H}


def center_kl(x: Tensor, target: Target) -> Tensor:
    """(B,) the authors' MNIST collapse score: assign each particle to its nearest target point by
    cosine distance, p = histogram over the K points, KL(p‖uniform) = log K + Σ p log(p + 1e-8).
    0: one particle per point; log K: every particle on one point."""
    c = target.centers / target.centers.norm(dim=1, keepdim=True).clamp_min(1e-12)
    xn = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    idx = (xn @ c.T).argmax(-1)                                               # (B, N)
    K = c.shape[0]
    p = torch.zeros(x.shape[0], K, dtype=x.dtype, device=x.device).scatter_add_(1, idx, torch.ones_like(idx, dtype=x.dtype))
    p = p / x.shape[1]
    return math.log(K) + (p * torch.log(p + 1e-8)).sum(1)


COS_MAX = 1024                # particles the mean |cos| compares (the first ones: particles are exchangeable)
COS_CHUNK = 2**24             # Gram entries formed at once (64 MB in float32), members chunked to fit


def mean_abs_cos(x: Tensor) -> Tensor:
    """(B,) the authors' second MNIST score: the mean |cos| between distinct particles (of the
    first COS_MAX), 1 when the cloud has run far away along one direction, as in their collapse."""
    xn = x[:, :COS_MAX] / x[:, :COS_MAX].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n = xn.shape[1]
    if n < 2:
        return x.new_zeros(x.shape[0])
    step = max(1, COS_CHUNK // (n * n))
    sums = [(xn[b:b + step] @ xn[b:b + step].transpose(1, 2)).abs().sum((1, 2)) for b in range(0, x.shape[0], step)]
    return (torch.cat(sums) - n) / (n * (n - 1))                  # the diagonal's n ones left out


def spread(x: Tensor) -> Tensor:
    """(B,) relative spread S = ⟨|x_i − X|²⟩^{1/2}: small in the collapsed phase."""
    return (x - x.mean(1, keepdim=True)).pow(2).sum(-1).mean(1).sqrt()


def com_distance(x: Tensor, target: Target) -> tuple[Tensor, Tensor]:
    """Distance `(B,)` from the centre of mass to the nearest centre, and that mode `(B,)`."""
    d, lab = nearest(x.mean(1, keepdim=True), target)
    return d[:, 0], lab[:, 0]


def speeds(x_old: Tensor, x_new: Tensor) -> tuple[Tensor, Tensor]:
    """Collective speed |ΔX| and relative speed ⟨|Δu_i|²⟩^{1/2} over one step, `(B,)` each."""
    dx = x_new - x_old
    dX = dx.mean(1, keepdim=True)
    return dX.norm(dim=-1)[:, 0], (dx - dX).pow(2).sum(-1).mean(1).sqrt()


def cheap(x: Tensor, target: Target, x_prev: Tensor | None = None) -> dict[str, Tensor]:
    out = coverage(x, target)
    out["spread"] = spread(x)
    out["spread_rel"] = out["spread"] / target.scale
    out["com_distance"], out["com_mode"] = com_distance(x, target)
    if target.kind in POINT_SETS and target.centers.shape[0] <= CENTER_KL_MAX:
        out["center_kl"] = center_kl(x, target)
    if target.kind in POINT_SETS:
        out["mean_abs_cos"] = mean_abs_cos(x)
    if x_prev is not None:
        out["speed_collective"], out["speed_relative"] = speeds(x_prev, x)
    return out


class HopCounter:
    """Counts mode hops: changes of the mode the centre of mass sits near (within `radius`).

    update(com_distance, com_mode) with `(B,)` tensors; hops and visited are `(B,)`.
    """

    def __init__(self, B: int, n_modes: int, radius: float, device):
        self.radius = radius
        self.last = torch.full((B,), -1, dtype=torch.int64, device=device)
        self.hops = torch.zeros(B, dtype=torch.int64, device=device)
        self.seen = torch.zeros(B, n_modes, dtype=torch.bool, device=device)

    def update(self, dist: Tensor, mode: Tensor) -> None:
        near = dist < self.radius
        changed = near & (self.last >= 0) & (mode != self.last)
        self.hops += changed.to(torch.int64)
        self.last = torch.where(near, mode, self.last)
        # no boolean indexing: no host sync, and one graph under torch.compile
        self.seen |= near.unsqueeze(1) & (torch.arange(self.seen.shape[1], device=mode.device) == mode.unsqueeze(1))

    @classmethod
    def of(cls, radius: float, last: Tensor, hops: Tensor, seen: Tensor) -> "HopCounter":
        """A counter holding the given state (copies of hops and seen), e.g. inside a pure function."""
        c = cls.__new__(cls)
        c.radius, c.last, c.hops, c.seen = radius, last, hops.clone(), seen.clone()
        return c

    @property
    def visited(self) -> Tensor:
        return self.seen.sum(1)


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float | None = None) -> Tensor:
    """(B,) biased MMD² with an RBF kernel (median-heuristic bandwidth by default)."""
    xy = torch.cat([x, y], 1)
    d2 = torch.cdist(xy, xy).pow(2)
    if bandwidth is None:
        bw2 = d2.flatten(1).median(1).values.clamp_min(1e-12).view(-1, 1, 1)
    else:
        bw2 = torch.full((x.shape[0], 1, 1), bandwidth**2, dtype=x.dtype, device=x.device)
    k = torch.exp(-d2 / bw2)
    n = x.shape[1]
    return k[:, :n, :n].mean((1, 2)) + k[:, n:, n:].mean((1, 2)) - 2 * k[:, :n, n:].mean((1, 2))


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """(B,) the energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistic; 0 iff x and y are
    the same sample); x `(B, n, d)`, y `(B, m, d)`."""
    return 2 * torch.cdist(x, y).mean((1, 2)) - torch.cdist(x, x).mean((1, 2)) - torch.cdist(y, y).mean((1, 2))


def sliced_w1(x: Tensor, y: Tensor, gen: torch.Generator, projections: int = 128) -> Tensor:
    """(B,) paper A's average sliced W1 (`papers.ipms.sliced_w1`: exact 1-D W1 over uniform
    directions), imported on first use so a plain run does not load scipy."""
    from .papers.ipms import sliced_w1 as sw1
    return sw1(x, y, gen, projections=projections)


def distances(x: Tensor, y: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
    """Distribution distances of the particles x to a data sample y, `(B,)` each: what to watch
    where the data are not clusters and mode counts mean nothing (e.g. a smooth point set)."""
    return {"mmd": mmd_rbf(x, y), "sliced_w1": sliced_w1(x, y, gen), "energy": energy_distance(x, y)}


def convergence_step(err: Tensor, steps: Tensor, threshold: float) -> Tensor:
    """(B,) first recorded step after which err `(B, T)` stays below threshold; −1 if never."""
    below = err < threshold
    # stays below from t on  <=>  suffix-all over time
    suffix = torch.flip(torch.cummin(torch.flip(below.int(), [1]), 1).values, [1]).bool()
    first = torch.where(suffix.any(1), suffix.int().argmax(1), torch.full_like(suffix[:, 0], -1, dtype=torch.int64))
    return torch.where(first >= 0, steps[first.clamp_min(0)], first)


# ---------------------------------------------------------------- the declaration
@dataclasses.dataclass(frozen=True)
class Observable:
    """One metric. when: "step" -- recorded at every recorded step of a run (a series, and its
    last value as the final one); "end" -- once, at the end of a run (final only); "request" --
    costly, measured on request (the lab's distances to a point set). source: who measures it --
    "cloud" (`cheap`, from the particles), "state" (read off the engine's State), "run"
    (`run.simulate`, across the recorded steps), "data" (`distances`, against a data sample).
    type: "real"; "count" (integer-valued, a float along a run so that NaN can mark a gap, an
    int in a summary); "int"; "bool". fn: the function that computes it (None: read off the
    State). summary: in a run's summary (`effgan run --json`); targets: the target kinds it is
    measured for (None: all); prev: needs the step before (none at step 0)."""
    name: str
    doc: str
    when: str
    source: str
    fn: Callable | None
    type: str = "real"
    summary: bool = True
    targets: tuple[str, ...] | None = None
    prev: bool = False

    @property
    def dtype_kind(self) -> str:
        """numpy dtype kind of its stored values: 'f', 'i' or 'b'."""
        return {"real": "f", "count": "f", "int": "i", "bool": "b"}[self.type]


def _point_sets() -> tuple[str, ...]:
    # the targets that are a set of points (digits, a file): where knobs declares target.samples
    from .knobs import KNOBS
    return tuple(KNOBS["target.samples"].applies[1])


POINT_SETS = _point_sets()
O = Observable
OBSERVABLES: dict[str, Observable] = {o.name: o for o in [
    O("modes_covered", "modes with at least one particle within the capture radius", "step", "cloud", coverage,
      "count"),
    O("modes_total", "K, the target's number of modes", "end", "run", None, "int"),
    O("coverage", "modes_covered / K", "step", "cloud", coverage),
    O("high_quality_fraction", "fraction of particles within the quality radius (3σ) of a centre", "step", "cloud",
      coverage),
    O("mode_entropy", "entropy of the captured particles over the modes, over log K (1: even, 0: one mode)",
      "step", "cloud", coverage),
    O("mode_kl", "KL of the captured particles' mode histogram to uniform (log K − H)", "step", "cloud", coverage),
    O("spread", "⟨|x_i − X|²⟩^½, the cloud's spread about its centre of mass X", "step", "cloud", spread),
    O("spread_rel", "spread over the target's scale (mode spacing): small when collapsed", "step", "cloud", spread),
    O("com_distance", "distance of the centre of mass to the nearest centre", "step", "cloud", com_distance),
    O("center_kl", "the authors' MNIST collapse score: KL(cosine-nearest-point histogram ‖ uniform)", "step",
      "cloud", center_kl, targets=POINT_SETS),
    O("mean_abs_cos", "the authors' second MNIST score: mean |cos| between distinct particles (1: one direction)",
      "step", "cloud", mean_abs_cos, targets=POINT_SETS),
    O("speed_collective", "|ΔX| over the last step: the centre of mass's speed", "step", "cloud", speeds,
      summary=False, prev=True),
    O("speed_relative", "⟨|Δx_i − ΔX|²⟩^½ over the last step: the particles' speed relative to X", "step", "cloud",
      speeds, summary=False, prev=True),
    O("mean_error", "mean particle-to-nearest-centre distance over the target's scale", "step", "run", nearest),
    O("hops", "changes of the mode the centre of mass sits near (mode hopping)", "step", "run", HopCounter,
      "count"),
    O("modes_visited", "modes the centre of mass has sat near", "end", "run", HopCounter, "int"),
    O("loss_d", "the critic's objective at its last update (−J)", "step", "state", None),
    O("loss_g", "the generator loss of the last step", "step", "state", None),
    O("convergence_step", "first recorded step after which mean_error stays below the threshold (−1: never)",
      "end", "run", convergence_step, "int"),
    O("diverged", "the member turned non-finite or ran away (and was frozen)", "end", "state", None, "bool"),
    O("diverged_step", "the step it diverged at (−1: never)", "end", "state", None, "int"),
    O("mmd", "biased MMD² (rbf kernel, median bandwidth) to the data sample", "request", "data", mmd_rbf,
      summary=False),
    O("sliced_w1", "average sliced W1 to the data sample", "request", "data", sliced_w1, summary=False),
    O("energy", "energy distance to the data sample", "request", "data", energy_distance, summary=False),
]}
del O


def names(*, when: tuple[str, ...] = ("step", "end", "request"), source: tuple[str, ...] | None = None,
          summary: bool | None = None, every_target: bool = False) -> tuple[str, ...]:
    """Declared names, in declaration order, filtered by when / source / summary; every_target
    leaves out those measured for some targets only."""
    return tuple(o.name for o in OBSERVABLES.values() if o.when in when and (source is None or o.source in source)
                 and (summary is None or o.summary == summary) and not (every_target and o.targets is not None))


def from_state(state) -> dict[str, Tensor]:
    """The step observables an engine `State` carries (its last losses), `(B,)` each, by name."""
    return {n: getattr(state, n) for n in names(when=("step",), source=("state",))}
