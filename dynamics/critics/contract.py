"""The one critic contract, the registry of critics, and the builder of gradient-ascent critics.

A registry entry (`Kind`) declares its facts and makes a `Critic` for a config; every critic
fills the same fields, so the engine calls `update` and `force` and never asks which it is.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from ..objective import DUAL, LOSSES, OPTIMIZERS, REGULARISERS, Batch, Loss, Params
from ..registry import Registry

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Critic:
    """Parameters are dicts of `(B, ...)` tensors, member b drawn from gens[b].

    * ``init(gens, d, dtype, device) -> (params, opt)``   opt: optimiser state ({} without one)
    * ``update(params, opt, batch, hyper) -> (params, opt, J (B,))``   one critic step on a `Batch`
    * ``force(params, x, real, hyper) -> (loss_g (B,), F (B, N, d))``  the generator loss and the
      pull F_j = −N ∂L_G/∂x_j on every particle
    * ``value(params, x) -> D (B, n)`` and ``value_and_grad(params, x) -> (D, ∇_x D (B, n, d))``,
      None for a critic without a witness function (conditional transport).
    """
    init: Callable[..., tuple[Params, dict]]
    update: Callable[..., tuple[Params, dict, Tensor]]
    force: Callable[..., tuple[Tensor, Tensor]]
    value: Callable[[Params, Tensor], Tensor] | None
    value_and_grad: Callable[[Params, Tensor], tuple[Tensor, Tensor]] | None


@dataclasses.dataclass(frozen=True)
class Kind:
    """A registry entry: ``make(cfg) -> Critic`` and the facts the knobs and the lab read without
    building one. ascent: trained by gradient ascent on J (loss, penalty, optimiser, lr.disc
    matter); valued: has a value D(x), which the loss turns into forces. memory(cfg, s) ->
    (bytes, knobs): the critic's peak bytes for the sizes `s` (`budget.Sizes`) and the knobs that
    drive them, read by `dynamics.budget` before anything is allocated (None: a small default)."""
    make: Callable[[dict], Critic]
    ascent: bool
    valued: bool
    memory: Callable[[dict, object], tuple[int, tuple[str, ...]]] | None = None

    def __call__(self, cfg: dict) -> Critic:
        return self.make(cfg)


CRITICS: Registry[Kind] = Registry("disc.kind")


def register(name: str, *, ascent: bool, valued: bool, memory=None):
    """Decorator: `make(cfg) -> Critic` becomes the critic `name` with its declared facts."""
    def deco(make):
        CRITICS.add(name, Kind(make, ascent, valued, memory))
        return make
    return deco


def kinds_with(fact: str) -> list[str]:
    """Names of the critics that declare `fact` ("ascent" or "valued"), in registry order."""
    return [n for n in CRITICS.names() if getattr(CRITICS[n], fact)]


def value_force(loss: Loss, value_and_grad) -> Callable[..., tuple[Tensor, Tensor]]:
    """The force of a critic with a value: L_G = mean h(D), F_j = gen_weight(D(x_j)) ∇_x D(x_j)."""
    def force(params, x, real, hyper):
        D, g = value_and_grad(params, x)
        return loss.h(D).mean(1), loss.gen_weight(D).unsqueeze(-1) * g
    return force


@dataclasses.dataclass(frozen=True)
class Ascent:
    """What a gradient-ascent critic brings: init(gens, d, dtype, device) -> params, value,
    value_and_grad, and gradient(params, batch, hyper, loss, reg) -> (∂J/∂params, J (B,))
    (closed form or `objective.autograd_ascent`)."""
    init: Callable[..., Params]
    value: Callable[[Params, Tensor], Tensor]
    value_and_grad: Callable[[Params, Tensor], tuple[Tensor, Tensor]]
    gradient: Callable[..., tuple[Params, Tensor]]


def by_ascent(cfg: dict, parts: Ascent) -> Critic:
    """The Critic of a gradient-ascent critic: its gradient of the cfg's objective J, climbed by
    the cfg's optimiser (lr.disc, weight decay), and the force of its value under the loss."""
    loss, reg = LOSSES[cfg["loss"]], REGULARISERS[cfg["reg.kind"]].for_config(cfg)
    opt = OPTIMIZERS[cfg["disc.optimizer"]].for_config(cfg)
    dual = reg.where == "al"            # the augmented Lagrangian's Δλ rides along as a critic parameter

    def init(gens, d, dtype, device):
        params = parts.init(gens, d, dtype, device)
        state = opt.init(params)
        if dual:
            params = {**params, DUAL: torch.zeros(len(gens), dtype=dtype, device=device)}
        return params, state

    def update(params, state, batch: Batch, hyper):
        grads, J = parts.gradient(params, batch, hyper, loss, reg)
        lam = params.get(DUAL)
        dJ_dlam = grads.pop(DUAL, None)
        params, state = opt.step({k: v for k, v in params.items() if k != DUAL}, grads, state,
                                 hyper["lr.disc"], hyper["disc.weight_decay"])
        if dual:                        # λ += ρ c, c = −∂J/∂λ at the parameters before the step, as theirs
            params = {**params, DUAL: lam - reg.rho * dJ_dlam}
        return params, state, J

    return Critic(init, update, value_force(loss, parts.value_and_grad), parts.value, parts.value_and_grad)
