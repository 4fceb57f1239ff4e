"""dynamics.budget: the memory estimate made before anything is allocated, against real allocations."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
import sys

import pytest
import torch

from dynamics import budget
from dynamics.engine import build
from dynamics.knobs import ConfigError, resolve

# what a fresh process allocates for one config: the peak RSS of simulate() over the RSS after a
# tiny warm-up run (imports and code paths loaded), in bytes, printed as one number. The peak is
# reset after the warm-up (clear_refs 5), so whatever the warm-up touched cannot hide the run's own.
MEASURE = """
import json, sys, torch
torch.set_num_threads(1)
from dynamics.knobs import resolve
from dynamics.run import simulate
def kib(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))
cfg = resolve(json.loads(sys.argv[1]))
simulate(resolve({**cfg, "particles": 4, "disc.width": 4, "target.modes": 4, "target.dim": 2}), None)
open("/proc/self/clear_refs", "w").write("5")
base = kib("VmRSS:")
simulate(cfg, [{"seed": i} for i in range(int(sys.argv[2]))])
print((kib("VmHWM:") - base) * 1024)
"""


@pytest.mark.parametrize("over", [
    {"particles": 20000, "disc.width": 512},                                   # critic activations
    {"particles": 5000, "kernel.kind": "relu_ntk"},                            # a cached (B, N, N) Θ
    {"target.dim": 20000, "target.modes": 2000},                               # target centres
], ids=["critic", "dense-kernel", "target"])
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resets the peak RSS through /proc")
def test_the_estimate_is_within_a_factor_of_the_memory_a_run_takes(over):
    cfg = resolve({"steps": 2, "record.every": 1, "device": "cpu", **over})
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(cfg), "2"], capture_output=True, text=True,
                         check=True)
    measured = int(out.stdout.split()[-1])
    est = budget.estimate_bytes(cfg, 2)
    assert measured > 50 * 2**20                        # the config is big enough for RSS to measure it
    assert measured / 2 < est < measured * 4, (measured, est)


def _tensor_bytes(tree) -> int:
    if isinstance(tree, dict):
        return sum(_tensor_bytes(v) for v in tree.values())
    return tree.numel() * tree.element_size() if isinstance(tree, torch.Tensor) else 0


@pytest.mark.parametrize("over", [{"disc.kind": k} for k in ("mlp", "linear", "f1_neuron", "f2_features", "ct")]
                         + [{"kernel.kind": k, "particles": 300} for k in ("rbf", "relu_ntk", "linear", "network")]
                         + [{"disc.depth": 3, "disc.optimizer": "adam"}, {"dtype": "float64", "target.kind": "digits"}])
def test_the_estimate_covers_every_tensor_a_built_state_holds(over):
    cfg = resolve({"steps": 1, "device": "cpu", **over})
    sim = build(cfg)
    s = sim.step(sim.init([{"seed": 1}, {"seed": 2}, {"seed": 3}]))
    held = sum(_tensor_bytes(t) for t in (s.x, s.disc, s.opt, s.kernel, sim.target.centers))
    assert budget.estimate_bytes(cfg, 3) >= held


def test_the_estimate_grows_with_the_batch():
    cfg = resolve({"particles": 1000})
    assert budget.estimate_bytes(cfg, 8) > 7 * budget.estimate_bytes(cfg, 1)


@pytest.mark.parametrize("over, named", [
    ({"disc.width": 100_000, "disc.depth": 3}, ("disc.width = 100000", "disc.depth = 3")),
    ({"particles": 10_000_000}, ("particles = 10000000",)),
    ({"target.modes": 10_000, "target.dim": 20_000}, ("target.modes = 10000", "target.dim = 20000")),
])
def test_check_refuses_in_one_line_naming_the_knobs_the_estimate_and_the_limit(over, named):
    cfg = resolve(over)
    with pytest.raises(ConfigError) as e:
        budget.check(cfg, limit_bytes=8 * 2**30)
    msg = str(e.value)
    assert "\n" not in msg and "8.0 GiB" in msg and "GiB" in msg.split("needs about")[1]
    for word in named:
        assert word in msg


def test_check_passes_the_default_config_and_honours_the_limit():
    cfg = resolve({})
    budget.check(cfg)                                   # the default limit: a share of available memory
    est = budget.estimate_bytes(cfg)
    budget.check(cfg, limit_bytes=est)
    with pytest.raises(ConfigError, match="members"):
        budget.check(cfg, members=4, limit_bytes=est)


def test_the_critic_and_kernel_parts_come_from_their_registry_entries(monkeypatch):
    """budget names no critic or kernel: each registry entry declares its footprint (`memory`),
    a critic that declares none gets the small default, and a declared one is what the estimate
    uses and names."""
    from dynamics.critics import CRITICS, Kind
    from dynamics.kernels import KERNELS
    assert all(CRITICS[k].memory is not None for k in CRITICS.names())
    assert all(KERNELS[k].memory is not None for k in KERNELS.names())
    make = CRITICS["linear"].make
    monkeypatch.setitem(CRITICS._entries, "probe", Kind(make, ascent=True, valued=True))
    monkeypatch.setitem(CRITICS._entries, "probe_big",
                        Kind(make, ascent=True, valued=True, memory=lambda cfg, s: (s.B * 10**15, ("disc.width",))))
    cfg = resolve({"particles": 8})
    small = budget.parts({**cfg, "disc.kind": "probe"}, 3)["critic"]
    assert small == (3 * 4 * 3 * (cfg["target.dim"] + 1) * 16, ("particles", "target.dim"))
    assert budget.parts({**cfg, "disc.kind": "probe_big"}, 3)["critic"] == (3 * 10**15, ("disc.width",))
    with pytest.raises(ConfigError, match=r"^disc.width = 128: the run needs about .*\(critic "):
        budget.check({**cfg, "disc.kind": "probe_big"}, 3)


@pytest.mark.parametrize("kind", ["ring", "grid", "point", "two_modes", "digits", "sphere_pair", "sphere_stein", "file"])
def test_each_target_declares_its_shape_before_it_is_built(kind, tmp_path):
    """budget sizes a run from the target's registry entry (no target names in budget): the
    declared (K, d) bounds the built target's centres and is its dimension (a file's d is only
    known once read), and the declared knobs are knobs."""
    from dynamics.knobs import KNOBS
    from dynamics.targets import TARGETS, build_target
    over = {"target.kind": kind, "target.modes": 9, "target.dim": 3, "target.samples": 40}
    if kind == "file":
        path = tmp_path / "p.csv"
        path.write_text("\n".join(f"{i},{i % 7},{i % 3}" for i in range(60)))
        over["target.file"] = str(path)
    cfg = resolve(over)
    entry = TARGETS[kind]
    K, d = entry.shape(cfg)
    built = build_target(cfg, "cpu", torch.float64)
    assert built.centers.shape[0] <= K
    if kind != "file":
        assert built.dim == d
    assert all(k in KNOBS for k in entry.knobs + entry.dim_knobs)
    assert entry.point_set == (kind in ("digits", "file"))
