"""Legendre-pair targets on the sphere S^{d-1} (Domingo-Enrich & Mroueh, NeurIPS 2021).

With P = P_{k,d} the degree-k Legendre polynomial in dimension d and e = e_d,

    ν ∝ (P(<e,x>))_+ τ,    μ ∝ (−P(<e,x>))_+ τ,    ν − μ = P(<e,·>) τ / c_+ ,

a pure zonal harmonic. By Funk–Hecke every ReLU neuron sees Δ(θ) = λ_k P(<θ,e>) / c_+, so
F1 = |λ_k|/c_+ while F2 = F1 / sqrt(N_{k,d}): the fixed kernel spreads its unit ball over
all N_{k,d} harmonics of degree k, the feature-learning critic aims at one.

Everything zonal is a 1-D integral in t = <e,x>, density ∝ (1 − t²)^{(d−3)/2}. We integrate
in φ = arccos t, where the weight sin^{d−2} φ is smooth up to the endpoints, and sample t
by inverse CDF on that grid: exact in law, unlike the authors' rejection sampler whose
acceptance rate c_+ is ~1e-3.
"""

from __future__ import annotations

import math

import torch

from . import check_int, check_range, check_real

K_MAX = 50  # the three-term recurrence is stable far beyond this; sampling grids are not.
GRID = 2**14 + 1  # φ-grid for inverse-CDF sampling (odd: contains φ = π/2).
QUAD = 2**16 + 1  # φ-grid for theory quadrature.


def _dim(d) -> int:
    return check_int("target.sphere_dim", d, 3)


def _degree(k, lo: int = 1) -> int:
    return check_int("target.sphere_k", k, lo, K_MAX)


def harmonic_count(k: int, d: int) -> int:
    """N_{k,d} = (2k+d−2)(k+d−3)! / (k!(d−2)!): dimension of degree-k harmonics on S^{d-1}."""
    k, d = _degree(k, lo=0), _dim(d)
    num = (2 * k + d - 2) * math.factorial(k + d - 3)
    return num // (math.factorial(k) * math.factorial(d - 2))


def gegenbauer(k: int, d: int, t: torch.Tensor) -> torch.Tensor:
    """Legendre polynomial P_{k,d}(t) of dimension d, normalised P_{k,d}(1) = 1.

    Three-term recurrence (k+d−2) P_{k+1} = (2k+d−2) t P_k − k P_{k−1}, stable on [−1, 1].
    t: any shape; the result has t's shape, dtype and device.
    """
    k, d = _degree(k, lo=0), _dim(d)
    prev, cur = torch.ones_like(t), t.clone()
    if k == 0:
        return prev
    for j in range(1, k):
        prev, cur = cur, ((2 * j + d - 2) * t * cur - j * prev) / (j + d - 2)
    return cur


