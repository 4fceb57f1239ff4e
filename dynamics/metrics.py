"""Observables of a particle cloud, batched over members: x `(B, N, d)` -> `(B,)` tensors.

Cheap ones (`cheap`) are recorded along a run; costly ones (`mmd_rbf`, `sliced_w1`,
`energy_distance`, `grid_divergences`) on request. Definitions follow the research notes §4: a particle sits
on a mode when it is within the target's capture radius of one of the mode's centres; the
mode entropy is taken over captured particles and normalised by log K.
"""
from __future__ import annotations

import math

import torch

from .targets import Target

Tensor = torch.Tensor


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
    if target.kind in ("digits", "file") and target.centers.shape[0] <= 5000:
        out["center_kl"] = center_kl(x, target)
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
        self.seen[near, mode[near]] = True

    @property
    def visited(self) -> Tensor:
        return self.seen.sum(1)


def grid_divergences(x: Tensor, target: Target, bins: int = 30, eps: float = 1e-4,
                     ref: Tensor | None = None) -> dict[str, Tensor]:
    """GAN Lab's KL/JS 'by grid' for 2-D targets: histograms of particles and of a reference
    target sample on a bins×bins grid over the target's extent, ε-smoothed. `(B,)` each."""
    ref = target.sample_fixed(20_000) if ref is None else ref
    lo = ref[:, :2].amin(0) - 3 * max(target.std, 1e-3)
    hi = ref[:, :2].amax(0) + 3 * max(target.std, 1e-3)

    def hist(pts: Tensor) -> Tensor:                                   # (B, n, 2) -> (B, bins²)
        ij = ((pts[..., :2] - lo) / (hi - lo) * bins).floor().long()
        inside = ((ij >= 0) & (ij < bins)).all(-1)
        flat = (ij[..., 0].clamp(0, bins - 1) * bins + ij[..., 1].clamp(0, bins - 1))
        h = torch.zeros(pts.shape[0], bins * bins, dtype=pts.dtype, device=pts.device)
        h.scatter_add_(1, flat, inside.to(pts.dtype))
        h = h + eps
        return h / h.sum(1, keepdim=True)

    p = hist(ref.unsqueeze(0)).expand(x.shape[0], -1)
    q = hist(x)
    m = 0.5 * (p + q)
    kl = (p * (p / q).log()).sum(1)
    js = 0.5 * (p * (p / m).log()).sum(1) + 0.5 * (q * (q / m).log()).sum(1)
    return {"grid_kl": kl, "grid_js": js}


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


def sliced_w1(x: Tensor, y: Tensor, gen: torch.Generator, projections: int = 128) -> Tensor:
    """(B,) average over random directions of the 1-D W1 between projections (quantile
    matching, so x and y may differ in size)."""
    d = x.shape[-1]
    th = torch.randn(projections, d, generator=gen, dtype=torch.float64).to(x)
    th = th / th.norm(dim=1, keepdim=True)
    px = (x @ th.T).sort(1).values                                     # (B, n, P)
    py = (y @ th.T).sort(1).values
    n = max(px.shape[1], py.shape[1])
    qs = (torch.arange(n, dtype=x.dtype, device=x.device) + 0.5) / n

    def at(p, q):
        idx = (q * p.shape[1]).floor().long().clamp_max(p.shape[1] - 1)
        return p[:, idx]
    return (at(px, qs) - at(py, qs)).abs().mean((1, 2))


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """(B,) the energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| (V-statistic; 0 iff x and y are
    the same sample); x `(B, n, d)`, y `(B, m, d)`."""
    return 2 * torch.cdist(x, y).mean((1, 2)) - torch.cdist(x, x).mean((1, 2)) - torch.cdist(y, y).mean((1, 2))


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
