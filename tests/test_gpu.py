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
