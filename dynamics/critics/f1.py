"""The F1 (feature-learning) IPM critic of the companion papers (Domingo-Enrich & Mroueh).

The best unit-norm ReLU neuron σ(θ·x̃), x̃ = (x, 1), kept by projected ascent over
`critic.restarts` neurons. Witness f = s σ(θ*·x̃), s = sign(E_real − E_fake); particles move
uphill on it, F_j = gen_weight(f(x_j)) ∇f(x_j).
"""
from __future__ import annotations

import torch

from ..objective import LOSSES, Batch, Params
from ..papers.ipms import neuron_delta, neuron_step, unit
from ..rng import stacked_normal
from ..targets import ON_SPHERE
from .contract import Critic, register, value_force

Tensor = torch.Tensor
F1_STEP = 0.5          # projected-ascent step on the sphere (the papers' prototype's)


def _aug(x: Tensor) -> Tensor:
    return torch.cat([x, torch.ones_like(x[..., :1])], -1)


def lift(cfg):
    """Data on the sphere are used as they are (the papers' construction); Euclidean data get
    a bias coordinate x̃ = (x, 1)."""
    return (lambda x: x) if cfg["target.kind"] in ON_SPHERE else _aug


def _memory(cfg, s):
    R = 5 * cfg["critic.restarts"]                           # kept neurons and ± the data directions
    return s.B * s.b * (R * (s.d + 1) * 3 + 4 * (s.M + s.N) * R), ("critic.restarts", "particles")


@register("f1_neuron", ascent=False, valued=True, memory=_memory)
def f1_neuron(cfg) -> Critic:
    R = cfg["critic.restarts"]
    up = lift(cfg)
    extra = 0 if cfg["target.kind"] in ON_SPHERE else 1

    def init(gens, d, dtype, device):
        theta = unit(stacked_normal(gens, (R, d + extra), dtype, device))
        return {"theta": theta, "w": theta[:, 0].clone(), "s": torch.ones(len(gens), dtype=dtype, device=device)}, {}

    def value(p, x):
        return p["s"].unsqueeze(1) * torch.relu(up(x) @ p["w"].unsqueeze(2)).squeeze(2)

    def value_and_grad(p, x):
        z = (up(x) @ p["w"].unsqueeze(2)).squeeze(2)                      # (B, n)
        D = p["s"].unsqueeze(1) * torch.relu(z)
        g = (p["s"].unsqueeze(1) * (z > 0).to(x.dtype)).unsqueeze(2) * p["w"][:, None, :x.shape[-1]]
        return D, g

    def update(p: Params, opt, batch: Batch, hyper):
        """Screen, then one projected-ascent step of every neuron on |Δ(θ)|, Δ = E_real σ − E_fake σ.

        Screening keeps the best R of the current neurons and ± the directions of R fresh data
        points: away from the optimum |Δ| sits below the sampling noise in high d, so ascent
        from random starts alone rarely finds the hidden direction."""
        yr, yf = up(batch.real), up(batch.fake)
        k = min(R, yr.shape[1], yf.shape[1])
        cand = torch.cat([p["theta"], unit(yr[:, :k]), -unit(yr[:, :k]), unit(yf[:, :k]), -unit(yf[:, :k])], 1)
        score = neuron_delta(yf, yr, cand)[0].abs()
        th = cand.gather(1, score.topk(R, dim=1).indices.unsqueeze(2).expand(-1, -1, cand.shape[2]))
        delta, zf, zr = neuron_delta(yf, yr, th)
        th = neuron_step(yf, yr, th, delta, zf, zr, F1_STEP)
        delta = neuron_delta(yf, yr, th)[0]
        best, idx = delta.abs().max(1)
        rows = torch.arange(th.shape[0], device=th.device)
        return {"theta": th, "w": th[rows, idx], "s": torch.sign(delta[rows, idx])}, opt, best

    return Critic(init, update, value_force(LOSSES[cfg["loss"]], value_and_grad), value, value_and_grad)
