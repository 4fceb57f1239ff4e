"""What the critic maximises, in one place: losses, penalties, the points they are evaluated
on, the autograd ascent, and the optimisers that climb J (weight decay included).

Conventions (also in README):
  * the discriminator *maximises*
        J = mean_real j_r(D(y)) + mean_fake j_f(D(x)) − penalty − (wd/2)‖φ‖²
  * the generator minimises L_G = mean_fake h(D(x)); the force on particle j is
        F_j = −N ∂L_G/∂x_j = gen_weight(D(x_j)) ∇_x D(x_j),
    so for the ipm loss F_j = ∇D(x_j) exactly.
  * penalties follow Mescheder et al.: gp0 / r1 / r2 add (γ/2)·E_S‖∇D‖² over the set S
    (real ∪ fake, real, fake); wgan_gp adds γ·E(‖∇D(x̂)‖ − 1)² on real–fake segments.
    With a linear critic and gp0 this gives the damped oscillator with γ_c = 2√(η_G λ̄ / η_D).
  * weight decay is the optimiser's: the step climbs ∂J/∂φ − wd·φ (`OPTIMIZERS`). For adam this
    is torch's `Adam(weight_decay=wd)` (L2 added to the gradient before the moments), not AdamW.
  * `sobolev` is the augmented-Lagrangian Sobolev/Fisher IPM of Mroueh et al.'s descent code,
        J = data − λ c − (ρ/2) c²,   c = E_q‖∇_x f‖²·s + α Var_q f − 1,   λ = γ + Δλ,
    with γ = reg.strength (their λ0), s = 1/N² (their ∇ of the batch mean) or 1, and the dual
    step Δλ += ρ c after every critic update (`DUAL`, a critic parameter `by_ascent` steps).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as Fn

from . import rng
from .registry import Registry

Tensor = torch.Tensor
Fun = Callable[[Tensor], Tensor]
Params = dict[str, Tensor]


# ---------------------------------------------------------------- losses
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


# ---------------------------------------------------------------- penalties
@dataclasses.dataclass(frozen=True)
class Regulariser:
    """Penalty γ · Σ_z ρ_z r(q_z), q = ‖∇_x D(z)‖², over points built from a batch.

    where: which points ("all" = real ∪ fake, "real", "fake", "mix" = interpolates, "none"),
    or "al": the augmented Lagrangian (`augmented_lagrangian`), not a per-point penalty, which
    closed-form critics leave to autograd (`closed_or_autograd`).
    r, dr: the per-point penalty as a function of q and its derivative.
    alpha, rho, batch_mean: the augmented Lagrangian's α, ρ and scale (`for_config` sets them).
    """
    where: str
    r: Fun
    dr: Fun
    alpha: float = 0.0
    rho: float = 0.0
    batch_mean: bool = True

    def for_config(self, cfg) -> "Regulariser":
        if self.where != "al":
            return self
        return dataclasses.replace(self, alpha=cfg["reg.alpha"], rho=cfg["reg.rho"], batch_mean=cfg["reg.batch_mean"])


REGULARISERS: Registry[Regulariser] = Registry("reg.kind")
_half = lambda q: 0.5 * q                                     # noqa: E731
_dhalf = lambda q: torch.full_like(q, 0.5)                    # noqa: E731
REGULARISERS.add("none", Regulariser("none", _half, _dhalf))
REGULARISERS.add("gp0", Regulariser("all", _half, _dhalf))
REGULARISERS.add("r1", Regulariser("real", _half, _dhalf))
REGULARISERS.add("r2", Regulariser("fake", _half, _dhalf))
REGULARISERS.add("wgan_gp", Regulariser(
    "mix", lambda q: (torch.sqrt(q + 1e-12) - 1) ** 2, lambda q: 1 - 1 / torch.sqrt(q + 1e-12)))
REGULARISERS.add("sobolev", Regulariser("al", lambda q: q, torch.ones_like))   # r = q: its ‖∇D‖² term
DUAL = "al_dlambda"          # the critic parameter Δλ (B,) of the augmented Lagrangian: λ = γ + Δλ


# ---------------------------------------------------------------- the points J is evaluated on
@dataclasses.dataclass(frozen=True)
class Batch:
    """real: `(B, M, d)`; fake: `(B, N, d)`; mix: `(B, N, d)` interpolates for wgan_gp, or None;
    key `(B,)` and counter: the batch's place in the random streams (for dropout masks), or None."""
    real: Tensor
    fake: Tensor
    mix: Tensor | None = None
    key: Tensor | None = None
    counter: object = None


