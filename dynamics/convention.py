"""How a particle step is scaled: effgan's batch-mean convention or the authors' per-particle one.

  mean      x_i += (η_G/N) Σ_j Θ_ij F_j   (effgan's default: the gradient of the batch mean L_G)
  particle  x_i += η_G Σ_j Θ_ij F_j       (the authors' MNIST code: x_q += η_Q ∇_x D(x_q), no 1/N)

The two are the same dynamics with lr.gen(mean) = N · lr.gen(particle): the authors' η_Q = 1e-4
at N = 100 is lr.gen = 0.01 under `mean`. F_j = −N ∂L_G/∂x_j, so for the ipm loss F_j = ∇D(x_j).
"""
from __future__ import annotations

import dataclasses

from .registry import Registry


@dataclasses.dataclass(frozen=True)
class Convention:
    per_particle: bool          # True: no 1/N on the step
    rule: str                   # the update rule in words, written into results

    def scale(self, N: int) -> float:
        """The factor on lr.gen in x_i += lr.gen · scale · Σ_j Θ_ij F_j."""
        return 1.0 if self.per_particle else 1.0 / N


CONVENTIONS: Registry[Convention] = Registry("lr.convention")
CONVENTIONS.add("mean", Convention(False, "x_i <- x_i + (lr.gen/N) sum_j Theta_ij F_j"))
CONVENTIONS.add("particle", Convention(True, "x_i <- x_i + lr.gen sum_j Theta_ij F_j"))


def of(cfg: dict) -> Convention:
    return CONVENTIONS[cfg.get("lr.convention", "mean")]


def mean_lr(cfg: dict) -> float:
    """lr.gen expressed in the mean convention (N · lr.gen for `particle`): what the closed-form
    theory (γ_c, the oscillator) reads as η_G."""
    return cfg["lr.gen"] * cfg["particles"] * of(cfg).scale(cfg["particles"])
