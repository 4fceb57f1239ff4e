"""GAN losses and discriminator regularisers, as tables of small functions.

Conventions (also in README):
  * the discriminator *maximises*
        J = mean_real j_r(D(y)) + mean_fake j_f(D(x)) − penalty − (wd/2)‖φ‖²
  * the generator minimises L_G = mean_fake h(D(x)); the force on particle j is
        F_j = −N ∂L_G/∂x_j = gen_weight(D(x_j)) ∇_x D(x_j),
    so for the ipm loss F_j = ∇D(x_j) exactly.
  * penalties follow Mescheder et al.: gp0 / r1 / r2 add (γ/2)·E_S‖∇D‖² over the set S
    (real ∪ fake, real, fake); wgan_gp adds γ·E(‖∇D(x̂)‖ − 1)² on real–fake segments.
    With a linear critic and gp0 this gives the damped oscillator with γ_c = 2√(η_G λ̄ / η_D).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as Fn

from .registry import Registry

Tensor = torch.Tensor
Fun = Callable[[Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class Loss:
    j_real: Fun          # per-sample objective on real samples
    j_fake: Fun
    dj_real: Fun         # its derivative in D
    dj_fake: Fun
    h: Fun               # generator loss per fake sample
    gen_weight: Fun      # −h'(D): the force is gen_weight(D) ∇D


LOSSES: Registry[Loss] = Registry("loss")
_one = torch.ones_like

LOSSES.add("ipm", Loss(lambda D: D, lambda D: -D, _one, lambda D: -_one(D), lambda D: -D, _one))
LOSSES.add("ns", Loss(lambda D: -Fn.softplus(-D), lambda D: -Fn.softplus(D),
                      lambda D: torch.sigmoid(-D), lambda D: -torch.sigmoid(D),
                      lambda D: Fn.softplus(-D), lambda D: torch.sigmoid(-D)))
LOSSES.add("minimax", Loss(lambda D: -Fn.softplus(-D), lambda D: -Fn.softplus(D),
                           lambda D: torch.sigmoid(-D), lambda D: -torch.sigmoid(D),
                           lambda D: -Fn.softplus(D), torch.sigmoid))
LOSSES.add("ls", Loss(lambda D: -0.5 * (D - 1) ** 2, lambda D: -0.5 * D**2, lambda D: 1 - D, lambda D: -D,
                      lambda D: 0.5 * (D - 1) ** 2, lambda D: 1 - D))
LOSSES.add("hinge", Loss(lambda D: -torch.relu(1 - D), lambda D: -torch.relu(1 + D),
                         lambda D: (D < 1).to(D.dtype), lambda D: -(D > -1).to(D.dtype),
                         lambda D: -D, _one))


@dataclasses.dataclass(frozen=True)
class Regulariser:
    """Penalty γ · Σ_z ρ_z r(q_z), q = ‖∇_x D(z)‖², over points built from a batch.

    where: which points ("all" = real ∪ fake, "real", "fake", "mix" = interpolates, "none").
    r, dr: the per-point penalty as a function of q and its derivative.
    """
    where: str
    r: Fun
    dr: Fun


REGULARISERS: Registry[Regulariser] = Registry("reg.kind")
_half = lambda q: 0.5 * q                                     # noqa: E731
_dhalf = lambda q: torch.full_like(q, 0.5)                    # noqa: E731
REGULARISERS.add("none", Regulariser("none", _half, _dhalf))
REGULARISERS.add("gp0", Regulariser("all", _half, _dhalf))
REGULARISERS.add("r1", Regulariser("real", _half, _dhalf))
REGULARISERS.add("r2", Regulariser("fake", _half, _dhalf))
REGULARISERS.add("wgan_gp", Regulariser(
    "mix", lambda q: (torch.sqrt(q + 1e-12) - 1) ** 2, lambda q: 1 - 1 / torch.sqrt(q + 1e-12)))
