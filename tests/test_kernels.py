"""Generator kernels: exact spectra, rigid motion, the ReLU NTK against a finite network."""
import math
import warnings

import pytest
import torch

from dynamics import rng
from dynamics.engine import build
from dynamics.kernels import KERNELS, empirical_ntk, relu_ntk, sphere_codes, two_number_levels, two_number_move
from dynamics.knobs import resolve

f64 = torch.float64


def dense_two_number(N, g1, g2):
    return (g1 - g2) * torch.eye(N, dtype=f64) + g2 * torch.ones(N, N, dtype=f64)


def test_two_number_spectrum_is_exactly_two_levels():
    """Θ = (g1 − g2) I + g2 11ᵀ has two levels, g1 + (N−1) g2 (×1) and g1 − g2 (×(N−1)):
    N = 100, g1 = 1, g2 = 0.3 -> 30.7 (×1) and 0.7 (×99)."""
    levels, mult = two_number_levels(100, torch.tensor([1.0], dtype=f64), torch.tensor([0.3], dtype=f64))
    torch.testing.assert_close(levels[0], torch.tensor([30.7, 0.7], dtype=f64))
    assert mult[0].tolist() == [1, 99]
    ev = torch.linalg.eigvalsh(dense_two_number(100, 1.0, 0.3))
    torch.testing.assert_close(ev[-1], torch.tensor(30.7, dtype=f64))
    torch.testing.assert_close(ev[:-1], torch.full((99,), 0.7, dtype=f64))


def test_two_number_move_equals_dense_matrix():
    g = torch.Generator().manual_seed(0)
    x, F = torch.randn(2, 9, 3, generator=g, dtype=f64), torch.randn(2, 9, 3, generator=g, dtype=f64)
    g1, r, step = torch.tensor([1.0, 2.0], dtype=f64), torch.tensor([0.3, 0.8], dtype=f64), torch.tensor([0.1, 0.2],
                                                                                                            dtype=f64)
    out = two_number_move(x, F, step, g1, r)
    for b in range(2):
        theta = dense_two_number(9, float(g1[b]), float(r[b] * g1[b]))
        torch.testing.assert_close(out[b], x[b] + step[b] * theta @ F[b])


def _pairwise(x):
    return torch.cdist(x, x)


@pytest.mark.parametrize("disc", [{"disc.activation": "relu"}, {"disc.activation": "sigmoid"},
                                  {"disc.kind": "linear"}, {"disc.activation": "tanh", "loss": "ns"}])
def test_rigid_cloud_at_r_equal_one(disc):
    """At g2 = g1 relative coordinates never change, whatever the critic."""
    sim = build({**disc, "kernel.ratio": 1.0, "dtype": "float64", "particles": 16})
    s = sim.init()
    d0 = _pairwise(s.x)
    X0 = s.x.mean(1)
    for _ in range(200):
        s = sim.step(s)
    torch.testing.assert_close(_pairwise(s.x), d0, rtol=0, atol=1e-12)
    assert float((s.x.mean(1) - X0).norm()) > 1e-3          # ... while the cloud as a whole moved


def test_independent_particles_at_r_zero():
    """g2 = 0: each particle moves by (η_G g1 / N) F_i, blind to the others."""
    sim = build({"kernel.ratio": 0.0, "dtype": "float64", "particles": 8, "update": "simultaneous"})
    s = sim.init()
    D, g = sim.disc.value_and_grad(s.disc, s.x)
    s1 = sim.step(s)
    torch.testing.assert_close(s1.x - s.x, 0.1 / 8 * g, rtol=1e-12, atol=1e-14)


def test_linear_critic_translates_the_cloud_at_the_collective_rate():
    """A constant force (a linear critic) moves only the centre of mass, at η_G(g1+(N−1)g2)/N·|ψ|."""
    N, r = 10, 0.4
    sim = build({"disc.kind": "linear", "kernel.ratio": r, "dtype": "float64", "particles": N,
                 "update": "simultaneous", "target.kind": "point"})
    s = sim.init()
    s = s.replace(disc={"psi": torch.tensor([[0.3, -0.2]], dtype=f64), "c": torch.zeros(1, dtype=f64)})
    s1 = sim.step(s)
    torch.testing.assert_close(_pairwise(s1.x), _pairwise(s.x), rtol=0, atol=1e-13)
    expect = 0.1 * (1 + (N - 1) * r) / N * torch.tensor([0.3, -0.2], dtype=f64)
    torch.testing.assert_close((s1.x - s.x)[0], expect.expand(N, 2))


