"""The MLP critic D(x) = aᵀσ(… σ(W0 x + b0) …) + c, parameters as plain `(B, ...)` tensors.

One hidden layer has closed-form gradients (gradient penalties included; checked against
autograd in float64 by the tests); deeper MLPs use autograd with a double backward.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from .. import rng
from ..activations import ACTIVATIONS
from ..objective import (Batch, Loss, Params, Regulariser, autograd_ascent, autograd_value_and_grad,
                         closed_or_autograd, data_objective, point_weights, points)
from .contract import Ascent, by_ascent, register

Tensor = torch.Tensor


def _mlp_value(act, depth: int):
    def value(p: Params, x: Tensor) -> Tensor:
        h = x
        for l in range(depth):
            h = act(torch.baddbmm(p[f"b{l}"].unsqueeze(1), h, p[f"W{l}"].transpose(1, 2)))
        return torch.bmm(h, p["a"].unsqueeze(2)).squeeze(2) + p["c"].unsqueeze(1)
    return value


def _mlp_init(width: int, depth: int):
    def init(gens, d, dtype, device) -> Params:
        """W0 ~ N(0, 1/d), b0 ~ N(0, 1), deeper W ~ N(0, 1/H), b = 0, a ~ N(0, 1/H), c = 0."""
        p = {}
        fan_in = d
        for l in range(depth):
            p[f"W{l}"] = rng.stacked_normal(gens, (width, fan_in), dtype, device) / math.sqrt(fan_in)
            p[f"b{l}"] = (rng.stacked_normal(gens, (width,), dtype, device) if l == 0
                          else torch.zeros(len(gens), width, dtype=dtype, device=device))
            fan_in = width
        p["a"] = rng.stacked_normal(gens, (width,), dtype, device) / math.sqrt(width)
        p["c"] = torch.zeros(len(gens), dtype=dtype, device=device)
        return p
    return init


# ---------------------------------------------------------------- the critic's small products
@dataclasses.dataclass(frozen=True)
class Products:
    """The three contractions of the one-hidden-layer critic, with a small axis k (d, 1, 2d+2):
      * affine(Z (B,n,k), Wt (B,k,H), b (B,H) or None) -> Z·Wt + b      (B, n, H)
      * rows(S (B,n,H), Vt (B,k,H)) -> S·Vtᵀ, contracting H            (B, n, k)
      * cols(C (B,n,k), S (B,n,H)) -> Cᵀ·S, contracting n             (B, k, H)
    """
    affine: Callable
    rows: Callable
    cols: Callable


# BLAS: on the CPU a batched matmul whose *small* operand sits on the left is several times
# faster than with it on the right, so results with k columns are formed transposed.
BLAS = Products(
    affine=lambda Z, Wt, b: torch.bmm(Z, Wt) if b is None else torch.baddbmm(b.unsqueeze(1), Z, Wt),
    rows=lambda S, Vt: torch.bmm(Vt, S.transpose(1, 2)).transpose(1, 2),
    cols=lambda C, S: torch.bmm(C.transpose(1, 2).contiguous(), S),
)


def _affine_unrolled(Z, Wt, b):
    out = Z[..., :1] * Wt[:, :1] if b is None else b.unsqueeze(1) + Z[..., :1] * Wt[:, :1]
    for k in range(1, Z.shape[-1]):
        out = out + Z[..., k:k + 1] * Wt[:, k:k + 1]
    return out


# UNROLLED: one broadcast product per small index, every inner loop over H or n. Slow eagerly,
# but torch.compile fuses it into a few vectorised loops with no (B, n, H) temporaries, faster
# than the BLAS calls for small d (BENCHMARKS.md). Used under `compile` for small d, and only
# while tracing: an eager caller of a compile = true critic (the fallback, the lab's force
# arrows and critic field) gets BLAS, the faster form eagerly.
UNROLLED = Products(
    affine=_affine_unrolled,
    rows=lambda S, Vt: torch.stack([(S * Vt[:, k:k + 1]).sum(-1) for k in range(Vt.shape[1])], -1),
    cols=lambda C, S: torch.stack([(C[..., k:k + 1] * S).sum(1) for k in range(C.shape[-1])], 1),
)
UNROLL_MAX_DIM = 8


def products_for(compiled: bool, d: int) -> Products:
    return UNROLLED if compiled and d <= UNROLL_MAX_DIM and torch.compiler.is_compiling() else BLAS


def _aW_t(p: Params) -> Tensor:
    """(B, d, H) (a ⊙ W)ᵀ."""
    return (p["a"].unsqueeze(2) * p["W0"]).transpose(1, 2).contiguous()


def _mlp1_value_and_grad(derivs, compiled: bool):
    def value_and_grad(p: Params, x: Tensor):
        ops = products_for(compiled, x.shape[-1])
        s, s1, _ = derivs(ops.affine(x, p["W0"].transpose(1, 2), p["b0"]))                    # (B, n, H)
        D = ops.rows(s, p["a"].unsqueeze(1)).squeeze(2) + p["c"].unsqueeze(1)
        return D, ops.rows(s1, _aW_t(p))                                                    # ∇D = Wᵀ(a ⊙ σ')
    return value_and_grad


def _mlp1_ascent(derivs, curved: bool, compiled: bool):
    def ascent(p: Params, batch: Batch, hyper, loss: Loss, reg: Regulariser):
        """Closed form for D(x) = aᵀσ(Wx + b) + c with g = ∇_x D = Wᵀ(a ⊙ σ'(u)), q = ‖g‖².

        Per point z: data weight w = ∂J_data/∂D, penalty weight v = γ ρ r'(q). With
        ∂q/∂a_k = 2σ'_k (W_k·g), ∂q/∂W_k = 2a_kσ'_k g + 2a_kσ''_k (W_k·g) z, ∂q/∂b_k = 2a_kσ''_k (W_k·g):
            P = σ'ᵀ(v g), Q = σ'ᵀ(w z), T = v σ'' ⊙ (g Wᵀ)                  (T only if σ'' ≠ 0)
            ∂J/∂a = σᵀw − 2 Σ_j W ⊙ P,   ∂J/∂W = a ⊙ (Q − 2P) − 2 a ⊙ Tᵀz,
            ∂J/∂b = a ⊙ (σ'ᵀw) − 2 a ⊙ Tᵀ1,   ∂J/∂c = Σ w.
        """
        W, a, gamma = p["W0"], p["a"], hyper["reg.strength"]
        M, N = batch.real.shape[1], batch.fake.shape[1]
        d = W.shape[2]
        ops = products_for(compiled, d)
        Wt = W.transpose(1, 2)
        Z = points(batch, reg)                                                             # (B, n, d)
        s, s1, s2 = derivs(ops.affine(Z, Wt, p["b0"]))                                    # (B, n, H)
        D = ops.rows(s, a.unsqueeze(1)).squeeze(2) + p["c"].unsqueeze(1)                   # (B, n)
        D_real, D_fake = D[:, :M], D[:, M:M + N]
        w, rho = point_weights(batch, loss, reg, D_real, D_fake)
        J = data_objective(loss, D_real, D_fake)
        cols = [w.unsqueeze(2) * Z, w.unsqueeze(2)]                                        # right-hand sides of σ'ᵀ(·)
        penal = reg.where != "none"
        if penal:
            g = ops.rows(s1, _aW_t(p))                                                     # (B, n, d)
            q = (g * g).sum(-1)
            J = J - gamma * (rho * reg.r(q)).sum(1)
            v = gamma.unsqueeze(1) * rho * reg.dr(q)                                       # (B, n)
            cols.append(v.unsqueeze(2) * g)
        R = ops.cols(torch.cat(cols, 2), s1)                                               # (B, 2d+1, H)
        Q, sw = R[:, :d], R[:, d]
        da = ops.cols(w.unsqueeze(2), s).squeeze(1)
        dW_t, db = Q, a * sw                                                               # dW_t: (B, d, H) / a
        if penal:
            P = R[:, d + 1:]
            da = da - 2 * (W * P.transpose(1, 2)).sum(-1)
            dW_t = Q - 2 * P
            if curved:
                T = (v.unsqueeze(2) * s2) * ops.affine(g, Wt, None)                       # (B, n, H)
                U = ops.cols(torch.cat([Z, torch.ones_like(Z[..., :1])], 2), T)            # (B, d+1, H)
                dW_t = dW_t - 2 * U[:, :d]
                db = db - 2 * a * U[:, d]
        return {"W0": a.unsqueeze(2) * dW_t.transpose(1, 2), "b0": db, "a": da, "c": w.sum(1)}, J
    return ascent


def parts(cfg) -> Ascent:
    """The MLP's own maths for cfg: closed form for one hidden layer, autograd deeper."""
    act = ACTIVATIONS[cfg["disc.activation"]]
    depth, width = cfg["disc.depth"], cfg["disc.width"]
    value = _mlp_value(act.f, depth)
    if depth == 1:
        compiled = cfg["compile"]
        return Ascent(_mlp_init(width, 1), value, _mlp1_value_and_grad(act.derivs, compiled),
                      closed_or_autograd(_mlp1_ascent(act.derivs, act.curved, compiled), value))
    return Ascent(_mlp_init(width, depth), value,
                  lambda p, x: autograd_value_and_grad(value, p, x),
                  lambda p, batch, hyper, loss, reg: autograd_ascent(value, p, batch, hyper, loss, reg))


def _memory(cfg, s):
    H, depth = cfg["disc.width"], cfg["disc.depth"]
    params = H * s.d + H + (depth - 1) * (H * H + H) + H + 1
    per_layer = 4 if depth == 1 else 12                      # closed form vs. autograd's double backward
    return (s.B * s.b * (params * s.copies * (1 if depth == 1 else 2) + per_layer * depth * s.n * H),
            ("disc.width", "disc.depth", "particles"))


@register("mlp", ascent=True, valued=True, memory=_memory)
def mlp(cfg):
    return by_ascent(cfg, parts(cfg))
