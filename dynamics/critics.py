"""Critics of the companion papers, each one registry entry of `DISCRIMINATORS`.

* ``f1_neuron``   the F1 (feature-learning) IPM critic: the best unit-norm ReLU neuron
  σ(θ·x̃), x̃ = (x, 1), kept by projected ascent over `critic.restarts` neurons
  (Domingo-Enrich & Mroueh). Witness f = s σ(θ*·x̃), s = sign(E_real − E_fake).
* ``f2_features`` the F2 (fixed-kernel) IPM critic: the arc-cosine kernel MMD. Witness
  h = mean_real k(·, y) − mean_fake k(·, x), normalised to the RKHS unit ball (h / MMD).
* ``ct``          conditional transport with the fixed navigator d = β‖x − y‖² (Zheng & Zhou):
  no critic network; the force is −N ∂L_CT/∂x_j with L = ρ·forward + (1 − ρ)·backward,
  optionally clipped per particle (ct.max_step, `clip_moves`).

Each moves particles uphill on its witness: F_j = ∇f(x_j) (F1), ∇h(x_j) (F2).
"""
from __future__ import annotations

import math

import torch

from .discriminators import DISCRIMINATORS, Batch, Discriminator, Params
from .rng import stacked_normal
from .targets import ON_SPHERE

Tensor = torch.Tensor
F1_STEP = 0.5          # projected-ascent step on the sphere (the research prototype's)


def _aug(x: Tensor) -> Tensor:
    return torch.cat([x, torch.ones_like(x[..., :1])], -1)


def _lift(cfg):
    """Data on the sphere are used as they are (the papers' construction); Euclidean data get
    a bias coordinate x̃ = (x, 1)."""
    return (lambda x: x) if cfg["target.kind"] in ON_SPHERE else _aug


def _unit(t: Tensor) -> Tensor:
    return t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)


# ---------------------------------------------------------------- F1: one neuron
@DISCRIMINATORS.register("f1_neuron")
def f1_neuron(cfg) -> Discriminator:
    R = cfg["critic.restarts"]
    lift = _lift(cfg)
    extra = 0 if cfg["target.kind"] in ON_SPHERE else 1

    def init(gens, d, dtype, device) -> Params:
        theta = _unit(stacked_normal(gens, (R, d + extra), dtype, device))
        return {"theta": theta, "w": theta[:, 0].clone(), "s": torch.ones(len(gens), dtype=dtype, device=device)}

    def value(p, x):
        return p["s"].unsqueeze(1) * torch.relu(lift(x) @ p["w"].unsqueeze(2)).squeeze(2)

    def value_and_grad(p, x):
        z = (lift(x) @ p["w"].unsqueeze(2)).squeeze(2)                    # (B, n)
        D = p["s"].unsqueeze(1) * torch.relu(z)
        g = (p["s"].unsqueeze(1) * (z > 0).to(x.dtype)).unsqueeze(2) * p["w"][:, None, :x.shape[-1]]
        return D, g

    def deltas(yr, yf, th):
        zr, zf = yr @ th.transpose(1, 2), yf @ th.transpose(1, 2)           # (B, n, R)
        return torch.relu(zr).mean(1) - torch.relu(zf).mean(1), zr, zf     # Δ: (B, R)

    def update(p, batch: Batch, hyper):
        """Screen, then one projected-ascent step of every neuron on |Δ(θ)|, Δ = E_real σ − E_fake σ.

        Screening keeps the best R of the current neurons and ± the directions of R fresh data
        points: away from the optimum |Δ| sits below the sampling noise in high d, so ascent
        from random starts alone rarely finds the hidden direction."""
        yr, yf = lift(batch.real), lift(batch.fake)
        k = min(R, yr.shape[1], yf.shape[1])
        cand = torch.cat([p["theta"], _unit(yr[:, :k]), -_unit(yr[:, :k]), _unit(yf[:, :k]), -_unit(yf[:, :k])], 1)
        score = deltas(yr, yf, cand)[0].abs()
        th = cand.gather(1, score.topk(R, dim=1).indices.unsqueeze(2).expand(-1, -1, cand.shape[2]))
        delta, zr, zf = deltas(yr, yf, th)
        grad = ((zr > 0).to(yr.dtype).transpose(1, 2) @ yr) / yr.shape[1] \
            - ((zf > 0).to(yf.dtype).transpose(1, 2) @ yf) / yf.shape[1]    # (B, R, D')
        th = _unit(th + F1_STEP * delta.sign().unsqueeze(2) * grad)
        delta = deltas(yr, yf, th)[0]
        best, idx = delta.abs().max(1)
        rows = torch.arange(th.shape[0], device=th.device)
        return {"theta": th, "w": th[rows, idx], "s": torch.sign(delta[rows, idx])}, best

    return Discriminator(init, value, value_and_grad, ascent=None, update=update)