def test_relu_ntk_ratios():
    """The ReLU NTK's g2/g1 = Θ(0)/Θ(1) is 1/(2π) for one hidden layer without bias, ≈ 0.229 for two."""
    zero, one = torch.zeros((), dtype=f64), torch.ones((), dtype=f64)
    assert float(relu_ntk(zero, 1) / relu_ntk(one, 1)) == pytest.approx(1 / (2 * math.pi), rel=1e-12)
    assert float(relu_ntk(zero, 2) / relu_ntk(one, 2)) == pytest.approx(0.2286, abs=5e-4)
    deeper = [float(relu_ntk(zero, L) / relu_ntk(one, L)) for L in (1, 2, 3, 4)]
    assert deeper == sorted(deeper)                                 # depth raises g2/g1
    assert float(relu_ntk(zero, 1, 0.5) / relu_ntk(one, 1, 0.5)) > deeper[0]   # and so does bias


@pytest.mark.parametrize("depth", [1, 2])
def test_relu_ntk_matches_empirical_ntk_of_a_wide_network(depth):
    cfg = resolve({"kernel.kind": "network", "kernel.depth": depth, "kernel.net_width": 2048,
                   "kernel.latent_dim": 3, "particles": 6})
    gens = rng.generators([0])
    x0 = 0.1 * rng.stacked_normal(gens, (6, 2), f64, "cpu")
    kern = KERNELS["network"](cfg)
    _, ks = kern.init(x0, gens, {"kernel.g1": torch.ones(1, dtype=f64)})
    emp = empirical_ntk(ks["params"], ks["z"], depth, 0.0)[0]
    z = ks["z"][0]
    ana = relu_ntk((z @ z.T).clamp(-1, 1), depth)
    emp = emp / emp.diagonal().mean()
    ana = ana / ana.diagonal().mean()
    # finite-width fluctuations shrink like 1/sqrt(width): a few per cent at 2048
    assert float((emp - ana).norm() / ana.norm()) < 0.05


def test_network_kernel_is_normalised_to_g1():
    sim = build({"kernel.kind": "network", "kernel.net_width": 256, "particles": 8, "dtype": "float64"})
    s = sim.init()
    theta = sim.kernel.matrix(s.kernel, s.hyper)[0]
    assert float(theta.diagonal().mean()) == pytest.approx(1.0, rel=0.2)
    s2 = sim.step(s)
    assert float((s2.x - s.x).abs().max()) > 0                       # a real network moved


def test_relu_ntk_universality_offdiagonal_spread_shrinks_like_one_over_sqrt_dz():
    """Off-diagonal std of the realistic kernel (N = 64, one layer): 0.126 at d_z = 16, 0.016 at 1024."""
    stds = {}
    for dz in (16, 1024):
        z = sphere_codes(rng.generators([0, 1, 2]), 64, dz, f64, "cpu")
        th = relu_ntk(torch.bmm(z, z.transpose(1, 2)).clamp(-1, 1), 1) / float(relu_ntk(torch.ones((), dtype=f64), 1))
        off = th[:, ~torch.eye(64, dtype=torch.bool)]
        stds[dz] = float(off.std(1).mean())
        assert float(off.mean()) == pytest.approx(1 / (2 * math.pi), abs=0.02 + 0.1 / math.sqrt(dz))
    assert stds[16] == pytest.approx(0.126, rel=0.2)
    assert stds[1024] == pytest.approx(0.016, rel=0.2)