def _phi_grid(d: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """φ in [0, π] and the zonal weight sin^{d−2} φ, float64."""
    phi = torch.linspace(0.0, math.pi, size, dtype=torch.float64)
    return phi, torch.sin(phi) ** (d - 2)


def _zonal_mean(f: torch.Tensor, w: torch.Tensor, phi: torch.Tensor) -> float:
    """E_τ f(<e,x>) from values of f on the φ-grid (trapezoid rule)."""
    return float(torch.trapezoid(f * w, phi) / torch.trapezoid(w, phi))


def pair_theory(d: int, k: int = 6) -> dict[str, float]:
    """Noise-free values for the Legendre pair (ν, μ) by 1-D quadrature (Funk–Hecke).

    Returns c_plus (mass of P_+ under τ), f1 (= |λ_k|/c_+, attained at θ = ±e), f2
    (= sqrt(E_θ Δ(θ)²), the arc-cosine MMD), ratio = f1/f2 and n_harmonics = N_{k,d}.
    f2 uses the quadrature of E_τ P² (not the formula 1/N_{k,d}), so ratio = sqrt(N_{k,d})
    is a check, not an identity.
    """
    d, k = _dim(d), _degree(k)
    phi, w = _phi_grid(d, QUAD)
    t = torch.cos(phi)
    p = gegenbauer(k, d, t)
    c_plus = _zonal_mean(p.clamp_min(0), w, phi)
    lam = _zonal_mean(t.clamp_min(0) * p, w, phi)  # Funk–Hecke coefficient of ReLU
    f1 = abs(lam) / c_plus
    f2 = f1 * math.sqrt(_zonal_mean(p * p, w, phi))
    return dict(c_plus=c_plus, f1=f1, f2=f2, ratio=f1 / f2, n_harmonics=harmonic_count(k, d))


def stein_ratio_bound(d: int, k: int = 5, alpha: int = 1) -> float:
    """Lower bound on SD_F1 / SD_F2 for ν ∝ exp(γ P_{k,d}(x_d)) vs μ = τ (uniform):
    sqrt(N_{k,d}) · a / sqrt(2(b + a²)), a = k(d+k−3)/(α+1), b = k(k+d−2)(d+α−2)²/(α+1)².
    """
    d, k = _dim(d), _degree(k)
    alpha = check_int("critic.alpha", alpha, 0, 8)
    a = k * (d + k - 3) / (alpha + 1)
    b = k * (k + d - 2) * (d + alpha - 2) ** 2 / (alpha + 1) ** 2
    return math.sqrt(harmonic_count(k, d)) * a / math.sqrt(2 * (b + a * a))


def _shape(n: int, batch: int | None) -> tuple[int, ...]:
    check_int("target.n", n, 1)
    if batch is not None:
        check_int("batch", batch, 1)
    return (n,) if batch is None else (batch, n)


def _dtype(dtype):
    return torch.get_default_dtype() if dtype is None else dtype


def sample_sphere(n: int, d: int, gen: torch.Generator, *, batch: int | None = None,
                  dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Uniform points on S^{d-1}: normalised Gaussians. Returns (n, d) or (B, n, d)."""
    shape = _shape(n, batch)
    check_int("target.sphere_dim", d, 1)
    g = torch.randn(*shape, d, generator=gen, dtype=torch.float64, device=gen.device)
    return (g / g.norm(dim=-1, keepdim=True)).to(dtype=_dtype(dtype), device=device)


def _sample_zonal(density: torch.Tensor, phi: torch.Tensor, shape, d: int,
                  gen: torch.Generator, dtype, device) -> torch.Tensor:
    """x = (sin φ · u, cos φ), φ by inverse CDF of `density` on the φ-grid, u ~ S^{d−2}."""
    cdf = torch.cat([density.new_zeros(1),
                     torch.cumsum(0.5 * (density[1:] + density[:-1]) * phi.diff(), 0)])
    cdf = cdf / cdf[-1]
    u = torch.rand(shape, generator=gen, dtype=torch.float64, device=gen.device).cpu()
    hi = torch.searchsorted(cdf, u, right=True).clamp(1, len(cdf) - 1)
    lo = hi - 1
    frac = ((u - cdf[lo]) / (cdf[hi] - cdf[lo]).clamp_min(1e-300)).clamp(0, 1)
    ang = phi[lo] + frac * (phi[hi] - phi[lo])  # linear CDF inside each of 2^14 cells
    rest = sample_sphere(shape[-1], d - 1, gen, batch=shape[0] if len(shape) == 2 else None,
                         dtype=torch.float64, device="cpu")  # the φ-grid lives on the CPU
    x = torch.cat([torch.sin(ang)[..., None] * rest, torch.cos(ang)[..., None]], dim=-1)
    return x.to(dtype=_dtype(dtype), device=device)


def sample_sphere_pair(n: int, d: int, k: int, sign: int, gen: torch.Generator, *,
                       batch: int | None = None, dtype: torch.dtype | None = None,
                       device=None) -> torch.Tensor:
    """Exact sample of ν ∝ (P_{k,d}(x_d))_+ τ (sign=+1) or μ ∝ (−P_{k,d}(x_d))_+ τ (sign=−1).

    Returns (n, d) or (B, n, d) on S^{d-1}; the hidden direction is e_d (last coordinate).
    """
    d, k = _dim(d), _degree(k)
    check_range("target.sign", sign, sign in (1, -1), "+1 or -1")
    shape = _shape(n, batch)
    phi, w = _phi_grid(d, GRID)
    density = (sign * gegenbauer(k, d, torch.cos(phi))).clamp_min(0) * w
    return _sample_zonal(density, phi, shape, d, gen, dtype, device)


def sample_stein(n: int, d: int, k: int, gamma: float, gen: torch.Generator, *,
                 batch: int | None = None, dtype: torch.dtype | None = None,
                 device=None) -> torch.Tensor:
    """Exact sample of the Stein target ν ∝ exp(γ P_{k,d}(x_d)) τ. Returns (n, d) or (B, n, d)."""
    d, k = _dim(d), _degree(k)
    gamma = check_real("target.sphere_gamma", gamma, -100.0, 100.0)
    shape = _shape(n, batch)
    phi, w = _phi_grid(d, GRID)
    logp = gamma * gegenbauer(k, d, torch.cos(phi))
    return _sample_zonal(torch.exp(logp - logp.max()) * w, phi, shape, d, gen, dtype, device)


def stein_score(x: torch.Tensor, k: int, gamma: float) -> torch.Tensor:
    """Riemannian score of ν ∝ exp(γ P_{k,d}(x_d)) on S^{d-1}: γ P'_{k,d}(x_d) (e − x_d x).

    P'_{k,d} = k(k+d−2)/(d−1) · P_{k−1,d+2}; (I − x xᵀ) e = e − x_d x projects onto the
    tangent space. x: (..., d) on the sphere -> (..., d).
    """
    d, k = _dim(x.shape[-1]), _degree(k)
    gamma = check_real("target.sphere_gamma", gamma, -100.0, 100.0)
    t = x[..., -1]
    dp = k * (k + d - 2) / (d - 1) * gegenbauer(k - 1, d + 2, t)
    e = torch.zeros_like(x)
    e[..., -1] = 1.0
    return gamma * dp[..., None] * (e - t[..., None] * x)
