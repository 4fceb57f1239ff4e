"""The F2 (fixed-kernel) IPM critic of the companion papers: the arc-cosine kernel MMD.

Witness h = mean_real k(·, y) − mean_fake k(·, x), normalised to the RKHS unit ball (h / MMD);
particles move uphill on it, F_j = gen_weight(h(x_j)) ∇h(x_j).
"""
from __future__ import annotations

import torch

from ..objective import LOSSES, Batch, autograd_value_and_grad
from ..papers.ipms import arccos_kernel
from .contract import Critic, register, value_force
from .f1 import lift

ACOS_MARGIN = 1e-7     # cos φ kept inside [−1 + m, 1 − m]: autograd through acos stays finite


def _memory(cfg, s):                                          # arc-cosine kernels between the batches
    return s.B * s.b * 12 * (s.M + s.N) ** 2, ("particles", "real")


@register("f2_features", ascent=False, valued=True, memory=_memory)
def f2_features(cfg) -> Critic:
    up = lift(cfg)

    def _witness(p, x):
        """h(x) = mean_real k(x, y) − mean_fake k(x, x'), with the batch kept in the params."""
        xa = up(x)
        return (arccos_kernel(xa, up(p["real"]), ACOS_MARGIN).mean(2)
                - arccos_kernel(xa, up(p["fake"]), ACOS_MARGIN).mean(2))

    def init(gens, d, dtype, device):
        z = torch.zeros(len(gens), 1, d, dtype=dtype, device=device)
        return {"real": z, "fake": z, "mmd": torch.ones(len(gens), dtype=dtype, device=device)}, {}

    def value(p, x):
        return _witness(p, x) / p["mmd"].clamp_min(1e-12).unsqueeze(1)

    def value_and_grad(p, x):
        return autograd_value_and_grad(value, p, x)

    def update(p, opt, batch: Batch, hyper):
        q = {"real": batch.real, "fake": batch.fake, "mmd": p["mmd"]}
        mmd2 = (_witness(q, batch.real).mean(1) - _witness(q, batch.fake).mean(1)).clamp_min(0)
        mmd = mmd2.sqrt()
        return {**q, "mmd": mmd}, opt, mmd

    return Critic(init, update, value_force(LOSSES[cfg["loss"]], value_and_grad), value, value_and_grad)