def test_dense_spectrum_and_rbf_width():
    sim = build({"kernel.kind": "rbf", "particles": 12, "dtype": "float64"})
    s = sim.init([{"kernel.width": 0.3}, {"kernel.width": 30.0}])
    levels, _ = sim.kernel.spectrum(s.kernel, s.hyper)
    theta = sim.kernel.matrix(s.kernel, s.hyper)
    torch.testing.assert_close(levels, torch.linalg.eigvalsh(theta).flip(-1))
    # a wide kernel is nearly rigid: one collective level ≈ N, the rest ≈ 0
    assert float(levels[1, 0]) == pytest.approx(12.0, rel=0.01)
    assert float(levels[1, 1:].abs().max()) < 0.05
    assert float(levels[0, 0]) < 6                                   # a narrow one couples weakly
    s2 = sim.set_hyper(s, {"kernel.width": 30.0})                    # live retune rebuilds Θ
    torch.testing.assert_close(sim.kernel.matrix(s2.kernel, s2.hyper)[0], theta[1], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- blocked (matrix-free) dense kernels
from dynamics import kernels  # noqa: E402

DENSE_KINDS = [{"kernel.kind": "rbf", "kernel.width": 0.7},
               {"kernel.kind": "relu_ntk", "kernel.depth": 2, "kernel.bias": 0.1, "kernel.latent_dim": 5},
               {"kernel.kind": "linear", "kernel.latent_dim": 40}]


def _run(cfg, steps, members=None, retune=None):
    sim = build(cfg)
    s = sim.init(members)
    for i in range(steps):
        if retune is not None and i == steps // 2:
            s = sim.set_hyper(s, retune)
        s = sim.step(s)
    return sim, s


@pytest.mark.parametrize("kind", DENSE_KINDS, ids=lambda c: c["kernel.kind"])
@pytest.mark.parametrize("rows", [1, 7, 64, 150])
def test_blocked_apply_equals_the_dense_product(kind, rows):
    """Θ V formed block by block (row counts that do and do not divide N = 150) is Θ V."""
    sim = build({**kind, "particles": 150, "dtype": "float64"})
    s = sim.init([{"seed": 3}, {"seed": 4, "kernel.g1": 2.0}])
    theta = sim.kernel.matrix(s.kernel, s.hyper)                              # cached: N is small
    V = torch.randn(2, 150, 3, generator=torch.Generator().manual_seed(0), dtype=f64)
    norm = float(relu_ntk(torch.ones((), dtype=f64), 2, 0.1))
    pair = {"rbf": lambda za, zb, a: kernels.rbf_block(za, zb, s.hyper["kernel.width"]),
            "relu_ntk": lambda za, zb, a: kernels.relu_ntk_block(za, zb, 2, 0.1, a) / norm,
            "linear": lambda za, zb, a: za @ zb.transpose(1, 2)}[kind["kernel.kind"]]
    out = kernels.blocked_apply(pair, s.kernel["z"], V, rows) * s.hyper["kernel.g1"].view(-1, 1, 1)
    torch.testing.assert_close(out, torch.bmm(theta, V), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", DENSE_KINDS, ids=lambda c: c["kernel.kind"])
def test_blocked_engine_follows_the_dense_trajectory(kind, monkeypatch):
    """Over a run with a live retune halfway, the matrix-free kernel (Θ never stored, 13-row
    blocks of N = 90) moves the particles exactly as the cached Θ does."""
    cfg = {**kind, "particles": 90, "dtype": "float64"}
    members = [{"seed": 1}, {"seed": 2, "kernel.g1": 0.5}]
    retune = {"kernel.width": 2.0} if kind["kernel.kind"] == "rbf" else {"kernel.g1": 3.0}
    _, dense = _run(cfg, 30, members, retune)
    assert "theta" in dense.kernel
    monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 0)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 2 * 90 * 8 * 13)                  # 13 rows: not a divisor of 90
    assert kernels.block_rows(2, 90, 8) == 13
    _, blocked = _run(cfg, 30, members, retune)
    assert "theta" not in blocked.kernel
    torch.testing.assert_close(blocked.x, dense.x, rtol=1e-11, atol=1e-11)
    assert float((dense.x - _run(cfg, 0, members)[1].x).abs().max()) > 1e-3         # the particles did move


