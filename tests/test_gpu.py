"""GPU path: runs when CUDA is present, skipped otherwise (tests/conftest.py)."""
import pytest
import torch

from dynamics.engine import build

pytestmark = pytest.mark.gpu


def test_cuda_batch_matches_cpu_in_float64():
    members = [{"seed": 1, "kernel.ratio": 0.1}, {"seed": 2, "kernel.ratio": 0.9}]
    out = {}
    for dev in ("cpu", "cuda"):
        sim = build({"device": dev, "dtype": "float64", "particles": 32})
        s = sim.init(members)
        for _ in range(100):
            s = sim.step(s)
        out[dev] = s.x.cpu()
        assert s.x.device.type == dev
    torch.testing.assert_close(out["cuda"], out["cpu"], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("kind", ["two_number", "rbf", "relu_ntk"])
def test_cuda_runs_every_kernel_and_flags_divergence(kind):
    sim = build({"device": "cuda", "kernel.kind": kind, "particles": 64, "reg.kind": "none"})
    s = sim.init([{"seed": 1}, {"seed": 2, "lr.gen": 5e3, "lr.disc": 50.0}])
    for _ in range(200):
        s = sim.step(s)
    assert s.alive.tolist() == [True, False] and int(s.diverged_step[1]) > 0


@pytest.mark.parametrize("fused", [False, True])
def test_cuda_step_never_synchronises_with_the_host(fused):
    """The hot step queues work only: torch's sync debug mode raises on any implicit sync."""
    sim = build({"device": "cuda", "particles": 64, "compile": fused})
    s = sim.init([{"seed": 1}, {"seed": 2}])
    for _ in range(3):                       # compile, warm up
        s = sim.step(s)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            s = sim.step(s)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert s.t == 13 and bool(s.alive.all())


def test_cuda_fused_step_follows_the_eager_step():
    out = []
    for fused in (False, True):
        sim = build({"device": "cuda", "dtype": "float64", "particles": 32, "compile": fused})
        s = sim.init([{"seed": 1}, {"seed": 2}])
        for _ in range(50):
            s = sim.step(s)
        out.append(s.x.cpu())
    torch.testing.assert_close(out[1], out[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["rbf", "relu_ntk"])
def test_cuda_blocked_kernel_follows_the_cpu_dense_trajectory(kind, monkeypatch):
    """Θ formed block by block on the GPU (37-row blocks of N = 300, never stored) moves the
    particles as the cached Θ does on the CPU, and gives the same top of the spectrum."""
    from dynamics import kernels
    members = [{"seed": 1}, {"seed": 2, "kernel.g1": 0.5}]
    out = {}
    for dev in ("cpu", "cuda"):
        if dev == "cuda":
            monkeypatch.setattr(kernels, "DENSE_MAX_BYTES", 0)
            monkeypatch.setattr(kernels, "BLOCK_BYTES_GPU", 2 * 300 * 8 * 37)
            assert kernels.block_rows(2, 300, 8, device="cuda") == 37
        sim = build({"device": dev, "kernel.kind": kind, "particles": 300, "dtype": "float64"})
        s = sim.init(members)
        for _ in range(50):
            s = sim.step(s)
        assert ("theta" in s.kernel) == (dev == "cpu")
        monkeypatch.setattr(kernels, "SPECTRUM_FULL_N", 100)
        out[dev] = s.x.cpu(), sim.kernel.spectrum(s.kernel, s.hyper)[0].cpu()
        monkeypatch.setattr(kernels, "SPECTRUM_FULL_N", 2048)
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("fused", [False, True], ids=["blocked", "fused"])
def test_cuda_relu_ntk_moves_100k_particles_without_an_n_by_n_matrix(fused):
    """N = 100,000 (Θ would take 40 GB in float32): the peak GPU memory of init and two steps
    (eager: Θ in row blocks; compiled: one fused reduction) stays far below it, and the move is
    (η_G/N)·Θ F row for row (first 64 rows checked in float64 against Θ formed directly)."""
    from dynamics.kernels import relu_ntk, relu_ntk_block
    N = 100_000
    torch.cuda.reset_peak_memory_stats()
    sim = build({"device": "cuda", "kernel.kind": "relu_ntk", "particles": N, "real": 4096,
                 "update": "simultaneous", "compile": fused})
    s = sim.init()
    _, F = sim.forces(s)
    s1 = sim.step(s)
    s2 = sim.step(s1)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() < 0.05 * N * N * 4
    assert "theta" not in s2.kernel and bool(s2.alive.all())
    z = s.kernel["z"].double()
    K = relu_ntk_block(z[:, :64], z, 1, 0.0, 0) / float(relu_ntk(torch.ones((), dtype=torch.float64), 1))
    expect = 0.1 / N * torch.bmm(K, F.double())
    # float32 state: x1 − x0 and a sum over 1e5 terms carry ~1e-5 relative rounding
    torch.testing.assert_close((s1.x - s.x)[:, :64].double(), expect, rtol=1e-3, atol=1e-4 * float(expect.abs().max()))
