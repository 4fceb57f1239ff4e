"""Probability metrics between sample clouds: F1 / F2 IPMs, sliced W1, mixture helpers.

Papers A (Domingo-Enrich & Mroueh) and B (Bai, Ma & Risteski). Every metric takes p: (B, n, D)
and q: (B, m, D) (or unbatched (n, D), (m, D)) and returns (B,) (or a scalar tensor).

* F1 IPM: sup over unit ReLU neurons θ of |E_q σ(θ·x̃) − E_p σ(θ·x̃)| (the F1 ball's extreme
  points are single neurons). Searched by projected gradient ascent with restarts.
* F2 IPM: MMD with the arc-cosine kernel k(x,y) = E_θ σ(θ·x)σ(θ·y), θ uniform on S^{D−1}.
* x̃ = (x, 1) with bias=True (Euclidean data, paper A's Gaussian experiment and paper B's
  class ReLU(vᵀx + b)); bias=False for data that already live on a sphere.

Null baselines: every estimate has a positive floor at finite n. Compare ``fn(p, q)`` with
``fn(p, p2)``, p2 an independent batch from p's distribution (same n); the authors always do.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..knobs import ConfigError
from . import check_int, check_real


def _batched(*xs: torch.Tensor) -> tuple[bool, list[torch.Tensor]]:
    """Add a leading batch axis to unbatched (n, D) clouds; report whether we did."""
    single = xs[0].dim() == 2
    return single, [x[None] if single else x for x in xs]


def _out(single: bool, v: torch.Tensor) -> torch.Tensor:
    return v[0] if single else v


def _augment(x: torch.Tensor, bias: bool) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1) if bias else x


def unit(x: torch.Tensor) -> torch.Tensor:
    """x / ‖x‖ along the last axis (0 stays 0)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def _directions(gen: torch.Generator, shape, like: torch.Tensor) -> torch.Tensor:
    """Uniform directions on the sphere, drawn on gen's device, then moved to like's."""
    g = torch.randn(*shape, generator=gen, dtype=like.dtype, device=gen.device)
    return unit(g).to(like.device)


# --------------------------------------------------------------------------- F1 (neurons)

def neuron_delta(xp: torch.Tensor, xq: torch.Tensor, theta: torch.Tensor):
    """Δ(θ) = mean_q σ(θ·x̃) − mean_p σ(θ·x̃) for theta: (B, R, D') -> (B, R), plus z's."""
    zp, zq = xp @ theta.mT, xq @ theta.mT  # (B, n, R), (B, m, R)
    return zq.clamp_min(0).mean(1) - zp.clamp_min(0).mean(1), zp, zq


def neuron_step(xp: torch.Tensor, xq: torch.Tensor, theta: torch.Tensor, delta: torch.Tensor,
                zp: torch.Tensor, zq: torch.Tensor, lr: float) -> torch.Tensor:
    """One projected-ascent step of every neuron on |Δ(θ)| (delta, zp, zq from `neuron_delta`):
    θ ← unit(θ + lr sign(Δ) ∇Δ), ∇Δ = mean_q 1[z>0] x̃ − mean_p 1[z>0] x̃ (ReLU' is the step)."""
    grad = ((zq > 0).to(xq.dtype).mT @ xq) / xq.shape[1] \
        - ((zp > 0).to(xp.dtype).mT @ xp) / xp.shape[1]  # (B, R, D')
    return unit(theta + lr * delta.sign()[..., None] * grad)


