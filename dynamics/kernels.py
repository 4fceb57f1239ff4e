"""Generator kernels Θ: how one particle's force moves the others.

Update convention (README): x_i <- x_i + (η_G / N) Σ_j Θ_ij F_j, with Θ_ii = g1 (1 by default).

A registry entry is a factory ``make(cfg) -> Kernel``; a Kernel gives
  * ``init(x0, gens, hyper) -> (x, kstate)``  x0 `(B, N, d)`; kstate: dict of `(B, ...)` tensors
  * ``move(kstate, x, F, step, hyper) -> (x, kstate)``  step = η_G/N, `(B,)`
  * ``retune(kstate, hyper) -> kstate``      recompute what a live hyper change affects
  * ``spectrum(kstate, hyper) -> (levels (B, k), multiplicity (B, k))`` of the N×N Θ (per
    output dimension; divide by N for the rates of the update above)

`two_number` never forms an N×N matrix (O(N·d) per step). `rbf` and `relu_ntk` hold Θ for
latent codes z_i on the sphere S^(dz−1); `network` is a real finite ReLU generator G(z)
moved by gradient descent on its weights, normalised so its empirical Θ_ii averages g1.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from . import rng
from .registry import Registry

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Kernel:
    init: Callable
    move: Callable
    retune: Callable
    spectrum: Callable
    matrix: Callable | None = None     # (kstate, hyper) -> (B, N, N), dense kernels only


KERNELS: Registry[Callable[[dict], Kernel]] = Registry("kernel.kind")


def _col(t: Tensor) -> Tensor:
    return t.view(-1, 1, 1)


# ---------------------------------------------------------------- two-number kernel
def two_number_move(x: Tensor, F: Tensor, step: Tensor, g1: Tensor, r: Tensor) -> Tensor:
    """x + step·[(g1 − g2) F + g2 1(1ᵀF)], g2 = r·g1: the rank-one form of Θ = (g1−g2)I + g2 11ᵀ."""
    g2 = r * g1
    return x + _col(step) * (_col(g1 - g2) * F + _col(g2) * F.sum(1, keepdim=True))


def two_number_levels(N: int, g1: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """Collective level g1 + (N−1)g2 (×1) and relative level g1 − g2 (×N−1)."""
    g2 = r * g1
    levels = torch.stack([g1 + (N - 1) * g2, g1 - g2], 1)
    mult = torch.tensor([1, N - 1], device=g1.device).expand(g1.shape[0], 2)
    return levels, mult


@KERNELS.register("two_number")
def two_number(cfg) -> Kernel:
    N = cfg["particles"]
    return Kernel(
        init=lambda x0, gens, hyper: (x0, {}),
        move=lambda ks, x, F, step, h: (two_number_move(x, F, step, h["kernel.g1"], h["kernel.ratio"]), ks),
        retune=lambda ks, h: ks,
        spectrum=lambda ks, h: two_number_levels(N, h["kernel.g1"], h["kernel.ratio"]),
    )


# ---------------------------------------------------------------- dense kernels over latent codes
def sphere_codes(gens, N: int, dz: int, dtype, device) -> Tensor:
    """(B, N, dz) codes uniform on S^(dz−1)."""
    z = rng.stacked_normal(gens, (N, dz), dtype, device)
    return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _relu_moments(q: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """For (u, v) centred Gaussian with Var u = Var v = q, Cov = c:
    E[relu u relu v] = q/(2π)(sin θ + (π−θ)cos θ), E[step u step v] = (π−θ)/(2π), cos θ = c/q."""
    cos = (c / q).clamp(-1.0, 1.0)
    th = torch.arccos(cos)
    k1 = q / (2 * math.pi) * (torch.sqrt(1 - cos * cos) + (math.pi - th) * cos)
    k0 = (math.pi - th) / (2 * math.pi)
    return k1, k0


def relu_ntk(rho: Tensor, depth: int, bias: float = 0.0) -> Tensor:
    """Infinite-width NTK Θ(ρ) of a ReLU net with `depth` hidden layers on unit-norm inputs.

    Parametrisation (the `network` kernel's): u1 = W1 z + σ_b b1, u_{l+1} = √(2/H) W h_l + σ_b b,
    all weights and biases N(0, 1). Recursion: Σ1 = ρ + σ_b², Θ1 = Σ1; for each further layer
    Σ' = 2E[relu·relu] + σ_b², Σ̇ = 2E[relu'·relu'], Θ' = Θ Σ̇ + Σ'. Without bias,
    Θ(0)/Θ(1) = 1/(2π) for one hidden layer and ≈ 0.229 for two.
    """
    sig = rho + bias
    q = torch.ones_like(rho) * (1.0 + bias)          # diagonal variance, the same for every input
    theta = sig
    for _ in range(depth):
        k1, k0 = _relu_moments(q, sig)
        sig, sdot = 2 * k1 + bias, 2 * k0
        q = q + bias                                   # 2·E[relu²] = q, plus the bias
        theta = theta * sdot + sig
    return theta


def _dense_kernel(cfg, matrix_fn) -> Kernel:
    """Θ = g1 · K(z_i, z_j), K(z, z) = 1; codes fixed at init, Θ recomputed on retune."""
    N, dz = cfg["particles"], cfg["kernel.latent_dim"]

    def build(z, hyper):
        return _col(hyper["kernel.g1"]) * matrix_fn(z, hyper)

    def init(x0, gens, hyper):
        z = sphere_codes(gens, N, dz, x0.dtype, x0.device)
        return x0, {"z": z, "theta": build(z, hyper)}

    def move(ks, x, F, step, hyper):
        return x + _col(step) * torch.bmm(ks["theta"], F), ks

    def spectrum(ks, hyper):
        ev = torch.linalg.eigvalsh(ks["theta"].double()).flip(-1).to(ks["theta"].dtype)
        return ev, torch.ones_like(ev, dtype=torch.int64)

    return Kernel(init, move, lambda ks, h: {**ks, "theta": build(ks["z"], h)}, spectrum,
                  matrix=lambda ks, h: ks["theta"])


@KERNELS.register("rbf")
def rbf(cfg) -> Kernel:
    """K = exp(−‖z_i − z_j‖² / (2 w²)) with w = kernel.width: w → ∞ is the rigid limit."""
    def k(z, hyper):
        w = _col(hyper["kernel.width"])
        return torch.exp(-torch.cdist(z, z).pow(2) / (2 * w * w))
    return _dense_kernel(cfg, k)


@KERNELS.register("relu_ntk")
def relu_ntk_kernel(cfg) -> Kernel:
    depth, bias = cfg["kernel.depth"], cfg["kernel.bias"]
    norm = float(relu_ntk(torch.ones((), dtype=torch.float64), depth, bias))

    def k(z, hyper):
        return relu_ntk(torch.bmm(z, z.transpose(1, 2)).clamp(-1, 1), depth, bias) / norm
    return _dense_kernel(cfg, k)


@KERNELS.register("linear")
def linear(cfg) -> Kernel:
    """A linear generator x = W z with q = kernel.latent_dim: its NTK is Θ = g1 · Z Zᵀ with codes
    z_i ~ N(0, I/q), rank min(q, N), worst conditioned at q = N (Marchenko–Pastur): the
    kernel of pseudo-supervised double descent (Luzi, Dar & Baraniuk)."""
    N, q = cfg["particles"], cfg["kernel.latent_dim"]

    def build(z, hyper):
        return _col(hyper["kernel.g1"]) * torch.bmm(z, z.transpose(1, 2))

    def init(x0, gens, hyper):
        z = rng.stacked_normal(gens, (N, q), x0.dtype, x0.device) / math.sqrt(q)
        return x0, {"z": z, "theta": build(z, hyper)}

    base = _dense_kernel(cfg, lambda z, h: torch.bmm(z, z.transpose(1, 2)))
    return dataclasses.replace(base, init=init, retune=lambda ks, h: {**ks, "theta": build(ks["z"], h)})


def condition_number(levels: Tensor, rel_tol: float = 1e-9) -> Tensor:
    """(B,) largest over smallest non-zero eigenvalue (levels `(B, k)`, descending)."""
    top = levels[:, :1]
    nz = torch.where(levels > rel_tol * top, levels, torch.full_like(levels, float("inf")))
    return (top[:, 0] / nz.min(1).values)


# ---------------------------------------------------------------- a real finite generator
def generator_forward(p: dict[str, Tensor], z: Tensor, depth: int, bias: float) -> Tensor:
    """(B, N, d) outputs of the NTK-parametrised ReLU MLP of `relu_ntk` (weights p, codes z)."""
    sb = math.sqrt(bias)
    h = torch.relu(torch.bmm(z, p["W0"].transpose(1, 2)) + sb * p["b0"].unsqueeze(1))
    for l in range(1, depth):
        H = h.shape[-1]
        h = torch.relu(math.sqrt(2 / H) * torch.bmm(h, p[f"W{l}"].transpose(1, 2)) + sb * p[f"b{l}"].unsqueeze(1))
    H = h.shape[-1]
    return p["out_scale"].view(-1, 1, 1) * (math.sqrt(2 / H) * torch.bmm(h, p["Wout"].transpose(1, 2))
                                            + sb * p["bout"].unsqueeze(1))


def empirical_ntk(p, z, depth, bias, out_dim: int = 0) -> Tensor:
    """(B, N, N) empirical NTK J Jᵀ of output coordinate `out_dim` (Θ is ∝ I across outputs)."""
    names = [k for k in p if k != "out_scale"]
    B, N = z.shape[:2]
    rows = []
    with torch.enable_grad():
        q = {k: (v.detach().requires_grad_(True) if k in names else v) for k, v in p.items()}
        out = generator_forward(q, z, depth, bias)[..., out_dim]                 # (B, N)
        for i in range(N):
            g = torch.autograd.grad(out[:, i].sum(), [q[k] for k in names], retain_graph=True)
            rows.append(torch.cat([t.reshape(B, -1) for t in g], 1))
    J = torch.stack(rows, 1)                                                      # (B, N, P)
    return torch.bmm(J, J.transpose(1, 2))


@KERNELS.register("network")
def network(cfg) -> Kernel:
    N, dz, depth, bias = cfg["particles"], cfg["kernel.latent_dim"], cfg["kernel.depth"], cfg["kernel.bias"]
    H = cfg["kernel.net_width"]

    def init(x0, gens, hyper):
        dtype, device, d = x0.dtype, x0.device, x0.shape[-1]
        B = len(gens)
        p = {"W0": rng.stacked_normal(gens, (H, dz), dtype, device),
             "b0": rng.stacked_normal(gens, (H,), dtype, device)}
        for l in range(1, depth):
            p[f"W{l}"] = rng.stacked_normal(gens, (H, H), dtype, device)
            p[f"b{l}"] = rng.stacked_normal(gens, (H,), dtype, device)
        p["Wout"] = rng.stacked_normal(gens, (d, H), dtype, device)
        p["bout"] = rng.stacked_normal(gens, (d,), dtype, device)
        p["out_scale"] = torch.ones(B, dtype=dtype, device=device)
        z = sphere_codes(gens, N, dz, dtype, device)
        # scale the output so the initial cloud has the spread asked for (init.std), then
        # calibrate the learning rate so the empirical Θ_ii averages 1 (×g1 at each move)
        out = generator_forward(p, z, depth, bias)
        spread = out.std(dim=1).mean(-1).clamp_min(1e-12)
        p["out_scale"] = x0.std(dim=1).mean(-1).clamp_min(1e-12) / spread if N > 1 else p["out_scale"]
        nsub = min(N, 8)
        diag = torch.diagonal(empirical_ntk(p, z[:, :nsub], depth, bias), dim1=1, dim2=2).mean(1)
        offset = x0.mean(1, keepdim=True)                     # keep init.shift
        ks = {"params": p, "z": z, "lr_scale": 1.0 / diag.clamp_min(1e-12), "offset": offset}
        return generator_forward(p, z, depth, bias) + offset, ks

    def move(ks, x, F, step, hyper):
        p, z = ks["params"], ks["z"]
        names = [k for k in p if k != "out_scale"]
        with torch.enable_grad():
            q = {k: (v.detach().requires_grad_(True) if k in names else v) for k, v in p.items()}
            out = generator_forward(q, z, depth, bias)
            grads = torch.autograd.grad((out * F.detach()).sum(), [q[k] for k in names])
        scale = step * hyper["kernel.g1"] * ks["lr_scale"]
        newp = dict(p)
        for k, g in zip(names, grads):
            newp[k] = p[k] + scale.view(-1, *([1] * (g.dim() - 1))) * g
        x = generator_forward(newp, z, depth, bias) + ks["offset"]
        return x, {**ks, "params": newp}

    def matrix(ks, hyper):
        th = empirical_ntk(ks["params"], ks["z"], depth, bias)
        return _col(hyper["kernel.g1"] * ks["lr_scale"]) * th

    def spectrum(ks, hyper):
        ev = torch.linalg.eigvalsh(matrix(ks, hyper).double()).flip(-1).to(ks["z"].dtype)
        return ev, torch.ones_like(ev, dtype=torch.int64)

    return Kernel(init, move, lambda ks, h: ks, spectrum, matrix)