def batches(reg: Regulariser, N: int, M: int, stream: int, dtype, device) -> Callable[..., Batch]:
    """make(real, fake, key, counter) -> Batch. For wgan_gp the interpolates
    x̂_j = ε_j y_(j mod M) + (1 − ε_j) x_j, ε_j ~ U(0, 1) from random stream `stream`."""
    index = torch.arange(N, device=device) % M

    def make(real: Tensor, fake: Tensor, key: Tensor, counter) -> Batch:
        mix = None
        if reg.where == "mix":
            eps = rng.uniform(key, counter, stream, (N, 1), dtype)
            mix = eps * real[:, index] + (1 - eps) * fake
        return Batch(real, fake, mix, key, counter)
    return make


def points(batch: Batch, reg: Regulariser) -> Tensor:
    """(B, n, d) all points the objective touches: real, fake and, for wgan_gp, interpolates."""
    return torch.cat([batch.real, batch.fake] + ([batch.mix] if reg.where == "mix" else []), 1)


def point_weights(batch: Batch, loss: Loss, reg: Regulariser, D_real: Tensor, D_fake: Tensor):
    """Per-point data weights w = ∂J_data/∂D and penalty masses ρ on the points
    Z = [real, fake, (mix)] of `points`. Returns w `(B, n)`, rho `(B, n)`.
    """
    M, N = batch.real.shape[1], batch.fake.shape[1]
    w = torch.cat([loss.dj_real(D_real) / M, loss.dj_fake(D_fake) / N], 1)
    ref = D_real.new_zeros(())
    rho_real = {"all": 1.0 / (M + N), "real": 1.0 / M}.get(reg.where, 0.0)
    rho_fake = {"all": 1.0 / (M + N), "fake": 1.0 / N}.get(reg.where, 0.0)
    rho = torch.cat([(ref + rho_real).expand_as(D_real), (ref + rho_fake).expand_as(D_fake)], 1)
    if reg.where == "mix":
        n = batch.mix.shape[1]
        w = torch.cat([w, w.new_zeros(w.shape[0], n)], 1)
        rho = torch.cat([rho, rho.new_full((rho.shape[0], n), 1.0 / n)], 1)
    return w, rho


def data_objective(loss: Loss, D_real: Tensor, D_fake: Tensor) -> Tensor:
    """(B,) mean_real j_r + mean_fake j_f."""
    return loss.j_real(D_real).mean(1) + loss.j_fake(D_fake).mean(1)


# ---------------------------------------------------------------- ∂J/∂φ for any differentiable critic
def augmented_lagrangian(loss: Loss, D_real: Tensor, D_fake: Tensor, fake: Tensor, lam: Tensor,
                         reg: Regulariser) -> Tensor:
    """(B,) J = data − λc − (ρ/2)c², c = s·E_q‖∇f‖² + α Var_q f − 1, from D at the real points and
    at the fake points `fake` (which D_fake must be differentiable in). s = 1/N² (batch_mean: the
    authors' code takes ∇_x of the batch mean E_q f, so each ‖∇‖² carries 1/N²) or 1."""
    n = D_fake.shape[1]
    g = torch.autograd.grad(D_fake.sum(), fake, create_graph=True)[0]
    sobolev = (g * g).sum(-1).mean(1) / (n * n if reg.batch_mean else 1)
    fisher = (D_fake * D_fake).mean(1) - D_fake.mean(1) ** 2                  # Var_q f, biased as theirs
    c = sobolev + reg.alpha * fisher - 1
    return data_objective(loss, D_real, D_fake) - lam * c - 0.5 * reg.rho * c * c


def autograd_ascent(value, params: Params, batch: Batch, hyper, loss: Loss, reg: Regulariser, value_of=None):
    """(∂J/∂params, J (B,)) by autograd (double backward for the penalty). Any `value` works.

    value_of(p, part, x): D at the points x of part "real", "fake", "all" or "mix" of the batch,
    for a critic whose training pass differs from `value` (dropout masks per point); default
    value(p, x). With the augmented Lagrangian, params may hold DUAL (Δλ): its entry is ∂J/∂Δλ = −c."""
    gamma = hyper["reg.strength"]
    at = value_of or (lambda p, part, x: value(p, x))
    with torch.enable_grad():
        p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        if reg.where == "al":
            fake = batch.fake.detach().requires_grad_(True)
            J = augmented_lagrangian(loss, at(p, "real", batch.real), at(p, "fake", fake), fake,
                                     gamma + p[DUAL] if DUAL in p else gamma, reg)
        else:
            J = data_objective(loss, at(p, "real", batch.real), at(p, "fake", batch.fake))
        if reg.where not in ("none", "al"):
            pts = {"all": torch.cat([batch.real, batch.fake], 1), "real": batch.real,
                   "fake": batch.fake, "mix": batch.mix}[reg.where].detach().requires_grad_(True)
            g = torch.autograd.grad(at(p, reg.where, pts).sum(), pts, create_graph=True)[0]
            J = J - gamma * reg.r((g * g).sum(-1)).mean(1)
        grads = torch.autograd.grad(J.sum(), list(p.values()), allow_unused=True)
    return {k: (torch.zeros_like(p[k]) if g is None else g.detach()) for k, g in zip(p, grads)}, J.detach()


