"""Cheap batched meters for a running simulation (papers A and B), light enough to refresh
while it runs (their timings: BENCHMARKS.md).

* ``approximability`` -- paper B's restricted-approximability meter for the CURRENT critic:
  its IPM over W1 (≈ 1: the critic sees the whole transport distance; ≪ 1: it is blind to
  part of it, e.g. a symmetric mode collapse) and its train/test gap (the IPM on the batch it
  was trained on minus the IPM on a fresh batch: > 0 means it fits sampling noise).
* ``f1_f2_meter``     -- paper A's metrics panel: F1 IPM, F2 IPM, max-sliced and sliced W1 of
  the particles against real data, each beside its null baseline (the same estimator between
  two independent real batches): a value is only meaningful well above its null.

Shapes: particles x (B, N, d), real batches (B, M, d); every output is a (B,) tensor.
Randomness only from the explicit ``torch.Generator`` passed in.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import check_int, check_range
from .ipms import f1_ipm, f2_ipm, max_sliced_w1, sliced_w1, w1_assignment

EXACT_W1_MAX = 512     # exact assignment is O(n³) on the CPU: ≈ 20 ms per member at n = 512
W1_FLOOR = 1e-12


def w1_estimate(p: torch.Tensor, q: torch.Tensor, gen: torch.Generator | None = None, *,
                method: str = "auto", projections: int = 64) -> tuple[torch.Tensor, str]:
    """W1 between clouds p: (B, n, d) and q: (B, m, d) -> ((B,), method used).

    exact: optimal assignment (scipy; equal sizes only, n ≤ EXACT_W1_MAX under auto).
    max_sliced: the best of random directions refined by ascent, a lower bound on W1 that
    stays within a factor ~1 of it for the differences critics see (mean shifts, one hidden
    axis); the plain average sliced W1 would shrink like 1/sqrt(d) and inflate the ratio.
    auto: exact when possible, else max_sliced.
    """
    if method not in ("auto", "exact", "max_sliced"):
        check_range("metric.w1", method, False, "auto, exact, max_sliced")
    exact_ok = p.shape[-2] == q.shape[-2] and p.shape[-2] <= EXACT_W1_MAX
    if method == "exact" or (method == "auto" and exact_ok):
        return w1_assignment(p, q), "exact"
    gen = gen or torch.Generator().manual_seed(0)
    value, _ = max_sliced_w1(p, q, gen, projections=projections, keep=4, steps=20)
    return value, "max_sliced"


def approximability(x_fake: torch.Tensor, real_train: torch.Tensor, real_test: torch.Tensor,
                    critic_value_fn: Callable[[torch.Tensor], torch.Tensor], *,
                    gen: torch.Generator | None = None, w1: str = "auto") -> dict:
    """Restricted-approximability meter of the current critic D (paper B): how much of the true
    distance W1 the critic's IPM sees, and its train/test gap.

    x_fake: (B, N, d) particles; real_train: (B, M, d) the batch the critic was last trained
    on; real_test: (B, M, d) a fresh batch; critic_value_fn: pts (B, n, d) -> D (B, n), e.g.
    ``lambda pts: sim.disc.value(state.disc, pts)``.

    ipm_train = E_train D − E_fake D, ipm_test = E_test D − E_fake D (same particles);
    ipm_over_w1 = ipm_test / W1(real_test, x_fake); train_test_gap = ipm_train − ipm_test.
    D is used as it is: for a 1-Lipschitz critic (F1 neuron, clipped or penalised MLP near
    its constraint) ipm ≤ W1, so ipm_over_w1 ∈ [−1, 1]; other critics need their Lipschitz
    constant divided out to read it as a fraction. W1 by ``w1_estimate`` (method returned).

    Returns dict of (B,) tensors ipm_over_w1, train_test_gap, ipm_train, ipm_test, w1, and
    w1_method (str).
    """
    with torch.no_grad():
        d_fake = critic_value_fn(x_fake).mean(-1)
        ipm_train = critic_value_fn(real_train).mean(-1) - d_fake
        ipm_test = critic_value_fn(real_test).mean(-1) - d_fake
    dist, method = w1_estimate(real_test.detach(), x_fake.detach(), gen, method=w1)  # max-sliced ascends
    return dict(ipm_over_w1=ipm_test / dist.clamp_min(W1_FLOOR), train_test_gap=ipm_train - ipm_test,
                ipm_train=ipm_train, ipm_test=ipm_test, w1=dist, w1_method=method)


def f1_f2_meter(x: torch.Tensor, real: torch.Tensor, gen: torch.Generator, *,
                real_null: torch.Tensor | None = None, bias: bool = True, restarts: int = 8,
                steps: int = 30, projections: int = 64) -> dict[str, torch.Tensor]:
    """F1 IPM, F2 IPM, max-sliced W1 and sliced W1 of particles against data, with nulls.

    x: (B, N, d) particles; real: (B, M, d) data. The null of each metric is the same
    estimator between `real` and `real_null` (B, M', d), an independent data batch; without
    it `real` is split in halves (value: x vs the first half, null: first half vs second),
    so value and null see the same data sample size. Use N ≈ M' for a like-for-like floor.
    bias: x̃ = (x, 1) for Euclidean data; False for data on the sphere (sphere_pair).
    Fast settings: F1 by `restarts` neurons screened from 256 candidates, `steps` ascent
    steps; F2 the exact arc-cosine MMD (O((N + M)² d)); `projections` directions for both
    sliced metrics (max-sliced refines its best 4 by 20 ascent steps).

    Returns dict of (B,) tensors f1, f1_null, f2, f2_null, max_sliced_w1, max_sliced_w1_null,
    sliced_w1, sliced_w1_null.
    """
    check_int("metric.restarts", restarts, 1)
    if real_null is None:
        half = check_int("real", real.shape[-2], 2) // 2
        real, real_null = real[..., :half, :], real[..., half:2 * half, :]
    out = {}
    for tag, other in (("", x), ("_null", real_null)):
        out["f1" + tag] = f1_ipm(real, other, gen, restarts=restarts, steps=steps, bias=bias,
                                 candidates=256)[0]
        out["f2" + tag] = f2_ipm(real, other, bias=bias)
        out["max_sliced_w1" + tag] = max_sliced_w1(real, other, gen, projections=projections,
                                                   keep=4, steps=20)[0]
        out["sliced_w1" + tag] = sliced_w1(real, other, gen, projections=projections)
    return out