# ---------------------------------------------------------------- F2: arc-cosine kernel MMD
def arccos_kernel(a: Tensor, b: Tensor) -> Tensor:
    """(B, n, m) degree-1 arc-cosine kernel |a||b|(sin φ + (π − φ) cos φ)/(2π D) on augmented points."""
    na, nb = a.norm(dim=-1), b.norm(dim=-1)
    nn = na.unsqueeze(2) * nb.unsqueeze(1)
    cos = (a @ b.transpose(1, 2) / nn.clamp_min(1e-30)).clamp(-1 + 1e-7, 1 - 1e-7)
    return nn * (torch.sqrt(1 - cos * cos) + (math.pi - torch.acos(cos)) * cos) / (2 * math.pi * a.shape[-1])


@DISCRIMINATORS.register("f2_features")
def f2_features(cfg) -> Discriminator:
    lift = _lift(cfg)

    def _witness(p, x):
        """h(x) = mean_real k(x, y) − mean_fake k(x, x'), with the batch kept in the params."""
        xa = lift(x)
        return arccos_kernel(xa, lift(p["real"])).mean(2) - arccos_kernel(xa, lift(p["fake"])).mean(2)

    def init(gens, d, dtype, device):
        z = torch.zeros(len(gens), 1, d, dtype=dtype, device=device)
        return {"real": z, "fake": z, "mmd": torch.ones(len(gens), dtype=dtype, device=device)}

    def value(p, x):
        return _witness(p, x) / p["mmd"].clamp_min(1e-12).unsqueeze(1)

    def value_and_grad(p, x):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            D = value(p, xg)
            g = torch.autograd.grad(D.sum(), xg)[0]
        return D.detach(), g

    def update(p, batch: Batch, hyper):
        q = {"real": batch.real, "fake": batch.fake, "mmd": p["mmd"]}
        mmd2 = (_witness(q, batch.real).mean(1) - _witness(q, batch.fake).mean(1)).clamp_min(0)
        mmd = mmd2.sqrt()
        return {**q, "mmd": mmd}, mmd

    return Discriminator(init, value, value_and_grad, ascent=None, update=update)


# ---------------------------------------------------------------- conditional transport
def clip_moves(F: Tensor, hyper) -> Tensor:
    """F (B, N, d) with each F_j shortened so that (η_G/N)·g1·‖F_j‖ ≤ ct.max_step (0: off).

    (η_G/N)·g1·F_j is particle j's own term of its move x_j += (η_G/N) Σ_k Θ_jk F_k (Θ_jj = g1):
    the whole move for two_number with r = 0, so there the clip is exact; with cross coupling
    it bounds the self term only. Why: unclipped, the first particles to reach a mode own all
    its data and take huge forward-cost steps while the rest lag (ct-balance, ρ = 0.5 stalls).
    """
    cap, N = hyper["ct.max_step"], F.shape[1]
    scale = hyper["lr.gen"] * hyper["kernel.g1"] / N                        # (B,)
    on = (cap > 0) & (scale > 0)
    limit = torch.where(on, cap / torch.where(on, scale, torch.ones_like(scale)), torch.full_like(cap, math.inf))
    norm = F.norm(dim=-1, keepdim=True)                                      # (B, N, 1)
    return F * (limit.view(-1, 1, 1) / norm.clamp_min(1e-30)).clamp(max=1.0)


@DISCRIMINATORS.register("ct")
def conditional_transport(cfg) -> Discriminator:
    from .papers.ct import ct_costs, ct_costs_and_grad

    def init(gens, d, dtype, device):
        return {"c": torch.zeros(len(gens), dtype=dtype, device=device)}

    def zero(p, x):
        return torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)

    def update(p, batch: Batch, hyper):
        return p, -ct_costs(batch.real, batch.fake, hyper["ct.beta"], hyper["ct.rho"])["loss"]

    def force(p, x, real, hyper):
        costs, grad = ct_costs_and_grad(real, x, hyper["ct.beta"], hyper["ct.rho"])
        return costs["loss"], clip_moves(-x.shape[1] * grad, hyper)

    return Discriminator(init, zero, lambda p, x: (zero(p, x), torch.zeros_like(x)), ascent=None, update=update,
                         force=force)