class _Largest(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the largest tensor any torch operation returns while active."""
    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("kind", ["rbf", "relu_ntk"])
def test_large_n_holds_and_forms_no_n_by_n_tensor(kind, monkeypatch):
    """Above the size threshold the state keeps only the codes (N = 30,000, the real thresholds),
    and a retune, a move and the top of the spectrum never create a tensor larger than one
    block or the Krylov basis (N = 3000, 100-row blocks, thresholds lowered)."""
    N = 30_000
    sim = build({"kernel.kind": kind, "particles": N, "dtype": "float64"})          # real thresholds
    s = sim.init()
    assert "theta" not in s.kernel and max(t.numel() for t in s.kernel.values()) < 20 * N
    N = 3000
    monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 2**20)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 100 * N * 8)
    monkeypatch.setattr(kernels, "SPECTRUM_FULL_N", 1000)
    sim = build({"kernel.kind": kind, "particles": N, "dtype": "float64", "real": 64})
    s = sim.init()
    assert sorted(s.kernel) == ["z"]
    with _Largest() as mode:
        s1 = sim.step(sim.set_hyper(s, {"kernel.g1": 2.0}))
        levels, mult = sim.kernel.spectrum(s1.kernel, s1.hyper)
    krylov = N * (kernels.SPECTRUM_TOP + 16) * 11                 # the basis of top_eigenvalues' defaults
    assert mode.largest <= max(100 * N, krylov) < N * N / 5 and sorted(s1.kernel) == ["z"]
    assert levels.shape == (1, kernels.SPECTRUM_TOP) and (mult == 1).all()
    assert float((s1.x - s.x).abs().max()) > 0


@pytest.mark.parametrize("kind", DENSE_KINDS, ids=lambda c: c["kernel.kind"])
def test_top_of_the_spectrum_matches_the_dense_eigenvalues(kind, monkeypatch):
    """Block Krylov over the blocked product (no Θ stored) gives the top SPECTRUM_TOP eigenvalues
    of the dense matrix, member by member (N = 500)."""
    monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 0)
    monkeypatch.setattr(kernels, "SPECTRUM_FULL_N", 100)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 2 * 500 * 8 * 60)
    sim = build({**kind, "particles": 500, "dtype": "float64"})
    s = sim.init([{"seed": 5}, {"seed": 6, "kernel.g1": 2.5}])
    levels, _ = sim.kernel.spectrum(s.kernel, s.hyper)
    dense = torch.linalg.eigvalsh(sim.kernel.matrix(s.kernel, s.hyper)).flip(-1)[:, :kernels.SPECTRUM_TOP]
    torch.testing.assert_close(levels, dense, rtol=1e-9, atol=1e-9 * float(dense.max()))
    assert float(levels[1, 0] / levels[0, 0]) != pytest.approx(1.0, abs=1e-3)     # members differ


def test_top_eigenvalues_resolve_a_degenerate_cluster():
    """A planted spectrum: one collective level, a 20-fold cluster and a bulk below (N = 400)."""
    g = torch.Generator().manual_seed(1)
    B, N = 2, 400
    Q = torch.linalg.qr(torch.randn(B, N, N, generator=g, dtype=f64)).Q
    lam = torch.cat([torch.tensor([50.0]), torch.full((20,), 3.0), torch.linspace(1.0, 0.0, N - 21)]).to(f64)
    A = Q @ torch.diag_embed(lam.expand(B, N)) @ Q.transpose(1, 2)
    top = kernels.top_eigenvalues(lambda V: A @ V, B, N, 32, f64, "cpu")
    torch.testing.assert_close(top, lam[:32].expand(B, 32), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("kind", ["two_number", "rbf", "relu_ntk", "linear", "network"])
def test_spectrum_levels_counts_what_spectrum_reports(kind, monkeypatch):
    """Sweeps size their spectrum arrays with spectrum_levels, before running anything."""
    from dynamics import kernels
    from dynamics.engine import build
    monkeypatch.setattr(kernels, "SPECTRUM_FULL_N", 40)          # so N = 50 takes the top-k path
    for N in (12, 50):
        sim = build({"kernel.kind": kind, "particles": N, "dtype": "float64", "kernel.net_width": 64}
                    if kind == "network" else {"kernel.kind": kind, "particles": N, "dtype": "float64"})
        s = sim.init()
        levels, _ = sim.kernel.spectrum(s.kernel, s.hyper)
        assert levels.shape[1] == kernels.spectrum_levels(kind, N)


# ---------------------------------------------------------------- fused (compiled) matrix-free moves
def _compiled_move(sim):
    return torch.compile(lambda ks, x, F, lr, h: sim.kernel.move(ks, x, F, lr, h)[0], dynamic=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind", DENSE_KINDS, ids=lambda c: c["kernel.kind"])
def test_fused_move_equals_the_dense_product(kind, monkeypatch):
    """Under torch.compile a matrix-free move is one fused pairwise reduction (the blocked loop
    is never entered), and it moves the particles as the cached Θ does, Θ_ii = g1 included."""
    members = [{"seed": 3}, {"seed": 4, "kernel.g1": 2.0}]
    cfg = {**kind, "particles": 150, "dtype": "float64"}
    dense = build(cfg)
    s = dense.init(members)
    F = torch.randn(2, 150, 2, generator=torch.Generator().manual_seed(0), dtype=f64)
    lr = s.hyper["lr.gen"] / 150
    expect = s.x + lr.view(-1, 1, 1) * torch.bmm(dense.kernel.matrix(s.kernel, s.hyper), F)
    monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 0)

    def never(*a, **k):
        raise AssertionError("the blocked loop ran under compile")
    monkeypatch.setattr(kernels, "blocked_apply", never)
    sim = build(cfg)
    s = sim.init(members)
    assert "theta" not in s.kernel
    torch.testing.assert_close(_compiled_move(sim)(s.kernel, s.x, F, lr, s.hyper), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_wide_products_under_compile_leave_the_graph_for_the_blocked_loop(monkeypatch):
    """V wider than FUSED_MAX_P (d = 9 here) runs the blocked loop eagerly inside a compiled
    step (a graph break, not 1 graph per block) and still equals the dense product."""
    cfg = {"kernel.kind": "relu_ntk", "particles": 120, "dtype": "float64"}
    dense = build(cfg)
    s = dense.init()
    F = torch.randn(1, 120, kernels.FUSED_MAX_P + 1, generator=torch.Generator().manual_seed(1), dtype=f64)
    x = torch.zeros_like(F)
    expect = torch.bmm(dense.kernel.matrix(s.kernel, s.hyper), F)
    monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 0)
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 120 * 8 * 50)                    # 50-row blocks
    sim = build(cfg)
    s = sim.init()
    torch.testing.assert_close(_compiled_move(sim)(s.kernel, x, F, torch.ones(1, dtype=f64), s.hyper), expect,
                               rtol=1e-12, atol=1e-12)


class _no_fallback:
    """Fails if the compiled step fell back to eager (a RuntimeWarning from the engine)."""
    def __enter__(self):
        self._w = warnings.catch_warnings(record=True)
        self.log = self._w.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
        assert not [w for w in self.log if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in self.log]


@pytest.mark.slow
def test_compiled_engine_follows_the_dense_trajectory(monkeypatch):
    """A whole run with `compile` on and no Θ stored (fused moves) follows the eager run with
    the cached Θ (relu_ntk with two layers and bias, float64, two members)."""
    cfg = {"kernel.kind": "relu_ntk", "kernel.depth": 2, "kernel.bias": 0.1, "particles": 90, "dtype": "float64"}
    members = [{"seed": 1}, {"seed": 2, "kernel.g1": 0.5}]
    _, dense = _run(cfg, 20, members)
    monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 0)
    with _no_fallback():
        _, fused = _run({**cfg, "compile": True}, 20, members)
    assert "theta" not in fused.kernel
    torch.testing.assert_close(fused.x, dense.x, rtol=1e-9, atol=1e-9)


FUSED_MEMORY = """
import resource, sys, torch
from dynamics import kernels
from dynamics.engine import build
kernels.DENSE_MAX_BYTES = 0

def peak_move(N):
    sim = build({"kernel.kind": "relu_ntk", "particles": N, "dtype": "float32"})
    s = sim.init()
    F = torch.randn(1, N, 2, generator=torch.Generator().manual_seed(0))
    move = torch.compile(lambda ks, x, F, lr, h: sim.kernel.move(ks, x, F, lr, h)[0], dynamic=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    x = move(s.kernel, s.x, F, s.hyper["lr.gen"] / N, s.hyper)
    assert bool(torch.isfinite(x).all()) and float((x - s.x).abs().max()) > 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before

peak_move(512)                       # the compiler's own memory is paid here
print(peak_move(int(sys.argv[1])))
"""


@pytest.mark.slow
def test_fused_move_at_large_n_stores_no_n_by_n_matrix():
    """N = 30,000 in float32: Θ would take 3.6 GB; compiling and running the fused move raises
    the process's peak memory by far less (a fresh process, so the peak is this move's)."""
    import subprocess
    import sys
    N = 30_000
    out = subprocess.run([sys.executable, "-c", FUSED_MEMORY, str(N)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    grew = int(out.stdout.split()[-1])
    assert grew < 0.2 * N * N * 4, f"peak memory grew by {grew / 2**20:.0f} MiB"


def test_blocks_are_larger_on_a_gpu(monkeypatch):
    """The matrix-free kernel sizes its blocks by the device of its codes, and a CUDA device
    (as a GPU tensor reports it: `cuda:0`) gets fewer, larger blocks than the CPU; both hold at
    least one row and at most N. Runs without a GPU: the rule reads only the device's type."""
    seen = []
    real = kernels.block_rows
    monkeypatch.setattr(kernels, "block_rows", lambda *a, **k: seen.append(k.get("device")) or real(*a, **k))
    monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 0)                # matrix-free: blocks at every move
    _, s = _run({**DENSE_KINDS[0], "particles": 40, "dtype": "float64"}, 1)
    assert seen and all(dev == s.kernel["z"].device for dev in seen)   # the codes' device, never the default
    N, gpu, cpu = 100_000, torch.device("cuda", 0), torch.device("cpu")
    assert real(1, N, 4, device=gpu) > real(1, N, 4, device=cpu) > 1
    assert real(1, N, 4, device=gpu) == kernels.BLOCK_BYTES_GPU // (4 * N)
    assert real(1, 10**9, 8, device=gpu) == 1 and real(1, 10, 4, device=gpu) == 10
