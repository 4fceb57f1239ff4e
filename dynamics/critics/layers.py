"""`mlp_layers`: the ReLU MLP of the authors' MNIST experiment, one width per hidden layer.

D(x) = aᵀ h_L + c,  h_l = relu(W_l h_(l−1) + b_l) (h_0 = x), widths from `disc.widths`
(theirs: 784 → 64 → 1024 → 64 → 1), with three of their choices as knobs: no output bias
(`disc.out_bias = false`), PyTorch's default initialisation (`disc.init = default`) and dropout
after the second hidden layer (`disc.dropout`, theirs 0.2; after the only one when L = 1).

Dropout: their descent code calls `D.train()` before the critic updates and `D.eval()` before
moving the particles, so masks act in the ascent (the objective and its gradient penalty,
through the same masked pass) and the forces see the deterministic critic. The same here:
`value` (forces, lab, penalties of other critics' tools) has no masks; the ascent draws one
mask per point of the batch (real, fake, interpolates: each point its own row, as their
separate calls D(x_p), D(x_q)) from the counter-based stream `dropout` at the batch's counter.
Gradients by autograd (double backward for the penalties).
"""
from __future__ import annotations

import math

import torch

from .. import rng
from ..knobs import layer_widths
from ..objective import Params, autograd_ascent, autograd_value_and_grad
from ..registry import Registry
from .contract import Ascent, by_ascent, register

Tensor = torch.Tensor
STREAM_DROPOUT = rng.STREAMS["dropout"]
DROPOUT_LAYER = 1                   # after hidden layer 2 (index 1), as the authors' D_mlp


def _uniform(gens, shape, bound: float, dtype, device) -> Tensor:
    """(B, *shape) U(−bound, bound), member b from gens[b] (CPU float64, then moved)."""
    u = torch.stack([torch.rand(*shape, generator=g, dtype=torch.float64) for g in gens])
    return ((2 * u - 1) * bound).to(device=device, dtype=dtype)


def _ntk(gens, shape, fan_in: int, first: bool, dtype, device):
    """(W, b): W ~ N(0, 1/fan_in); b ~ N(0, 1) on the first layer, else 0 (the mlp critic's)."""
    W = rng.stacked_normal(gens, shape, dtype, device) / math.sqrt(fan_in)
    b = rng.stacked_normal(gens, shape[:1], dtype, device) if first else \
        torch.zeros(len(gens), *shape[:1], dtype=dtype, device=device)
    return W, b


def _default(gens, shape, fan_in: int, first: bool, dtype, device):
    """(W, b): torch.nn.Linear's reset_parameters, W and b ~ U(±1/√fan_in) (kaiming_uniform, a = √5)."""
    bound = 1 / math.sqrt(fan_in)
    return _uniform(gens, shape, bound, dtype, device), _uniform(gens, shape[:1], bound, dtype, device)


INITS: Registry = Registry("disc.init")
INITS.add("ntk", _ntk)
INITS.add("default", _default)


def _forward(p: Params, x: Tensor, depth: int, mask: Tensor | None) -> Tensor:
    h = x
    for l in range(depth):
        h = torch.relu(torch.baddbmm(p[f"b{l}"].unsqueeze(1), h, p[f"W{l}"].transpose(1, 2)))
        if mask is not None and l == min(DROPOUT_LAYER, depth - 1):
            h = h * mask
    D = torch.bmm(h, p["a"].unsqueeze(2)).squeeze(2)
    return D + p["c"].unsqueeze(1) if "c" in p else D


def parts(cfg) -> Ascent:
    widths = layer_widths(cfg["disc.widths"])
    depth, rate, init_layer = len(widths), cfg["disc.dropout"], INITS[cfg["disc.init"]]
    H = widths[min(DROPOUT_LAYER, depth - 1)]

    def init(gens, d, dtype, device) -> Params:
        p, fan_in = {}, d
        for l, w in enumerate(widths):
            p[f"W{l}"], p[f"b{l}"] = init_layer(gens, (w, fan_in), fan_in, l == 0, dtype, device)
            fan_in = w
        a, c = init_layer(gens, (1, fan_in), fan_in, False, dtype, device)
        p["a"] = a[:, 0]
        if cfg["disc.out_bias"]:
            p["c"] = c[:, 0]
        return p

    def value(p: Params, x: Tensor) -> Tensor:
        return _forward(p, x, depth, None)

    def gradient(p, batch, hyper, loss, reg):
        if rate == 0 or batch.key is None:
            return autograd_ascent(value, p, batch, hyper, loss, reg)
        M, N = batch.real.shape[1], batch.fake.shape[1]
        n = M + N + (0 if batch.mix is None else batch.mix.shape[1])
        u = rng.uniform(batch.key, batch.counter, STREAM_DROPOUT, (n, H), batch.real.dtype)
        keep = (u >= rate).to(u.dtype) / (1 - rate)                                  # (B, n, H), inverted dropout
        rows = {"real": keep[:, :M], "fake": keep[:, M:M + N], "all": keep[:, :M + N], "mix": keep[:, M + N:]}
        return autograd_ascent(value, p, batch, hyper, loss, reg,
                               value_of=lambda q, part, x: _forward(q, x, depth, rows[part]))

    return Ascent(init, value, lambda p, x: autograd_value_and_grad(value, p, x), gradient)


def _memory(cfg, s):
    widths = layer_widths(cfg["disc.widths"])
    fans = (s.d,) + widths
    params = sum(a * b + b for a, b in zip(fans, widths)) + widths[-1] + 1
    # autograd's double backward keeps ~12 numbers per unit and point (as the deep mlp), plus the masks
    return (s.B * s.b * (2 * params * s.copies + 13 * s.n * sum(widths)), ("disc.widths", "particles"))


@register("mlp_layers", ascent=True, valued=True, memory=_memory)
def mlp_layers(cfg):
    return by_ascent(cfg, parts(cfg))