def f1_ipm(p: torch.Tensor, q: torch.Tensor, gen: torch.Generator, *, restarts: int = 64,
           steps: int = 200, lr: float = 0.5, bias: bool = True, candidates: int = 1024
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """F1 IPM: the best unit-norm ReLU neuron, found by projected gradient ascent.

    Ascends |Δ(θ)|, Δ(θ) = mean_q σ(θ·x̃) − mean_p σ(θ·x̃), from `restarts` starts at once
    (vectorised), retracting to the sphere after each step; the best |Δ| seen is kept.
    The starts are the best `restarts` of `candidates` screened by |Δ|: half uniform
    directions, half ± normalised data points of p ∪ q. Screening matters: away from the
    optimum |Δ| can sit below the sampling noise (Legendre pair: |P_{6,d}| < 0.06 for
    |t| < 0.8), so blind uniform starts rarely land in the optimum's basin when d ≳ 8.
    The witness is f = sign(Δ(θ*)) σ(θ*·x̃).

    p: (B, n, D), q: (B, m, D) -> value (B,), theta (B, D') with D' = D + bias.
    """
    check_int("critic.restarts", restarts, 1)
    check_int("critic.steps", steps, 0)
    candidates = max(check_int("critic.candidates", candidates, 0), restarts)
    single, (p, q) = _batched(p, q)
    xp, xq = _augment(p, bias), _augment(q, bias)  # (B, n, D'), (B, m, D')
    nb, dim = xp.shape[0], xp.shape[-1]
    rows = torch.arange(nb, device=xp.device)

    # screen: uniform directions and data directions, keep the best `restarts`
    n_data = candidates // 2
    pool = torch.cat([xp, xq], dim=1)  # (B, n + m, D')
    pick = torch.randint(pool.shape[1], (nb, n_data), generator=gen, device=gen.device)
    sign = torch.randint(2, (nb, n_data, 1), generator=gen, device=gen.device) * 2 - 1
    data_dirs = unit(pool[rows[:, None], pick.to(xp.device)] * sign.to(xp))
    cand = torch.cat([_directions(gen, (nb, candidates - n_data, dim), xp), data_dirs], 1)
    score = torch.cat([neuron_delta(xp, xq, c)[0].abs() for c in cand.split(256, dim=1)], 1)
    theta = cand.gather(1, score.topk(restarts, dim=1).indices[..., None].expand(-1, -1, dim))

    best = xp.new_full((nb,), -1.0)
    best_theta = theta[:, 0].clone()
    for it in range(steps + 1):
        delta, zp, zq = neuron_delta(xp, xq, theta)  # (B, R)
        value, idx = delta.abs().max(dim=1)
        better = value > best
        best = torch.where(better, value, best)
        best_theta = torch.where(better[:, None], theta[rows, idx], best_theta)
        if it == steps:
            break
        theta = neuron_step(xp, xq, theta, delta, zp, zq, lr)
    return _out(single, best), _out(single, best_theta)


def _relu_means(proj: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mean_i σ(s_i + b) for every bias b, exactly, from sorted projections.

    proj: (B, n, A) -> (B, A, nb). Only s_i > −b contribute: a count and a suffix sum.
    """
    s = proj.mT.sort(dim=-1).values.contiguous()  # (B, A, n)
    suffix = torch.cat([s.flip(-1).cumsum(-1).flip(-1), s.new_zeros(*s.shape[:-1], 1)], -1)
    idx = torch.searchsorted(s, (-b).expand(*s.shape[:-1], -1).contiguous(), right=True)
    count = (s.shape[-1] - idx).to(s.dtype)
    return (suffix.gather(-1, idx) + b * count) / s.shape[-1]


def relu_grid_ipm_2d(p: torch.Tensor, q: torch.Tensor, *, angles: int = 720,
                     biases: int = 401, bias_max: float = 2.0) -> torch.Tensor:
    """Paper B's ReLU class {ReLU(vᵀx + b): ‖v‖ = 1, |b| ≤ bias_max} in 2-D, sup brute-forced
    on an (angle × bias) grid, each grid value exact (sorted projections, no sampling).
    p: (B, n, 2), q: (B, m, 2) -> (B,)."""
    check_int("metric.angles", angles, 1)
    check_int("metric.biases", biases, 1)
    single, (p, q) = _batched(p, q)
    a = torch.arange(angles, dtype=p.dtype, device=p.device) * (2 * math.pi / angles)
    v = torch.stack([a.cos(), a.sin()], dim=-1)  # (A, 2)
    b = torch.linspace(-bias_max, bias_max, biases, dtype=p.dtype, device=p.device)
    gap = _relu_means(q @ v.T, b) - _relu_means(p @ v.T, b)  # (B, A, nb)
    return _out(single, gap.abs().flatten(1).max(1).values)


# --------------------------------------------------------------------------- F2 (kernel)

def arccos_gram(a: torch.Tensor, b: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """(B, n, m) |a_i||b_j|(sin φ + (π − φ) cos φ), φ the angle between a_i and b_j: 2πD times
    the arc-cosine kernel. cos φ is clamped to [−1 + margin, 1 − margin]; margin > 0 keeps the
    gradient of acos finite where points coincide (a critic differentiated by autograd)."""
    nn = a.norm(dim=-1)[..., None] * b.norm(dim=-1)[:, None, :]  # (B, n, m)
    cos = ((a @ b.mT) / nn.clamp_min(1e-30)).clamp(-1 + margin, 1 - margin)
    return nn * (torch.sqrt(1 - cos * cos) + (math.pi - torch.acos(cos)) * cos)


def arccos_kernel(a: torch.Tensor, b: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """(B, n, m) degree-1 arc-cosine kernel k(a_i, b_j) = |a||b|(sin φ + (π − φ) cos φ) / (2π D)."""
    return arccos_gram(a, b, margin) / (2 * math.pi * a.shape[-1])


def _arccos_kernel_sum(a: torch.Tensor, b: torch.Tensor, dim: int, chunk: int) -> torch.Tensor:
    """Σ_ij k(a_i, b_j) of `arccos_kernel`, a in chunks of its points. a: (B,n,D), b: (B,m,D)."""
    total = a.new_zeros(a.shape[0])
    for ac in a.split(chunk, dim=1):
        total = total + arccos_gram(ac, b).sum((1, 2))
    return total / (2 * math.pi * dim)


def f2_ipm(p: torch.Tensor, q: torch.Tensor, *, bias: bool = True,
           chunk: int = 1024) -> torch.Tensor:
    """F2 IPM: exact arc-cosine (degree 1) kernel MMD, biased V-statistic, square-rooted.

    Cost O((n + m)² D); ≈ 3·10^8 kernel entries at n = m = 10^4. p: (B,n,D), q: (B,m,D) -> (B,).
    """
    single, (p, q) = _batched(p, q)
    xp, xq = _augment(p, bias), _augment(q, bias)
    n, m, dim = xp.shape[1], xq.shape[1], xp.shape[-1]
    mmd2 = (_arccos_kernel_sum(xp, xp, dim, chunk) / n**2
            + _arccos_kernel_sum(xq, xq, dim, chunk) / m**2
            - 2 * _arccos_kernel_sum(xp, xq, dim, chunk) / (n * m))
    return _out(single, mmd2.clamp_min(0).sqrt())


def f2_ipm_features(p: torch.Tensor, q: torch.Tensor, gen: torch.Generator, *, m: int = 10000,
                    bias: bool = True, chunk: int = 1024) -> torch.Tensor:
    """F2 IPM by m random features θ ~ S^{D'−1} with symmetric neurons σ(±θ·x̃) (authors'
    estimator): d² ≈ mean_θ [½Δ_+(θ)² + ½Δ_−(θ)²]. p: (B,n,D), q: (B,m,D) -> (B,)."""
    check_int("metric.features", m, 1)
    single, (p, q) = _batched(p, q)
    xp, xq = _augment(p, bias), _augment(q, bias)
    theta = _directions(gen, (xp.shape[0], m, xp.shape[-1]), xp)  # (B, m, D')
    total = xp.new_zeros(xp.shape[0])
    for th in theta.split(chunk, dim=1):
        zp, zq = xp @ th.mT, xq @ th.mT  # (B, n, c), (B, m, c)
        d_plus = zq.clamp_min(0).mean(1) - zp.clamp_min(0).mean(1)
        d_minus = (-zq).clamp_min(0).mean(1) - (-zp).clamp_min(0).mean(1)
        total = total + 0.5 * (d_plus**2 + d_minus**2).sum(1)
    return _out(single, (total / m).sqrt())


# --------------------------------------------------------------------------- sliced W1

def w1_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact W1 between 1-D empirical measures: mean |a_(i) − b_(i)| for equal sizes, else
    ∫ |F_a(t) − F_b(t)| dt over the merged breakpoints.

    a: (..., n), b: (..., m) -> (...). Differentiable in the sample positions.
    """
    a, b = a.sort(dim=-1).values, b.sort(dim=-1).values
    if a.shape[-1] == b.shape[-1]:  # equal sizes: quantile functions share their steps
        return (a - b).abs().mean(-1)
    t = torch.cat([a, b], dim=-1).sort(dim=-1).values  # merged breakpoints (..., n + m)
    left = t[..., :-1].contiguous().detach()
    fa = torch.searchsorted(a.detach().contiguous(), left, right=True).to(t.dtype) / a.shape[-1]
    fb = torch.searchsorted(b.detach().contiguous(), left, right=True).to(t.dtype) / b.shape[-1]
    return ((fa - fb).abs() * t.diff(dim=-1)).sum(-1)


def sliced_w1(p: torch.Tensor, q: torch.Tensor, gen: torch.Generator, *,
              projections: int = 256) -> torch.Tensor:
    """Average sliced W1: mean over uniform directions of the exact 1-D W1. -> (B,)."""
    check_int("metric.projections", projections, 1)
    single, (p, q) = _batched(p, q)
    u = _directions(gen, (p.shape[0], projections, p.shape[-1]), p)  # (B, P, D)
    return _out(single, w1_1d(u @ p.mT, u @ q.mT).mean(-1))


def max_sliced_w1(p: torch.Tensor, q: torch.Tensor, gen: torch.Generator, *,
                  projections: int = 256, keep: int = 8, steps: int = 50,
                  lr: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-sliced W1: max over `projections` random directions, then the `keep` best are
    refined by `steps` of projected gradient ascent on the exact 1-D W1 (autograd through
    sorted values). Random directions alone miss a single hidden axis in d ≳ 5.

    p: (B, n, D), q: (B, m, D) -> value (B,), direction (B, D).
    """
    check_int("metric.projections", projections, 1)
    single, (p, q) = _batched(p, q)
    u = _directions(gen, (p.shape[0], projections, p.shape[-1]), p)
    with torch.no_grad():
        w = w1_1d(u @ p.mT, u @ q.mT)  # (B, P)
    idx = w.topk(min(keep, projections), dim=1).indices
    u = torch.gather(u, 1, idx[..., None].expand(-1, -1, p.shape[-1]))  # (B, K, D)
    best, best_u = w.gather(1, idx[:, :1])[:, 0], u[:, 0]
    rows = torch.arange(p.shape[0], device=p.device)
    for _ in range(steps):
        u = u.detach().requires_grad_(True)
        w = w1_1d(u @ p.mT, u @ q.mT)  # (B, K)
        (g,) = torch.autograd.grad(w.sum(), u)
        with torch.no_grad():
            value, i = w.max(dim=1)
            better = value > best
            best = torch.where(better, value, best)
            best_u = torch.where(better[:, None], u[rows, i], best_u)
            g = g - (g * u).sum(-1, keepdim=True) * u  # tangent part
            u = unit(u + lr * g)
    with torch.no_grad():
        w = w1_1d(u @ p.mT, u @ q.mT)
        value, i = w.max(dim=1)
        better = value > best
        best = torch.where(better, value, best)
        best_u = torch.where(better[:, None], u[rows, i], best_u)
    return _out(single, best.detach()), _out(single, best_u.detach())


def w1_assignment(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Exact W1 between equal-size clouds by optimal assignment (scipy, O(n³): n ≲ 2000).
    p, q: (B, n, D) -> (B,). Loops over B on the CPU."""
    from scipy.optimize import linear_sum_assignment        # here: importing the engine loads no scipy
    single, (p, q) = _batched(p, q)
    if p.shape[1] != q.shape[1]:
        raise ConfigError(f"w1_assignment: sizes {p.shape[1]} and {q.shape[1]} differ; "
                         "allowed equal sizes")
    out = []
    for a, b in zip(p.detach().cpu().double(), q.detach().cpu().double()):
        cost = torch.cdist(a, b).numpy()
        r, c = linear_sum_assignment(cost)
        out.append(cost[r, c].mean())
    return _out(single, torch.as_tensor(np.array(out), dtype=p.dtype, device=p.device))


# --------------------------------------------------------------------------- mixtures (B)

def ring_centers(modes: int = 8, radius: float = 2 / 1.414) -> torch.Tensor:
    """Centres on a circle at angles 2πk/modes; default = CT's 8gaussians (2, then /1.414)."""
    check_int("target.modes", modes, 1)
    a = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return radius * torch.stack([a.cos(), a.sin()], dim=-1)  # (modes, 2)


def grid_centers(side: int = 5, spacing: float = 2 / 2.828) -> torch.Tensor:
    """side × side grid centred at 0; default = CT's 25gaussians (2·(i,j), then /2.828)."""
    check_int("target.grid_side", side, 1)
    r = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    return torch.cartesian_prod(r, r)  # (side², 2)


def _log_weights(weights: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(weights, dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ConfigError("target.weights: negative or all-zero; allowed non-negative, sum > 0")
    return torch.log(w / w.sum())  # zero weight -> −inf: a dropped mode


def sample_mixture(n: int, centers: torch.Tensor, std: float, weights: torch.Tensor | None,
                   gen: torch.Generator, *, batch: int | None = None,
                   dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Isotropic Gaussian mixture; weights=None is uniform, zero weights drop modes.
    centers: (K, D) -> samples (n, D) or (B, n, D)."""
    check_int("target.n", n, 1)
    std = check_real("target.std", std, 0.0)
    centers = torch.as_tensor(centers, dtype=torch.float64)
    w = torch.ones(len(centers)) if weights is None else torch.as_tensor(weights)
    prob = _log_weights(w).exp()
    shape = (n,) if batch is None else (batch, n)
    comp = torch.multinomial(prob.to(gen.device), math.prod(shape), replacement=True,
                             generator=gen).cpu()
    noise = torch.randn(*shape, centers.shape[1], generator=gen, dtype=torch.float64,
                        device=gen.device).cpu()
    x = centers[comp].reshape(*shape, -1) + std * noise
    return x.to(dtype=dtype or torch.get_default_dtype(), device=device)


def mixture_log_prob(x: torch.Tensor, centers: torch.Tensor, std: float,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """log density of the isotropic mixture at x: (..., D) -> (...)."""
    std = check_real("target.std", std, 0.0, lo_open=True)
    c = torch.as_tensor(centers).to(x)
    lw = _log_weights(torch.ones(len(c)) if weights is None else weights).to(x)
    dim = x.shape[-1]
    sq = ((x[..., None, :] - c) ** 2).sum(-1)  # (..., K)
    log_norm = -0.5 * dim * math.log(2 * math.pi * std**2)
    return torch.logsumexp(lw - sq / (2 * std**2), dim=-1) + log_norm


def mixture_kl(p_weights: torch.Tensor, q_weights: torch.Tensor, centers: torch.Tensor,
               std: float, gen: torch.Generator, *, n: int = 100_000) -> torch.Tensor:
    """Monte-Carlo KL(p‖q) = E_p[log p − log q] between two isotropic mixtures sharing
    centres and std, float64. Stratified over p's components (n/K draws each, weighted by
    p's weights): no multinomial noise, so KL(p‖p) = 0 exactly and well-separated modes give
    the categorical KL of the weights. A mode dropped by q (weight 0) costs ≈ w_p·Δ²/(2 std²)
    nats, Δ the distance to the nearest kept centre: large but finite.
    """
    check_int("metric.samples", n, 1)
    std = check_real("target.std", std, 0.0, lo_open=True)
    c = torch.as_tensor(centers, dtype=torch.float64)
    wp = _log_weights(p_weights).exp()
    per = max(1, n // len(c))
    noise = torch.randn(len(c), per, c.shape[1], generator=gen, dtype=torch.float64,
                        device=gen.device).cpu()
    x = c[:, None, :] + std * noise  # (K, per, D): `per` draws from every component
    ratio = mixture_log_prob(x, c, std, p_weights) - mixture_log_prob(x, c, std, q_weights)
    return (wp * ratio.mean(-1)).sum()