def closed_or_autograd(closed, value):
    """A closed-form gradient(params, batch, hyper, loss, reg) for the per-point penalties, and
    autograd on `value` for the augmented Lagrangian, which is not one."""
    def gradient(p, batch, hyper, loss, reg):
        if reg.where == "al":
            return autograd_ascent(value, p, batch, hyper, loss, reg)
        return closed(p, batch, hyper, loss, reg)
    return gradient


def autograd_value_and_grad(value, params: Params, x: Tensor):
    """(D (B, n), ∇_x D (B, n, d)) by autograd."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        D = value(params, x)
        g = torch.autograd.grad(D.sum(), x)[0]
    return D.detach(), g


# ---------------------------------------------------------------- optimisers (ascent, weight decay)
ADAM_BETAS = (0.5, 0.999)          # the usual GAN choice


def _b(t: Tensor, like: Tensor) -> Tensor:
    """(B,) -> broadcastable against (B, ...)."""
    return t.view(-1, *([1] * (like.dim() - 1)))


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """init(params) -> opt state; step(params, grads, opt, lr (B,), wd (B,)) -> (params, opt),
    an ascent step on J − (wd/2)‖φ‖² with gradient grads = ∂J/∂φ. configure(cfg) -> the
    Optimizer with the cfg's own settings (adam's β1, AMSGrad), None: none."""
    init: Callable[[Params], dict]
    step: Callable[..., tuple[Params, dict]]
    configure: Callable[[dict], "Optimizer"] | None = None

    def for_config(self, cfg) -> "Optimizer":
        return self if self.configure is None else self.configure(cfg)


def _sgd(p, grads, opt, lr, wd):
    return {k: p[k] + lr.view(-1, *([1] * (p[k].dim() - 1))) * (grads[k] - _b(wd, p[k]) * p[k]) for k in p}, opt


def _adam_init(p: Params, amsgrad: bool = False) -> dict:
    first = next(iter(p.values()))
    state = {"t": torch.zeros(first.shape[0], dtype=first.dtype, device=first.device),
             "m": {k: torch.zeros_like(v) for k, v in p.items()},
             "v": {k: torch.zeros_like(v) for k, v in p.items()}}
    if amsgrad:
        state["vmax"] = {k: torch.zeros_like(v) for k, v in p.items()}
    return state


def _adam(p, grads, opt, lr, wd, betas=ADAM_BETAS):
    """torch.optim.Adam's step (bias-corrected, eps 1e-8 outside the root); with "vmax" in the
    state, AMSGrad: the root of the running maximum of v, bias-corrected, as torch does."""
    b1, b2 = betas
    t = opt["t"] + 1
    new_p, m, v = {}, {}, {}
    vmax = {} if "vmax" in opt else None
    for k in p:
        g = grads[k] - _b(wd, p[k]) * p[k]
        m[k] = b1 * opt["m"][k] + (1 - b1) * g
        v[k] = b2 * opt["v"][k] + (1 - b2) * g * g
        mh = m[k] / _b(1 - b1 ** t, g)
        if vmax is not None:
            vmax[k] = torch.maximum(opt["vmax"][k], v[k])
        vh = (v[k] if vmax is None else vmax[k]) / _b(1 - b2 ** t, g)
        new_p[k] = p[k] + _b(lr, g) * mh / (vh.sqrt() + 1e-8)
    return new_p, {"t": t, "m": m, "v": v, **({} if vmax is None else {"vmax": vmax})}


def _adam_for(cfg) -> Optimizer:
    """adam with the cfg's β1 (disc.beta1; β2 = 0.999) and AMSGrad (disc.amsgrad)."""
    betas, amsgrad = (cfg["disc.beta1"], ADAM_BETAS[1]), cfg["disc.amsgrad"]
    return Optimizer(lambda p: _adam_init(p, amsgrad),
                     lambda p, grads, opt, lr, wd: _adam(p, grads, opt, lr, wd, betas))


OPTIMIZERS: Registry[Optimizer] = Registry("disc.optimizer")
OPTIMIZERS.add("sgd", Optimizer(lambda p: {}, _sgd))
OPTIMIZERS.add("adam", Optimizer(_adam_init, _adam, _adam_for))
