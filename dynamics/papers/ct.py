"""Conditional transport with a fixed-temperature navigator (Zheng & Zhou, NeurIPS 2021).

Data x_1..x_M, generated particles y_1..y_N, cost C_ij = ‖x_i − y_j‖², navigator d = β C:

    π→_ij = softmax_j(−β C_ij)   each data point spreads unit mass over the particles
    π←_ij = softmax_i(−β C_ij)   each particle spreads unit mass over the data
    forward  = (1/M) Σ_ij C_ij π→_ij   mode covering: every data point needs a particle near it
    backward = (1/N) Σ_ij C_ij π←_ij   mode seeking: every particle needs data near it
    loss     = ρ · forward + (1 − ρ) · backward

ρ is the covering/seeking dial (code default 0.5). The plans depend on y, so the particle
gradient carries a β-term (Danskin does not apply; see ct_particle_grad).
"""

from __future__ import annotations

from typing import Callable

import torch

from . import check_real


def _check(field: str, v, lo: float, hi: float, lo_open: bool):
    """A float, or a (B,) tensor of per-member values (a sweep); reports the first bad one."""
    if not isinstance(v, torch.Tensor):
        return check_real(field, v, lo, hi, lo_open)
    flat = v.detach().double().flatten()
    bad = ~torch.isfinite(flat) | (flat <= lo if lo_open else flat < lo) | (flat > hi)
    if bad.any():
        check_real(field, flat[bad][0].item(), lo, hi, lo_open)
    return v


def _params(beta, rho):
    return (_check("ct.beta", beta, 0.0, float("inf"), True),
            _check("ct.rho", rho, 0.0, 1.0, False))


def _per_pair(v, like: torch.Tensor):
    """Broadcast a scalar or (B,) parameter against (B, M, N) pair tensors."""
    return v.to(like)[..., None, None] if isinstance(v, torch.Tensor) else v


def _plans(x: torch.Tensor, y: torch.Tensor, beta):
    if x.shape[-1] <= 8:  # exact differences; the (B, M, N, d) temporary is small
        cost = ((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)  # (B, M, N)
    else:  # |x|² + |y|² − 2 x·y: no (B, M, N, d) temporary, smooth at x = y unlike cdist
        cost = ((x * x).sum(-1)[..., :, None] + (y * y).sum(-1)[..., None, :]
                - 2 * x @ y.mT).clamp_min(0)
    logits = -_per_pair(beta, cost) * cost
    return cost, logits.softmax(dim=-1), logits.softmax(dim=-2)


def _costs(cost, fwd, bwd, m: int, n: int, rho) -> dict[str, torch.Tensor]:
    forward = (cost * fwd).sum((-1, -2)) / m
    backward = (cost * bwd).sum((-1, -2)) / n
    rho = rho.to(forward) if isinstance(rho, torch.Tensor) else rho
    return dict(forward=forward, backward=backward, loss=rho * forward + (1 - rho) * backward)


def _grad(cost, fwd, bwd, x, y, beta, rho) -> torch.Tensor:
    m, n = x.shape[-2], y.shape[-2]
    beta, rho = _per_pair(beta, cost), _per_pair(rho, cost)
    f = (cost * fwd).sum(-1, keepdim=True)  # (B, M, 1)
    g = (cost * bwd).sum(-2, keepdim=True)  # (B, 1, N)
    dc = (rho / m) * fwd * (1 - beta * (cost - f)) \
        + ((1 - rho) / n) * bwd * (1 - beta * (cost - g))  # (B, M, N)
    # Σ_i dc_ij 2 (y_j − x_i)
    return 2 * (dc.sum(-2)[..., None] * y - dc.mT @ x)


def ct_costs(x: torch.Tensor, y: torch.Tensor, beta, rho) -> dict[str, torch.Tensor]:
    """Mini-batch CT costs. x: (B, M, d) data, y: (B, N, d) particles (or unbatched);
    beta, rho: floats or (B,) tensors (one value per sweep member).

    Returns dict(forward, backward, loss), each (B,) (or scalar), differentiable in x and y.
    """
    beta, rho = _params(beta, rho)
    return _costs(*_plans(x, y, beta), x.shape[-2], y.shape[-2], rho)


def ct_particle_grad(x: torch.Tensor, y: torch.Tensor, beta, rho) -> torch.Tensor:
    """Analytic ∂loss/∂y_j of ct_costs. x: (B, M, d), y: (B, N, d) -> (B, N, d);
    beta, rho: floats or (B,) tensors.

    ∂L/∂C_ij = (ρ/M) π→_ij [1 − β(C_ij − f_i)] + ((1−ρ)/N) π←_ij [1 − β(C_ij − g_j)],
    f_i = Σ_j C_ij π→_ij, g_j = Σ_i C_ij π←_ij; ∂C_ij/∂y_j = 2 (y_j − x_i).
    """
    beta, rho = _params(beta, rho)
    return _grad(*_plans(x, y, beta), x, y, beta, rho)


def ct_costs_and_grad(x: torch.Tensor, y: torch.Tensor, beta, rho) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(ct_costs, ct_particle_grad) from one pass over the (B, M, N) plans (the engine's force)."""
    beta, rho = _params(beta, rho)
    plans = _plans(x, y, beta)
    return _costs(*plans, x.shape[-2], y.shape[-2], rho), _grad(*plans, x, y, beta, rho)


def ct_particle_flow(y: torch.Tensor, data_fn: Callable[[], torch.Tensor], steps: int, *,
                     beta=4.0, rho=0.5, step_size: float = 0.02,
                     max_step: float = 0.05) -> torch.Tensor:
    """Free particles descending the CT loss against fresh data batches (no networks).

    Each step y_j ← y_j − clip(step_size · N · ∂L/∂y_j, max_step): the N undoes the 1/N of the
    mean so step_size is per particle; the norm clip keeps far particles from overshooting.
    y: (B, N, d); data_fn() -> (B, M, d) fresh data (it owns its generator); beta, rho:
    floats or (B,) tensors. Returns y.
    """
    beta, rho = _params(beta, rho)
    for _ in range(steps):
        v = step_size * y.shape[-2] * ct_particle_grad(data_fn(), y, beta, rho)
        norm = v.norm(dim=-1, keepdim=True)
        y = y - v * (max_step / norm.clamp_min(max_step))
    return y


def mode_coverage(y: torch.Tensor, centers: torch.Tensor, radius: float = 0.1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Modes covered (≥ 1 particle within `radius`) and quality (fraction of particles within
    `radius` of some mode). y: (B, N, d), centers: (K, d) -> (B,) int64, (B,) float."""
    dist = torch.cdist(y, torch.as_tensor(centers).to(y).expand(*y.shape[:-2], -1, -1))
    near = dist < radius  # (B, N, K)
    return near.any(-2).sum(-1), near.any(-1).to(y.dtype).mean(-1)
