"""Closed-form companions to the four seed papers: pure, batched PyTorch maths.

* ``spheres``    -- Legendre-pair and Stein targets on S^{d-1}, Funk–Hecke theory (paper A).
* ``ipms``       -- F1 / F2 IPMs, sliced W1, Gaussian-mixture helpers (papers A and B).
* ``ct``         -- conditional-transport costs and their particle gradient (paper C).
* ``linear_gan`` -- linear-Gaussian GAN: W2 error, double descent, conditioning (paper D).
* ``live``       -- cheap batched meters for runs and the app: approximability, F1/F2 panel.
The `effgan reproduce` experiments of the four papers live in `dynamics.experiments` (one module per paper).

No module touches the global RNG: randomness comes from an explicit ``torch.Generator``.
Dtype and device follow the inputs; samplers take them as keywords.
"""

from __future__ import annotations

import math

from ..knobs import ConfigError

# The papers the code calls A-D (and the one the engine implements), cited wherever a user
# reads about them: presets' texts, `effgan reproduce --list`, the lab's meter texts.
CITATIONS = {
    "main": 'S. Durr, Y. Mroueh, Y. Tu, S. Wang, "Effective Dynamics of Generative Adversarial Networks", '
            "Phys. Rev. X 13, 041004 (2023), arXiv:2212.04580",
    "A": 'C. Domingo-Enrich, Y. Mroueh, "Separation Results between Fixed-Kernel and Feature-Learning Probability '
         'Metrics", NeurIPS 2021, arXiv:2106.05739',
    "B": 'Y. Bai, T. Ma, A. Risteski, "Approximability of Discriminators Implies Diversity in GANs", ICLR 2019, '
         "arXiv:1806.10586",
    "C": 'H. Zheng, M. Zhou, "Exploiting Chain Rule and Bayes\' Theorem to Compare Probability Distributions" '
         "(conditional transport), NeurIPS 2021, arXiv:2012.14100",
    "D": 'L. Luzi, Y. Dar, R. Baraniuk, "Double Descent and Other Interpolation Phenomena in GANs", 2021, '
         "arXiv:2106.04003",
}
SHORT = {"main": "Durr et al. 2023", "A": "Domingo-Enrich & Mroueh 2021", "B": "Bai, Ma & Risteski 2019",
         "C": "Zheng & Zhou 2021", "D": "Luzi, Dar & Baraniuk 2021"}     # for a title or a caption


def check_range(field: str, value, ok: bool, allowed: str) -> None:
    """Raise ``ConfigError("<field>: <value> is out of range; allowed <allowed>")`` unless ok
    (a ValueError: the CLI prints it as one line and exits 2)."""
    if not ok:
        raise ConfigError(f"{field}: {value!r} is out of range; allowed {allowed}")


def check_int(field: str, value, lo: int, hi: int | None = None) -> int:
    """Validate an integer in [lo, hi] (hi=None: unbounded); bools are rejected."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = is_int and value >= lo and (hi is None or value <= hi)
    allowed = f"integers >= {lo}" if hi is None else f"integers in [{lo}, {hi}]"
    check_range(field, value, ok, allowed)
    return value


def check_real(field: str, value, lo: float = -math.inf, hi: float = math.inf,
               lo_open: bool = False) -> float:
    """Validate a finite real in [lo, hi] (or (lo, hi] with lo_open)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
    if math.isinf(lo) and math.isinf(hi):
        allowed = "finite reals"
    elif math.isinf(hi):
        allowed = f"reals {'>' if lo_open else '>='} {lo:g}"
    else:
        allowed = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
    check_range(field, value, ok, allowed)
    return v


# Submodules import the checkers above, so they come after them.
from .spheres import (  # noqa: E402
    gegenbauer, harmonic_count, pair_theory, sample_sphere, sample_sphere_pair,
    sample_stein, stein_ratio_bound, stein_score,
)
from .ipms import (  # noqa: E402
    f1_ipm, f2_ipm, f2_ipm_features, grid_centers, max_sliced_w1, mixture_kl,
    mixture_log_prob, relu_grid_ipm_2d, ring_centers, sample_mixture, sliced_w1,
    w1_1d, w1_assignment,
)
from .ct import ct_costs, ct_particle_flow, ct_particle_grad, mode_coverage  # noqa: E402
from .linear_gan import (  # noqa: E402
    condition_number, gd_iterations_to_tol, marchenko_pastur_condition,
    pseudo_supervised_error, sample_linear_gaussian, w2_gaussian,
)

__all__ = [
    "CITATIONS", "SHORT", "check_int", "check_range", "check_real",
    "gegenbauer", "harmonic_count", "pair_theory", "sample_sphere", "sample_sphere_pair",
    "sample_stein", "stein_ratio_bound", "stein_score",
    "f1_ipm", "f2_ipm", "f2_ipm_features", "grid_centers", "max_sliced_w1", "mixture_kl",
    "mixture_log_prob", "relu_grid_ipm_2d", "ring_centers", "sample_mixture", "sliced_w1",
    "w1_1d", "w1_assignment",
    "ct_costs", "ct_particle_flow", "ct_particle_grad", "mode_coverage",
    "condition_number", "gd_iterations_to_tol", "marchenko_pastur_condition",
    "pseudo_supervised_error", "sample_linear_gaussian", "w2_gaussian",
]
