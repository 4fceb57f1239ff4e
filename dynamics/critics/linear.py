"""The linear critic D(x) = ψ·x + c, ψ = 0 at start: the damped-oscillator model."""
from __future__ import annotations

import torch

from ..objective import Batch, Loss, Params, Regulariser, closed_or_autograd, data_objective, point_weights, points
from .contract import Ascent, by_ascent, register

Tensor = torch.Tensor


def _value(p: Params, x: Tensor) -> Tensor:
    return torch.bmm(x, p["psi"].unsqueeze(2)).squeeze(2) + p["c"].unsqueeze(1)


def _ascent(p: Params, batch: Batch, hyper, loss: Loss, reg: Regulariser):
    """D(x) = ψ·x + c: ∇D = ψ everywhere, so q = ‖ψ‖² at every penalty point."""
    psi = p["psi"]
    D_real, D_fake = _value(p, batch.real), _value(p, batch.fake)
    w, rho = point_weights(batch, loss, reg, D_real, D_fake)
    J = data_objective(loss, D_real, D_fake)
    dpsi = torch.bmm(w.unsqueeze(1), points(batch, reg)).squeeze(1)
    if reg.where != "none":
        q = (psi * psi).sum(-1, keepdim=True).expand_as(rho)
        gamma = hyper["reg.strength"]
        J = J - gamma * (rho * reg.r(q)).sum(1)
        dpsi = dpsi - 2 * (gamma * (rho * reg.dr(q)).sum(1)).unsqueeze(1) * psi
    return {"psi": dpsi, "c": w.sum(1)}, J


def _init(gens, d, dtype, device) -> Params:
    B = len(gens)
    return {"psi": torch.zeros(B, d, dtype=dtype, device=device), "c": torch.zeros(B, dtype=dtype, device=device)}


def parts(cfg) -> Ascent:
    return Ascent(_init, _value, lambda p, x: (_value(p, x), p["psi"].unsqueeze(1).expand_as(x)),
                  closed_or_autograd(_ascent, _value))


def _memory(cfg, s):
    return s.B * s.b * (s.copies * (s.d + 1) + 2 * s.n), s.point_knobs


@register("linear", ascent=True, valued=True, memory=_memory)
def linear(cfg):
    return by_ascent(cfg, parts(cfg))
