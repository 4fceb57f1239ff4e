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
