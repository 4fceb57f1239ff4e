"""Closed-form predictions the gallery experiments are checked against: the critically damped
linearised critic and the two levels of the kernel spectrum.

Conventions as in the engine: x_i += (η_G/N) Σ_j Θ_ij F_j, penalty (γ/2)·E‖∇D‖², so a
linear critic D = ψ·x on a point target gives the damped oscillator
    ë + η_D γ ė + η_D η_G λ̄ e = 0,   λ̄ = (g1 + (N−1) g2)/N,
critically damped at γ_c = 2√(η_G λ̄ / η_D) (η_G in that convention: `convention.mean_lr`).
"""
from __future__ import annotations

import math

import numpy as np

from .convention import mean_lr
from .knobs import ConfigError


def mean_eigenvalue(cfg: dict) -> float:
    """λ̄ = (g1 + (N−1) g2)/N of the two-number kernel, the collective rate per particle."""
    N, g1 = cfg["particles"], cfg["kernel.g1"]
    return g1 * (1 + (N - 1) * cfg["kernel.ratio"]) / N


def gamma_c(cfg: dict) -> float:
    """Critical penalty strength 2√(η_G λ̄ / η_D) of the linearised critic."""
    return 2.0 * math.sqrt(mean_lr(cfg) * mean_eigenvalue(cfg) / cfg["lr.disc"])


def damping_time(gammas, cfg: dict, eps: float = 0.05, e0: float = 1.0) -> np.ndarray:
    """Continuous-time convergence time (steps) of the oscillator from e(0) = e0, ė(0) = 0:
    the last time |e(t)| >= eps. `(G,)` for penalties `gammas (G,)`."""
    w2 = cfg["lr.disc"] * mean_lr(cfg) * mean_eigenvalue(cfg)
    out = []
    for g in np.atleast_1d(np.asarray(gammas, dtype=float)):
        G = cfg["lr.disc"] * g
        disc = complex(G * G / 4 - w2)
        root = np.sqrt(disc) if abs(disc) > 1e-12 * w2 else 1e-6 * math.sqrt(w2)   # step off the double root
        s1, s2 = -G / 2 + root, -G / 2 - root
        slow = max(-s1.real, 1e-12)
        t = np.arange(0.0, 10.0 * math.log(e0 / eps) / slow + 2, 1.0)
        a = e0 * s2 / (s2 - s1)                      # e = a e^{s1 t} + b e^{s2 t}, a + b = e0, a s1 + b s2 = 0
        e = (a * np.exp(s1 * t) + (e0 - a) * np.exp(s2 * t)).real
        above = np.nonzero(np.abs(e) >= eps)[0]
        out.append(float(t[above[-1]] + 1) if above.size else 0.0)
    return np.asarray(out)


def kernel_levels(cfg: dict) -> tuple[float, float]:
    """The two levels (collective g1 + (N−1)g2, relative g1 − g2) the kernel spectrum tends to:
    g2/g1 = kernel.ratio for two_number, Θ(0)/Θ(1) of the infinite-width NTK for relu_ntk
    (1/(2π) for one hidden layer without bias)."""
    N, g1 = cfg["particles"], cfg["kernel.g1"]
    if cfg["kernel.kind"] == "two_number":
        r = cfg["kernel.ratio"]
    elif cfg["kernel.kind"] != "relu_ntk":
        raise ConfigError(f"theory: no two-level prediction for kernel.kind = {cfg['kernel.kind']}; allowed "
                          "two_number, relu_ntk")
    else:
        import torch

        from .kernels import relu_ntk
        one, zero = (torch.tensor(v, dtype=torch.float64) for v in (1.0, 0.0))
        r = float(relu_ntk(zero, cfg["kernel.depth"], cfg["kernel.bias"]) / relu_ntk(one, cfg["kernel.depth"],
                                                                                      cfg["kernel.bias"]))
    return g1 * (1 + (N - 1) * r), g1 * (1 - r)
