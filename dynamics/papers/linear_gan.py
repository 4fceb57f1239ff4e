"""Linear-Gaussian GAN: generalization error, double descent, conditioning (Luzi, Dar &
Baraniuk, arXiv 2106.04003; the model below is our reading, not the paper's text).

Data x ~ N(0, Σ), Σ = AAᵀ + σ²I with A: (d, r), A_ij ~ N(0, 1/r) (so tr Σ ≈ d + dσ²);
n training samples X: (d, n). Generator G(z) = W z, z ~ N(0, I_q), learns N(0, WWᵀ).

* Metric learner: any W with WWᵀ = Σ̂ = XXᵀ/n matches the training distribution, so its
  error W2²(Σ, Σ̂) is the same for every q ≥ rank Σ̂: flat, no double descent.
* Pseudo-supervised learner: fixed codes Z: (q, n), min ‖WZ − X‖²_F; gradient descent from
  W = 0 ends at the min-norm W = X Z⁺. K = ZᵀZ is worst conditioned at q = n
  (Marchenko–Pastur), which gives both the error peak and the slow training there.
"""

from __future__ import annotations

import math

import torch

from ..knobs import ConfigError
from . import check_int, check_real


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD square root via eigh (negative round-off eigenvalues clamped)."""
    evals, evecs = torch.linalg.eigh(s)
    return (evecs * evals.clamp_min(0).sqrt()[..., None, :]) @ evecs.mT


def w2_gaussian(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein (Fréchet) distance between N(0, Σ1) and N(0, Σ2):
    tr Σ1 + tr Σ2 − 2 tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}.  sigma*: (..., d, d) -> (...)."""
    r = _sqrtm_psd(sigma1)
    cross = torch.linalg.eigvalsh(r @ sigma2 @ r).clamp_min(0).sqrt().sum(-1)
    tr = torch.diagonal(sigma1, dim1=-2, dim2=-1).sum(-1) \
        + torch.diagonal(sigma2, dim1=-2, dim2=-1).sum(-1)
    return (tr - 2 * cross).clamp_min(0)


def sample_linear_gaussian(d: int, n: int, r: int, trials: int, gen: torch.Generator, *,
                           sigma: float = 0.0, dtype: torch.dtype = torch.float64
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh (Σ, X) per trial: Σ: (T, d, d), X: (T, d, n) with columns ~ N(0, Σ)."""
    d = check_int("target.dim", d, 1)
    n = check_int("target.n", n, 1)
    r = check_int("target.rank", r, 1, d)
    trials = check_int("sweep.trials", trials, 1)
    sigma = check_real("target.noise", sigma, 0.0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype, device=gen.device)

    a = randn(trials, d, r) / math.sqrt(r)
    cov = a @ a.mT + sigma**2 * torch.eye(d, dtype=dtype, device=gen.device)
    x = a @ randn(trials, r, n) + sigma * randn(trials, d, n)
    return cov, x


def pseudo_supervised_error(d: int, n: int, r: int, q: int, trials: int,
                            gen: torch.Generator, *, sigma: float = 0.0
                            ) -> dict[str, torch.Tensor]:
    """W2² generalization errors for latent dimension q, data and codes redrawn per trial.

    pseudo: W2²(Σ, WWᵀ) with W = X Z⁺ (min-norm interpolator, what GD from 0 reaches);
    metric: W2²(Σ, Σ̂), Σ̂ = XXᵀ/n (every metric learner's interpolators agree).
    Returns dict of (trials,) float64 tensors; take medians across trials (heavy tail at q≈n).
    """
    q = check_int("generator.latent_dim", q, 1)
    cov, x = sample_linear_gaussian(d, n, r, trials, gen, sigma=sigma)
    z = torch.randn(trials, q, n, generator=gen, dtype=x.dtype, device=gen.device)
    w = x @ torch.linalg.pinv(z)  # (T, d, q)
    return dict(pseudo=w2_gaussian(cov, w @ w.mT),
                metric=w2_gaussian(cov, x @ x.mT / x.shape[-1]))


def condition_number(z: torch.Tensor) -> torch.Tensor:
    """κ of the linear NTK K = ZᵀZ over its nonzero spectrum: (s_max / s_min)², with s the
    min(q, n) singular values of Z. z: (..., q, n) -> (...)."""
    s = torch.linalg.svdvals(z)
    return (s[..., 0] / s[..., -1]) ** 2


def marchenko_pastur_condition(q: int, n: int) -> float:
    """Large-size limit of κ(ZᵀZ) for Gaussian Z: ((√q + √n)/(√q − √n))²; inf at q = n."""
    q, n = check_int("generator.latent_dim", q, 1), check_int("target.n", n, 1)
    if q == n:
        return math.inf
    return ((math.sqrt(q) + math.sqrt(n)) / (math.sqrt(q) - math.sqrt(n))) ** 2


def gd_iterations_to_tol(z: torch.Tensor, x: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Iterations of W ← W − η (WZ − X) Zᵀ, W₀ = 0, η = 1/λ_max(ZZᵀ), until the excess loss
    ‖WZ − X‖² − min is ≤ tol × its initial value (for q ≥ n the min is 0).

    Closed form, no loop over iterations: with ZᵀZ = V Λ Vᵀ the residual is
    −X V (I − ηΛ)^t Vᵀ, so the excess loss is Σ_i ‖X v_i‖² (1 − η λ_i)^{2t} over λ_i > 0;
    we bisect on the integer t. z: (..., q, n), x: (..., d, n) -> (...) int64.
    """
    tol = check_real("train.tol", tol, 0.0, 1.0, lo_open=True)
    lam, v = torch.linalg.eigh(z.mT @ z)  # ascending, (..., n)
    lam_max = lam[..., -1:]
    keep = lam > lam_max * (lam.shape[-1] * torch.finfo(lam.dtype).eps)
    c = torch.where(keep, ((x @ v) ** 2).sum(-2), torch.zeros_like(lam))
    log_rho = torch.log((1 - lam / lam_max).abs().clamp_min(1e-300))
    target = tol * c.sum(-1)

    def excess(t):  # (...) int -> (...)
        return (c * torch.exp(2 * t[..., None].to(lam.dtype) * log_rho)).sum(-1)

    hi = torch.ones(c.shape[:-1], dtype=torch.int64, device=c.device)
    while (bad := excess(hi) > target).any():
        if hi.max() > 2**40:
            raise ConfigError("gd_iterations_to_tol: no convergence; allowed full-rank Z")
        hi = torch.where(bad, 2 * hi, hi)
    lo = torch.zeros_like(hi)  # excess(0) = initial > target
    while ((hi - lo) > 1).any():
        mid = (lo + hi) // 2
        ok = excess(mid) <= target
        hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    return hi
