"""compile = auto (dynamics/aot.py): the rule that decides, the knob, and the cached package
path: the same trajectory as eager, and a second process loads the package without building
it or importing the compiler."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dynamics import aot
from dynamics.engine import build
from dynamics.knobs import ConfigError, resolve

ISSUE = {"particles": 256, "steps": 6000}          # the issue-14 workload: ring8 target, H = 128


def test_auto_is_the_default_and_false_true_auto_parse():
    assert resolve({})["compile"] == "auto"
    assert [resolve({"compile": v})["compile"] for v in ("auto", "true", "false", True, False)] == \
        ["auto", True, False, True, False]
    with pytest.raises(ConfigError, match=r"^compile: 'maybe' is not a boolean; allowed one of false, true, auto$"):
        resolve({"compile": "maybe"})


def test_rule_compiles_long_single_runs_only_and_always_uses_a_cached_package():
    long, short = resolve(ISSUE), resolve({})                  # defaults: 4,000 steps at N = 64
    assert aot.eager_seconds(long, 1) >= aot.AUTO_MIN_S > aot.eager_seconds(short, 1)
    with aot.allow_build():
        assert aot.pays(long, 1, cached=False) and not aot.pays(short, 1, cached=False)
        assert not aot.pays(long, 4, cached=False)             # sweeps batch members: eager unless compile = true
    assert not aot.pays(long, 1, cached=False)                 # a live loop (the lab) never waits for a build
    assert aot.pays(short, 1, cached=True) and aot.pays(long, 4, cached=True)


def test_a_step_loop_outside_simulate_builds_nothing_and_runs_eagerly(tmp_path, monkeypatch):
    """The lab steps with no run length: a long config with no package stays eager at once."""
    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))
    def refuse(*a, **k):
        raise AssertionError("a live loop built a package")
    monkeypatch.setattr(aot, "build_package", refuse)
    sim = build({**ISSUE, "steps": 10**6})
    s = sim.init()
    for _ in range(2):
        s = sim.step(s)
    assert not list(tmp_path.glob("*.pt2")) and int(s.t) == 2


def test_only_small_problems_fit():
    ring, x = (torch.zeros(8, 2),), torch.zeros(1, 256, 2)
    assert aot.fits(resolve(ISSUE), x, ring)
    assert not aot.fits(resolve({**ISSUE, "particles": 3000}), x, ring)       # compute-bound: eager is fine
    assert not aot.fits(resolve(ISSUE), torch.zeros(1, 256, 784), ring)
    assert not aot.fits(resolve(ISSUE), x, (torch.zeros(60_000, 2),))         # a large point set baked in
    assert not aot.fits(resolve(ISSUE), x.to("meta"), ring)                   # not the CPU


def test_false_forces_eager_on_a_long_run(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("compile = false built a package")
    monkeypatch.setattr(aot, "build_package", refuse)
    monkeypatch.setattr(aot, "load_package", refuse)
    sim = build({**ISSUE, "compile": False})
    sim.step(sim.init())


SMALL = {"particles": 8, "disc.width": 4, "dtype": "float64", "steps": 100_000_000}   # projected long: auto builds
SECOND = """
import json, sys, torch
from dynamics import aot
from dynamics.engine import build
def refuse(*a, **k):
    raise AssertionError("the second process built the package again")
aot.build_package = refuse
sim = build(json.loads(sys.argv[1])); s = sim.init()
for _ in range(20):
    s = sim.step(s)
print(json.dumps({"x": s.x.tolist(), "compiler": "torch._inductor" in sys.modules or "torch._dynamo" in sys.modules}))
"""


def test_auto_package_matches_eager_and_a_second_process_loads_it(tmp_path, monkeypatch):
    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))
    sims = {c: build({**SMALL, "compile": c}) for c in ("auto", False)}
    states = {c: sim.init() for c, sim in sims.items()}
    with aot.allow_build():                                    # as run.simulate does
        for _ in range(20):
            states = {c: sims[c].step(s) for c, s in states.items()}
    assert len(list(tmp_path.glob("*.pt2"))) == 1, "auto built no package for a long run"
    torch.testing.assert_close(states["auto"].x, states[False].x, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(states["auto"].disc, states[False].disc, rtol=1e-9, atol=1e-12)
    out = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", SECOND, json.dumps(SMALL)], capture_output=True, text=True,
                         timeout=600, env={**__import__("os").environ, aot.CACHE_ENV: str(tmp_path)})
    assert out.returncode == 0, out.stderr
    second = json.loads(out.stdout.splitlines()[-1])
    assert not second["compiler"], "a warm start imported the compiler"
    assert torch.tensor(second["x"], dtype=torch.float64).equal(states["auto"].x), "not the same package's steps"


def test_flattener_and_unflattener_follow_pytree():
    """The step's own flatten/unflatten (built once; pytree's generic ones cost as much as the
    compiled step) give pytree's leaves in pytree's order, nested optimiser state included."""
    from torch.utils import _pytree as pytree
    sim = build({"particles": 6, "disc.optimizer": "adam", "kernel.kind": "rbf", "compile": False})
    s = sim.init()
    args = (s.x, s.disc, s.opt, s.kernel, s.hyper, s.key, torch.tensor(0))
    leaves = aot.flattener(args)(args)
    assert [id(t) for t in leaves] == [id(t) for t in pytree.tree_leaves(args)]
    rebuilt = aot.unflattener(pytree.tree_structure(args))(iter(leaves))
    assert pytree.tree_structure(rebuilt) == pytree.tree_structure(args)
    assert all(a is b for a, b in zip(pytree.tree_leaves(rebuilt), leaves))


def test_prune_keeps_the_newest_packages(tmp_path):
    import os
    for i in range(5):
        (tmp_path / f"{i}.pt2").write_bytes(b"x")
        os.utime(tmp_path / f"{i}.pt2", (1000 + i, 1000 + i))
    (tmp_path / "note.txt").write_text("not a package")
    aot.prune(tmp_path, 2)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["3.pt2", "4.pt2", "note.txt"]


def test_auto_recording_matches_eager_and_carries_the_hop_state(tmp_path, monkeypatch):
    """simulate under compile = auto records through a package too (hop counter passed in and
    out, as a package holds no state): the same series and hop counts as eager, in float64."""
    from dynamics.run import simulate
    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(aot, "AUTO_MIN_S", 0.0)                # any run pays: a short test run builds
    cfg = {**SMALL, "steps": 300, "record.every": 10, "lr.gen": 2.0, "kernel.ratio": 0.9}   # hops twice
    auto, eager = simulate({**cfg, "compile": "auto"}), simulate({**cfg, "compile": False})
    assert len(list(tmp_path.glob("*.pt2"))) == 2, "no step and recording packages"
    for k, v in eager.series.items():
        np.testing.assert_allclose(auto.series[k], v, rtol=1e-7, atol=1e-9, err_msg=k)
    assert eager.final["hops"][0] >= 1                          # the hop state matters here
    assert auto.final["hops"] == eager.final["hops"] and auto.final["modes_visited"] == eager.final["modes_visited"]


def test_python_sampler_targets_stay_eager(tmp_path, monkeypatch):
    """A target drawn by Python code (torch.Generators per member) is not traced: step and
    recorder run eagerly under auto, with no package built and no compiler called."""
    from dynamics.run import simulate
    monkeypatch.setenv(aot.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(aot, "AUTO_MIN_S", 0.0)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("auto called torch.compile"))
    h = simulate({"target.kind": "sphere_pair", "init.kind": "pair", "particles": 8, "steps": 3})
    assert h.steps[-1] == 3 and not list(tmp_path.iterdir())
