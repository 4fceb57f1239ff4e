"""Generator kernels Θ: how one particle's force moves the others.

Update convention (README): x_i <- x_i + (η_G / N) Σ_j Θ_ij F_j, with Θ_ii = g1 (1 by default).

A registry entry is a factory ``make(cfg) -> Kernel``; a Kernel gives
  * ``init(x0, gens, hyper) -> (x, kstate)``  x0 `(B, N, d)`; kstate: dict of `(B, ...)` tensors
  * ``move(kstate, x, F, step, hyper) -> (x, kstate)``  step = η_G/N, `(B,)`
  * ``retune(kstate, hyper) -> kstate``      recompute what a live hyper change affects
  * ``spectrum(kstate, hyper) -> (levels (B, k), multiplicity (B, k))`` of the N×N Θ (per
    output dimension; divide by N for the rates of the update above)

`two_number` never forms an N×N matrix (O(N·d) per step). `rbf`, `relu_ntk` (codes z_i on the
sphere S^(dz−1)) and `linear` are Θ_ij = g1·K(z_i, z_j) over fixed latent codes: cached as a
`(B, N, N)` tensor while it fits DENSE_MAX_BYTES; above, no N×N matrix is ever stored
(N = 100,000 would need 40 GB): under torch.compile (knob `compile`) a move is one fused
pairwise reduction (`fused_apply`), eagerly Θ is formed block by block at every move; the
top of the spectrum comes by block Krylov iteration above SPECTRUM_FULL_N. `network` is a
real finite ReLU generator G(z) moved by gradient descent on its weights, normalised so its
empirical Θ_ii averages g1.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import torch

from . import rng
from .knobs import ConfigError
from .registry import Registry

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Kernel:
    init: Callable
    move: Callable
    retune: Callable
    spectrum: Callable
    matrix: Callable | None = None     # (kstate, hyper) -> (B, N, N), dense kernels only


@dataclasses.dataclass(frozen=True)
class KernelKind:
    """A KERNELS entry: the factory make(cfg) -> Kernel (call the entry), and what a caller
    needs to know before building one. levels(N): how many levels `Kernel.spectrum` reports
    (sweeps size their arrays with it); theta_per_particle: forming Θ costs one backward pass
    per particle (an empirical NTK), so a live spectrum stays at small N. memory(cfg, s) ->
    (bytes, knobs): peak bytes for the sizes `s` (`budget.Sizes`), read by `dynamics.budget`."""
    make: Callable[[dict], Kernel]
    levels: Callable[[int], int]
    theta_per_particle: bool = False
    memory: Callable[[dict, object], tuple[int, tuple[str, ...]]] | None = None

    def __call__(self, cfg) -> Kernel:
        return self.make(cfg)


KERNELS: Registry[KernelKind] = Registry("kernel.kind")


def kernel_kind(name: str, levels: Callable[[int], int] | None = None, theta_per_particle: bool = False,
                memory=None):
    """Register a factory as KERNELS[name]; levels and memory default to the dense kernels'
    (`dense_levels`, `dense_memory`)."""
    def deco(make):
        KERNELS.add(name, KernelKind(make, levels or dense_levels, theta_per_particle, memory or dense_memory))
        return make
    return deco


def dense_levels(N: int) -> int:
    """Every level up to SPECTRUM_FULL_N, above that the top SPECTRUM_TOP (block Krylov)."""
    return N if N <= SPECTRUM_FULL_N else min(N, SPECTRUM_TOP)


def dense_memory(cfg, s) -> tuple[int, tuple[str, ...]]:
    """Peak bytes of a dense kernel: the codes, Θ when it is cached (≤ DENSE_MAX_BYTES), and a
    matrix-free block with its temporaries."""
    full = s.B * s.N * s.N * s.b
    block = min(full, BLOCK_BYTES_GPU if s.gpu else BLOCK_BYTES)
    cached = full if full <= DENSE_MAX_BYTES else 0
    return s.B * s.N * cfg["kernel.latent_dim"] * s.b + cached + 6 * block, ("particles", "kernel.latent_dim")


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


@kernel_kind("two_number", levels=lambda N: 2, memory=lambda cfg, s: (0, ("particles",)))
def two_number(cfg) -> Kernel:
    N = cfg["particles"]
    return Kernel(
        init=lambda x0, gens, hyper: (x0, {}),
        move=lambda ks, x, F, step, h: (two_number_move(x, F, step, h["kernel.g1"], h["kernel.ratio"]), ks),
        retune=lambda ks, h: ks,
        spectrum=lambda ks, h: two_number_levels(N, h["kernel.g1"], h["kernel.ratio"]),
    )


# ---------------------------------------------------------------- dense kernels over latent codes
DENSE_MAX_BYTES = 512 * 2**20      # cache Θ (B, N, N) below this; above, never store it
BLOCK_BYTES = 32 * 2**20           # one (B, rows, N) block of Θ formed on the fly (CPU)
BLOCK_BYTES_GPU = 512 * 2**20      # on a GPU: fewer, larger blocks (each costs ~15 kernel launches)
FUSED_MAX_P = 8                    # fused moves for Θ V with V (B, N, p) up to this p (moves: p = d)
FUSED_MAX_DZ = 64                  # and codes up to this d_z (the overlap z_i·z_j is unrolled)
SPECTRUM_FULL_N = 2048             # every eigenvalue up to this N; above, the top SPECTRUM_TOP (block Krylov)
SPECTRUM_TOP = 32
MATRIX_MAX_BYTES = 4 * 2**30       # kernel.matrix refuses to form a larger Θ


def sphere_codes(gens, N: int, dz: int, dtype, device) -> Tensor:
    """(B, N, dz) codes uniform on S^(dz−1)."""
    z = rng.stacked_normal(gens, (N, dz), dtype, device)
    return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def block_rows(B: int, N: int, itemsize: int, budget: int | None = None, device=None) -> int:
    """Rows of a (B, rows, N) block of Θ that fit in `budget` bytes (BLOCK_BYTES, or
    BLOCK_BYTES_GPU on a CUDA device)."""
    if budget is None:
        budget = BLOCK_BYTES_GPU if torch.device(device or "cpu").type == "cuda" else BLOCK_BYTES
    return max(1, min(N, budget // max(1, B * N * itemsize)))


def eager_under_compile(fn: Callable) -> Callable:
    """torch.compiler.disable applied at the call, not at import: the decorator imports dynamo
    (~1 s, and the whole compiler stack) that an eager run never needs. Eagerly fn runs as is;
    traced by torch.compile the call graph-breaks and fn runs eagerly, as under the decorator."""
    @functools.wraps(fn)
    def call(*args, **kw):
        if not torch.compiler.is_compiling():
            return fn(*args, **kw)
        return torch.compiler.disable(fn)(*args, **kw)
    return call


@eager_under_compile          # under torch.compile: run this loop eagerly, never unroll it into a graph
def blocked_apply(pair_fn, z: Tensor, V: Tensor, rows: int) -> Tensor:
    """K V without K in memory: K[:, a:b] = pair_fn(z[:, a:b], z, a) `(B, rows, N)`, one block at
    a time (a: the column of the block's first own code, i.e. its diagonal offset).
    z `(B, N, dz)`, V `(B, N, p)` -> `(B, N, p)`. Loops over row blocks only (static slices: no
    host sync on a GPU)."""
    N = z.shape[1]
    out = V.new_empty(V.shape)
    for a in range(0, N, rows):
        out[:, a:a + rows] = torch.bmm(pair_fn(z[:, a:a + rows], z, a), V)
    return out


def blocked_fill(pair_fn, z: Tensor, rows: int) -> Tensor:
    """K `(B, N, N)` filled block by block as in `blocked_apply`, so that forming a cached Θ
    needs one block's temporaries beside it, not several N×N ones."""
    B, N = z.shape[:2]
    out = z.new_empty(B, N, N)
    for a in range(0, N, rows):
        out[:, a:a + rows] = pair_fn(z[:, a:a + rows], z, a)
    return out


@torch.library.custom_op("effgan::columns", mutates_args=())
def columns(V: Tensor) -> Tensor:
    """`(B, p, N)` contiguous copy of V `(B, N, p)`. A custom op, so torch.compile stores it
    instead of folding the transpose into its consumer: the fused reduction below then reads
    codes and forces along N with contiguous vector loads (the speed-up is in BENCHMARKS.md)."""
    return V.transpose(1, 2).contiguous()


@columns.register_fake
def _columns_shape(V: Tensor) -> Tensor:
    return V.new_empty(V.shape[0], V.shape[2], V.shape[1])


def fused_apply(of_overlap, unit_diag: bool, z: Tensor, V: Tensor) -> Tensor:
    """K V `(B, N, p)` with K_ij = of_overlap(z_i·z_j) `(B, N, N)` never stored, written for
    torch.compile: the overlap as d_z broadcast products, the kernel and the p sums over j are
    pointwise work feeding one reduction, which inductor fuses into a single loop nest (CPU)
    or kernel (GPU) holding only `(B, N, p)` (a product or a sum over d_z would be stored as a
    (B, N, N) buffer first). Eagerly it would store several (B, N, N) temporaries: call it only
    while compiling (`_dense_kernel` does). unit_diag: codes on the sphere, their
    self-overlaps set to exactly 1 (as `pair_block`). z `(B, N, dz)`, V `(B, N, p)`."""
    zT, VT = columns(z), columns(V)                          # (B, dz, N), (B, p, N)
    rho = z[:, :, 0, None] * zT[:, None, 0, :]
    for k in range(1, z.shape[-1]):
        rho = rho + z[:, :, k, None] * zT[:, None, k, :]
    if unit_diag:
        i = torch.arange(z.shape[1], device=z.device)
        rho = torch.where(i[:, None] == i[None, :], torch.ones_like(rho), rho)
    K = of_overlap(rho)
    return torch.stack([(K * VT[:, None, c, :]).sum(-1) for c in range(VT.shape[1])], -1)


def spectrum_levels(kind: str, N: int) -> int:
    """How many levels `Kernel.spectrum` reports for N particles, without computing them."""
    return KERNELS[kind].levels(N)


def top_eigenvalues(apply_fn, B: int, N: int, k: int, dtype, device, iters: int = 10, extra: int = 16) -> Tensor:
    """(B, k) largest eigenvalues, descending, of symmetric PSD matrices A `(B, N, N)` known only
    through apply_fn(V) = A V, V `(B, N, p)`: block Krylov (block Lanczos with full
    reorthogonalisation, p = k + extra vectors, iters + 1 passes over A) and Rayleigh–Ritz.
    Each pass forms A once whatever p, so a wide block costs little more than one vector.
    The Ritz problem goes through the Gram matrix of the basis, so directions lost to
    rounding (a numerically low-rank A) cannot masquerade as eigenvectors."""
    p = min(N, k + extra)
    g = torch.Generator().manual_seed(0)                     # fixed start: a repeatable spectrum
    Q = torch.linalg.qr(torch.randn(B, N, p, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)).Q
    basis, images = [Q], []
    for _ in range(iters):
        W = apply_fn(Q)
        images.append(W)
        for _ in range(2):                                   # Gram–Schmidt: twice is enough
            for Qj in basis:
                W = W - torch.bmm(Qj, torch.bmm(Qj.transpose(1, 2), W))
        Q = torch.linalg.qr(W).Q
        basis.append(Q)
    images.append(apply_fn(Q))
    V, AV = torch.cat(basis, -1), torch.cat(images, -1)      # (B, N, m)
    T = torch.bmm(V.transpose(1, 2), AV).double()
    T = (T + T.transpose(1, 2)) / 2                          # (B, m, m)
    s, U = torch.linalg.eigh(torch.bmm(V.transpose(1, 2), V).double())
    keep = s > s[:, -1:] * 1e-10
    W = U * torch.where(keep, s.clamp_min(1e-300).rsqrt(), torch.zeros_like(s)).unsqueeze(1)
    ev = torch.linalg.eigvalsh(torch.bmm(W.transpose(1, 2), torch.bmm(T, W)))
    return ev.flip(-1)[:, :k].to(dtype)


def relu_ntk(rho: Tensor, depth: int, bias: float = 0.0) -> Tensor:
    """Infinite-width NTK Θ(ρ) of a ReLU net with `depth` hidden layers on unit-norm inputs.

    Parametrisation (the `network` kernel's): u1 = W1 z + σ_b b1, u_{l+1} = √(2/H) W h_l + σ_b b,
    all weights and biases N(0, 1). Recursion: Σ1 = ρ + σ_b², Θ1 = Σ1; for each further layer,
    with q the (input-independent) diagonal variance and cos θ = Σ/q (arc-cosine kernels),
    Σ' = 2E[relu·relu] + σ_b² = (q/π)(sin θ + (π−θ) cos θ) + σ_b², Σ̇ = 2E[relu'·relu'] = (π−θ)/π,
    Θ' = Θ Σ̇ + Σ', q' = q + σ_b². Without bias, Θ(0)/Θ(1) = 1/(2π) for one hidden layer and
    ≈ 0.229 for two. Written as a few in-place passes over fresh buffers (rho is left alone):
    the blocked kernels evaluate it N² times per move. sin θ = √((1 − cos θ)(1 + cos θ)): one
    square root instead of a sine (exact, 0 on the diagonal).
    """
    sig = rho + bias
    theta = sig.clone()
    q = 1.0 + bias
    for layer in range(depth):
        ncos = sig.mul(-1.0 / q).clamp_(-1.0, 1.0)          # −cos θ
        pth = torch.arccos(ncos)                            # π − θ = arccos(−cos θ)
        sig = ncos.add(1.0).mul_(1.0 - ncos).sqrt_().addcmul_(pth, ncos, value=-1.0).mul_(q / math.pi)
        if bias:
            sig.add_(bias)
        theta.mul_(pth.mul_(1.0 / math.pi)).add_(sig)
        q = q + bias                                        # 2·E[relu²] = q, plus the bias
    return theta


def pair_block(of_overlap, unit_diag: bool, za: Tensor, zb: Tensor, offset: int | None = None) -> Tensor:
    """`(B, n, m)` of_overlap(za·zb) for codes za `(B, n, dz)`, zb `(B, m, dz)`.

    offset, with unit_diag (codes on the sphere): za = zb[:, offset:offset + n], whose overlaps
    with themselves are set to exactly 1. Kernels such as relu_ntk have a √(1 − ρ) cusp at
    ρ = 1, so the rounding of z·z (a few ulps, and not the same in a block as in the full
    product) would otherwise leak √eps into Θ_ii."""
    rho = torch.bmm(za, zb.transpose(1, 2))
    if unit_diag and offset is not None:
        rho.diagonal(offset, 1, 2).fill_(1.0)
    return of_overlap(rho)


def _dense_kernel(cfg, of_overlap, unit_diag: bool = True, codes_fn=None, scale: float = 1.0) -> Kernel:
    """Θ = g1 · scale · K(z_i, z_j), K = of_overlap(z_i·z_j, hyper) over codes z `(B, N, dz)`
    fixed at init (on the sphere unless codes_fn(gens, dtype, device) draws others). of_overlap
    maps overlaps `(B, n, m)` to kernel values and may work in place; the constant `scale`
    multiplies the `(B, N, p)` product, not every pair.

    While the batch's Θ `(B, N, N)` fits in DENSE_MAX_BYTES it is cached (rebuilt on retune) and a
    move is one bmm: reading a stored Θ beats recomputing it. Above, the state holds only z and
    each product Θ V is O(N²·(dz + p)) work in O(N·dz) memory: one fused reduction while
    torch.compile traces the step (`fused_apply`, p ≤ FUSED_MAX_P, dz ≤ FUSED_MAX_DZ), else Θ
    formed block by block (`blocked_apply`; the spectrum's wide V, eager steps).
    """
    N, dz = cfg["particles"], cfg["kernel.latent_dim"]
    if codes_fn is None:
        def codes_fn(gens, dtype, device):
            return sphere_codes(gens, N, dz, dtype, device)

    def pairs(hyper):
        """(za, zb, offset) -> K block `(B, n, m)`, bound to the live knobs."""
        return lambda za, zb, a: pair_block(lambda rho: of_overlap(rho, hyper), unit_diag, za, zb, a)

    def build(z, hyper):
        rows = block_rows(z.shape[0], N, z.element_size(), device=z.device)
        theta = blocked_fill(pairs(hyper), z, rows)
        return theta.mul_(_col(hyper["kernel.g1"] * scale))

    def init(x0, gens, hyper):
        z = codes_fn(gens, x0.dtype, x0.device)
        if z.shape[0] * N * N * z.element_size() <= DENSE_MAX_BYTES:
            return x0, {"z": z, "theta": build(z, hyper)}
        return x0, {"z": z}

    def apply(ks, hyper, V):
        """Θ V, V `(B, N, p)`."""
        if "theta" in ks:
            return torch.bmm(ks["theta"], V)
        z = ks["z"]
        if torch.compiler.is_compiling() and V.shape[-1] <= FUSED_MAX_P and dz <= FUSED_MAX_DZ:
            KV = fused_apply(lambda rho: of_overlap(rho, hyper), unit_diag, z, V)
        else:
            KV = blocked_apply(pairs(hyper), z, V, block_rows(z.shape[0], N, z.element_size(), device=z.device))
        return _col(hyper["kernel.g1"] * scale) * KV

    def move(ks, x, F, step, hyper):
        return x + _col(step) * apply(ks, hyper, F), ks

    def retune(ks, hyper):
        return {**ks, "theta": build(ks["z"], hyper)} if "theta" in ks else ks

    def matrix(ks, hyper):
        if "theta" in ks:
            return ks["theta"]
        z = ks["z"]
        size = z.shape[0] * N * N * z.element_size()
        if size > MATRIX_MAX_BYTES:
            raise ConfigError(f"particles: Θ of N = {N} would take {size / 2**30:.0f} GiB; allowed N up to "
                              f"{math.isqrt(MATRIX_MAX_BYTES // (z.shape[0] * z.element_size()))} for the full "
                              "matrix (moves and the top of the spectrum need no matrix)")
        return build(z, hyper)

    def spectrum(ks, hyper):
        z = ks["z"]
        B = z.shape[0]
        if N > SPECTRUM_FULL_N:
            k = min(N, SPECTRUM_TOP)
            ev = top_eigenvalues(lambda V: apply(ks, hyper, V), B, N, k, z.dtype, z.device)
        elif "theta" in ks:
            ev = torch.linalg.eigvalsh(ks["theta"].double()).flip(-1).to(z.dtype)
        else:                                  # a big batch of small Θ: one member's matrix at a time
            ev = torch.cat([torch.linalg.eigvalsh(build(z[b:b + 1], {key: v[b:b + 1] for key, v in hyper.items()})
                                                  .double()).flip(-1) for b in range(B)]).to(z.dtype)
        return ev, torch.ones_like(ev, dtype=torch.int64)

    return Kernel(init, move, retune, spectrum, matrix)


def rbf_of_overlap(rho: Tensor, width: Tensor) -> Tensor:
    """exp(−‖a − b‖² / (2 w²)) = exp((a·b − 1) / w²) for unit codes, from rho = a·b `(B, n, m)`
    (overwritten), width `(B,)`."""
    w = _col(width)
    return rho.clamp_(max=1.0).sub_(1.0).div_(w * w).exp_()


def rbf_block(za: Tensor, zb: Tensor, width: Tensor) -> Tensor:
    """`(B, n, m)` rbf kernel of unit codes za `(B, n, dz)`, zb `(B, m, dz)`, width `(B,)`."""
    return rbf_of_overlap(torch.bmm(za, zb.transpose(1, 2)), width)


def relu_ntk_block(za: Tensor, zb: Tensor, depth: int, bias: float, offset: int | None = None) -> Tensor:
    """`(B, n, m)` relu_ntk(a·b) for unit codes za `(B, n, dz)`, zb `(B, m, dz)` (not normalised);
    offset as in `pair_block`."""
    return pair_block(lambda rho: relu_ntk(rho, depth, bias), True, za, zb, offset)


@kernel_kind("rbf")
def rbf(cfg) -> Kernel:
    """K = exp(−‖z_i − z_j‖² / (2 w²)) with w = kernel.width: w → ∞ is the rigid limit."""
    return _dense_kernel(cfg, lambda rho, h: rbf_of_overlap(rho, h["kernel.width"]))


@kernel_kind("relu_ntk")
def relu_ntk_kernel(cfg) -> Kernel:
    """K = relu_ntk(z_i·z_j) / relu_ntk(1): Θ_ii = g1."""
    depth, bias = cfg["kernel.depth"], cfg["kernel.bias"]
    norm = float(relu_ntk(torch.ones((), dtype=torch.float64), depth, bias))
    return _dense_kernel(cfg, lambda rho, h: relu_ntk(rho, depth, bias), scale=1.0 / norm)


@kernel_kind("linear")
def linear(cfg) -> Kernel:
    """A linear generator x = W z with q = kernel.latent_dim: its NTK is Θ = g1 · Z Zᵀ with codes
    z_i ~ N(0, I/q), rank min(q, N), worst conditioned at q = N (Marchenko–Pastur): the
    kernel of pseudo-supervised double descent (Luzi, Dar & Baraniuk)."""
    N, q = cfg["particles"], cfg["kernel.latent_dim"]

    def codes(gens, dtype, device):
        return rng.stacked_normal(gens, (N, q), dtype, device) / math.sqrt(q)
    return _dense_kernel(cfg, lambda rho, h: rho, unit_diag=False, codes_fn=codes)


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


def _network_memory(cfg, s):
    H, depth, dz = cfg["kernel.net_width"], cfg["kernel.depth"], cfg["kernel.latent_dim"]
    P = H * dz + H + (depth - 1) * (H * H + H) + s.d * H + s.d + 1
    # params, gradients, new params; activations kept for the backward; init's 8-row NTK Jacobian
    return (s.B * s.b * (4 * P + 4 * depth * s.N * H + 2 * 8 * P + s.N * dz),
            ("kernel.net_width", "kernel.depth", "particles"))


@kernel_kind("network", levels=lambda N: N, theta_per_particle=True, memory=_network_memory)
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
