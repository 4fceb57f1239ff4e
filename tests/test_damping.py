"""Critical damping: with a linear critic and gp0 the centre of mass is a damped oscillator.

Penalty convention (γ/2)·E‖∇D‖², so dψ = η_D(x* − X − γψ), dX = η_G λ̄ ψ with
λ̄ = (g1 + (N−1) g2)/N, and the critical penalty is γ_c = 2√(η_G λ̄ / η_D).
"""
import math

import numpy as np
import pytest
import torch

from dynamics.engine import build
from dynamics.observables import convergence_step

N, LR, R = 10, 0.05, 0.5
LAMBDA = (1 + (N - 1) * R) / N
GAMMA_C = 2 * math.sqrt(LR * LAMBDA / LR)
BASE = {"disc.kind": "linear", "target.kind": "point", "target.radius": 1.0, "target.std": 0.0,
        "particles": N, "kernel.ratio": R, "lr.disc": LR, "lr.gen": LR, "reg.kind": "gp0",
        "dtype": "float64", "init.std": 0.05}


def trajectory(cfg, members, steps):
    """Centre of mass (B, T, d) and critic ψ (B, T, d) after each step."""
    sim = build(cfg)
    s = sim.init(members)
    X, psi = [s.x.mean(1)], [s.disc["psi"]]
    for _ in range(steps):
        s = sim.step(s)
        X.append(s.x.mean(1))
        psi.append(s.disc["psi"])
    return torch.stack(X, 1), torch.stack(psi, 1), s


def test_gamma_c_is_the_double_root_of_the_oscillator():
    """theory.gamma_c, read from the resolved config, is where ë + η_D γ ė + η_D η_G λ̄ e = 0 turns
    from under- to over-damped: its discriminant vanishes there and changes sign around it."""
    from dynamics import theory
    from dynamics.knobs import resolve
    cfg = resolve(BASE)
    assert theory.mean_eigenvalue(cfg) == pytest.approx(LAMBDA, rel=1e-12)
    g = theory.gamma_c(cfg)
    disc = lambda gamma: (LR * gamma) ** 2 / 4 - LR * LR * LAMBDA      # noqa: E731
    assert abs(disc(g)) < 1e-12 and disc(0.9 * g) < 0 < disc(1.1 * g)
    assert g == pytest.approx(GAMMA_C, rel=1e-12) and g == pytest.approx(1.483, abs=1e-3)


def test_centre_of_mass_follows_the_exact_linear_recurrence():
    gamma = 0.7
    X, psi, _ = trajectory(BASE, [{"reg.strength": gamma}], 300)
    xs = np.array([1.0, 0.0])
    Xr, pr = X[0, 0].numpy().copy(), np.zeros(2)
    for t in range(300):
        pr = pr + LR * (xs - Xr - gamma * pr)           # critic first (alternating) ...
        Xr = Xr + LR * LAMBDA * pr                       # ... then the particles
        np.testing.assert_allclose(psi[0, t + 1].numpy(), pr, rtol=0, atol=1e-12)
        np.testing.assert_allclose(X[0, t + 1].numpy(), Xr, rtol=0, atol=1e-12)


def test_small_steps_follow_the_continuous_damped_oscillator():
    eta, gamma = 0.002, 0.5                                   # under-damped (γ < γ_c)
    cfg = {**BASE, "lr.disc": eta, "lr.gen": eta}
    X, _, _ = trajectory(cfg, [{"reg.strength": gamma}], 6000)
    t = np.arange(6001)
    w0sq, Gam = eta * eta * LAMBDA, eta * gamma
    w = math.sqrt(w0sq - Gam**2 / 4)
    A = float(X[0, 0, 0]) - 1.0
    x_theory = 1.0 + np.exp(-Gam * t / 2) * (A * np.cos(w * t) + (Gam / 2 * A / w) * np.sin(w * t))
    err = np.abs(X[0, :, 0].numpy() - x_theory).max()
    assert err < 0.03 * abs(A)
    assert (X[0, :, 0].numpy() > 1.0 + 0.2 * abs(A)).any()       # it really overshoots: an oscillation


def test_convergence_is_fastest_near_gamma_c():
    """Research check 5: t_conv minimal for γ/γ_c in [0.75, 1.1] (~190 steps); ≥ 3× slower at
    0.25 γ_c and at 2 γ_c; γ = 0 never converges."""
    ratios = [0.0, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.5, 2.0]
    X, psi, s = trajectory(BASE, [{"reg.strength": r * GAMMA_C} for r in ratios], 3000)
    target = torch.tensor([1.0, 0.0], dtype=torch.float64)
    err = (X - target).norm(dim=-1)
    ok = (err < 1e-3 * err[:, :1]) & (psi.norm(dim=-1) < 1e-3)
    t_conv = convergence_step((~ok).double(), torch.arange(X.shape[1]), 0.5)
    t = dict(zip(ratios, t_conv.tolist()))
    assert t[0.0] == -1                                           # pure oscillation
    best = min((v, r) for r, v in t.items() if v >= 0)
    assert 0.75 <= best[1] <= 1.1 and 150 <= best[0] <= 260
    assert t[0.25] >= 3 * best[0] and t[2.0] >= 3 * best[0]
    assert t[0.25] > t[0.5] > best[0] and t[2.0] > t[1.5] > best[0]   # V-shaped around γ_c
