"""Conditional transport with the fixed navigator d = β‖x − y‖² (Zheng & Zhou).

No critic network and no value: the force is −N ∂L_CT/∂x_j with L = ρ·forward + (1 − ρ)·backward,
optionally clipped per particle (ct.max_step, `clip_moves`).
"""
from __future__ import annotations

import math

import torch

from .. import convention
from ..objective import Batch
from ..papers.ct import ct_costs, ct_costs_and_grad
from .contract import Critic, register

Tensor = torch.Tensor


def clip_moves(F: Tensor, hyper, per_particle: bool = False) -> Tensor:
    """F (B, N, d) with each F_j shortened so that (η_G/N)·g1·‖F_j‖ ≤ ct.max_step (0: off;
    η_G·g1·‖F_j‖ under the per-particle `lr.convention`, per_particle).

    (η_G/N)·g1·F_j is particle j's own term of its move x_j += (η_G/N) Σ_k Θ_jk F_k (Θ_jj = g1):
    the whole move for two_number with r = 0, so there the clip is exact; with cross coupling
    it bounds the self term only. Why: unclipped, the first particles to reach a mode own all
    its data and take huge forward-cost steps while the rest lag (ct-balance, ρ = 0.5 stalls).
    """
    cap, N = hyper["ct.max_step"], F.shape[1]
    scale = hyper["lr.gen"] * hyper["kernel.g1"] / (1 if per_particle else N)              # (B,)
    on = (cap > 0) & (scale > 0)
    limit = torch.where(on, cap / torch.where(on, scale, torch.ones_like(scale)), torch.full_like(cap, math.inf))
    norm = F.norm(dim=-1, keepdim=True)                                      # (B, N, 1)
    return F * (limit.view(-1, 1, 1) / norm.clamp_min(1e-30)).clamp(max=1.0)


def _memory(cfg, s):                                          # (B, M, N) plans, (B, M, N, d) differences
    return s.B * s.b * s.M * s.N * (10 + (s.d if s.d <= 8 else 0)), ("particles", "real")


@register("ct", ascent=False, valued=False, memory=_memory)
def conditional_transport(cfg) -> Critic:
    per_particle = convention.of(cfg).per_particle
    def init(gens, d, dtype, device):
        return {"c": torch.zeros(len(gens), dtype=dtype, device=device)}, {}

    def update(p, opt, batch: Batch, hyper):
        return p, opt, -ct_costs(batch.real, batch.fake, hyper["ct.beta"], hyper["ct.rho"])["loss"]

    def force(p, x, real, hyper):
        costs, grad = ct_costs_and_grad(real, x, hyper["ct.beta"], hyper["ct.rho"])
        return costs["loss"], clip_moves(-x.shape[1] * grad, hyper, per_particle)

    return Critic(init, update, force, value=None, value_and_grad=None)
