"""Batching, determinism, divergence handling, dtypes, live knobs, targets and streams."""
import numpy as np
import pytest
import torch

from dynamics import rng
from dynamics.engine import build
from dynamics.knobs import ConfigError, resolve
from dynamics.targets import build_target, load_points

SMALL = {"particles": 16, "disc.width": 32, "dtype": "float64"}


def run(sim, members, steps):
    s = sim.init(members)
    for _ in range(steps):
        s = sim.step(s)
    return s


@pytest.mark.parametrize("extra", [{}, {"reg.kind": "wgan_gp", "loss": "ns", "disc.steps": 2},
                                   {"kernel.kind": "rbf"}, {"disc.optimizer": "adam", "disc.activation": "silu"},
                                   {"disc.depth": 2, "update": "simultaneous"}])
def test_batch_member_equals_single_run(extra):
    members = [{"seed": 1, "kernel.ratio": 0.2}, {"seed": 7, "kernel.ratio": 0.6, "lr.disc": 0.02},
               {"seed": 3, "reg.strength": 1.0, "kernel.width": 2.0}]
    sim = build({**SMALL, **extra})
    batch = run(sim, members, 60)
    for b, m in enumerate(members):
        alone = run(sim, [m], 60)
        torch.testing.assert_close(batch.x[b], alone.x[0], rtol=1e-11, atol=1e-11)
        for k in alone.disc:
            torch.testing.assert_close(batch.disc[k][b], alone.disc[k][0], rtol=1e-11, atol=1e-11)


def test_same_seed_same_run_other_seed_other_run():
    sim = build(SMALL)
    a, b, c = run(sim, [{"seed": 5}], 30), run(sim, [{"seed": 5}], 30), run(sim, [{"seed": 6}], 30)
    assert torch.equal(a.x, b.x)
    assert not torch.allclose(a.x, c.x)


def test_diverging_member_is_flagged_and_frozen_others_go_on():
    sim = build({**SMALL, "reg.kind": "none"})
    members = [{"seed": 1}, {"seed": 2, "lr.gen": 5e3, "lr.disc": 50.0}, {"seed": 3}]
    s = sim.init(members)
    for _ in range(300):
        s = sim.step(s)                                       # never raises
    assert s.alive.tolist() == [True, False, True]
    step = int(s.diverged_step[1])
    assert 1 <= step <= 300 and s.diverged_step[[0, 2]].tolist() == [-1, -1]
    assert torch.isfinite(s.x[1]).all()                       # frozen at its last good state
    alone = run(sim, [{"seed": 3}], 300)
    torch.testing.assert_close(s.x[2], alone.x[0], rtol=1e-11, atol=1e-11)


def test_dtype_follows_config_and_float32_tracks_float64():
    s32 = run(build({**SMALL, "dtype": "float32"}), None, 50)
    s64 = run(build(SMALL), None, 50)
    assert s32.x.dtype == torch.float32 and s64.x.dtype == torch.float64
    assert s32.disc["W0"].dtype == torch.float32
    torch.testing.assert_close(s32.x.double(), s64.x, rtol=0, atol=1e-3)


def test_set_hyper_applies_live_and_validates():
    sim = build(SMALL)
    s = run(sim, None, 10)
    s2 = sim.set_hyper(s, {"reg.strength": 3.0, "kernel.ratio": 0.5})
    assert torch.equal(s2.x, s.x) and float(s2.hyper["reg.strength"][0]) == 3.0
    with pytest.raises(ConfigError, match=r"kernel.ratio: 2 is out of range; allowed numbers in \[0, 1\]"):
        sim.set_hyper(s, {"kernel.ratio": 2})
    with pytest.raises(ConfigError, match="particles: not a live knob"):
        sim.set_hyper(s, {"particles": 3})
    with pytest.raises(ConfigError, match="cannot differ within a batch"):
        sim.init([{"particles": 4}])


def test_real_batches_are_fresh_and_from_the_target():
    t = build_target(resolve({"target.std": 0.1}), "cpu", torch.float64)
    key = rng.member_keys([1, 2])
    y0, y1 = t.sample(key, 0, 4000), t.sample(key, 1, 4000)
    assert not torch.equal(y0, y1) and not torch.equal(y0[0], y0[1])
    d, idx = torch.cdist(y0, t.centers.unsqueeze(0).expand(2, -1, -1)).min(-1)
    counts = torch.bincount(idx.flatten(), minlength=8).double()
    assert float(counts.min() / counts.max()) > 0.85                       # modes equally likely
    resid = y0 - t.centers[idx]
    assert float(resid.std()) == pytest.approx(0.1, rel=0.05)              # σ per axis
    assert torch.equal(t.sample(key[1:], 1, 4000)[0], y1[1])               # a member's stream ignores the batch


def test_counter_streams_are_uniform_and_normal():
    key = rng.member_keys([0])
    u = rng.uniform(key, 3, 1, (200_000,), torch.float64)[0]
    z = rng.normal(key, 3, 2, (200_000,), torch.float64)[0]
    assert 0 < float(u.min()) and float(u.max()) < 1
    assert float(u.mean()) == pytest.approx(0.5, abs=0.003) and float(u.var()) == pytest.approx(1 / 12, rel=0.01)
    assert float(z.mean()) == pytest.approx(0.0, abs=0.01) and float(z.var()) == pytest.approx(1.0, rel=0.01)
    assert float((z**4).mean()) == pytest.approx(3.0, rel=0.05)
    assert abs(float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])) < 0.01


@pytest.mark.parametrize("kind,modes,dim", [("ring", 8, 2), ("grid", 25, 2), ("point", 1, 2), ("two_modes", 2, 1),
                                            ("digits", 10, 64)])
def test_targets(kind, modes, dim):
    t = build_target(resolve({"target.kind": kind, "target.modes": 25 if kind == "grid" else 8,
                              "target.dim": dim if kind == "two_modes" else 2}))
    assert t.n_modes == modes and t.dim == dim
    if kind == "digits":
        assert t.centers.shape == (1797, 64) and t.image_shape == (8, 8)
        assert 0 <= float(t.centers.min()) and float(t.centers.max()) <= 1


def test_ring_target_geometry_and_capture_radius():
    t = build_target(resolve({}))
    torch.testing.assert_close(t.centers.norm(dim=1), torch.full((8,), 2.0))
    assert t.capture == pytest.approx(0.45) and t.quality == pytest.approx(0.15)


def test_file_targets_csv_and_npy(tmp_path):
    pts = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [1.0, 1.0, 1.0]])
    (tmp_path / "p.csv").write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in pts))
    np.save(tmp_path / "p.npy", pts)
    for name in ("p.csv", "p.npy"):
        np.testing.assert_allclose(load_points(str(tmp_path / name)), pts)
        t = build_target(resolve({"target.kind": "file", "target.file": str(tmp_path / name), "target.std": 0.0}))
        assert t.dim == 3 and t.n_modes == 3
    s = run(build({"target.kind": "file", "target.file": str(tmp_path / "p.csv"), "particles": 8}), None, 5)
    assert s.x.shape == (1, 8, 3)


@pytest.mark.parametrize("content,match", [("1,2\n3,x\n", "cannot read"), ("1,2\nnan,3\n", "non-finite"),
                                            ("", "shape")])
def test_malformed_files_give_one_line_errors(tmp_path, content, match):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(ConfigError, match=f"target.file: .*{match}") as e:
        load_points(str(f))
    assert "\n" not in str(e.value)


def test_config_errors_name_the_key_and_range():
    cases = {("particles", 0): "particles: 0 is out of range; allowed integers in [1, 10000000]",
             ("loss", "bogus"): "loss: bogus is not allowed; allowed one of ipm, ns, minimax, ls, hinge",
             ("disc.width", "wide"): "disc.width: 'wide' is not an integer",
             ("target.modes", 7): None}
    for (k, v), msg in cases.items():
        if msg is None:
            with pytest.raises(ConfigError, match="target.modes: 7 is not a square"):
                resolve({"target.kind": "grid", k: v})
            continue
        with pytest.raises(ConfigError) as e:
            resolve({k: v})
        assert str(e.value).startswith(msg)
    with pytest.raises(ConfigError, match="target.dim: 1 is out of range for target.kind = ring"):
        build_target(resolve({"target.dim": 1}))


def test_forces_are_what_the_step_applies():
    """Simulation.forces(state) is the force the next (alternating, one disc step) step moves the
    particles with: with the critic frozen (lr.disc = 0), x' − x = (η_G/N)·Θ F exactly."""
    cfg = {"particles": 16, "lr.disc": 0.0, "kernel.ratio": 0.0, "ps.weight": 0.5, "dtype": "float64"}
    sim = build(cfg)
    s = sim.init()
    for _ in range(3):
        s = sim.step(s)
    _, F = sim.forces(s)
    s2 = sim.step(s)
    assert torch.allclose(s2.x - s.x, sim.cfg["lr.gen"] / 16 * F, atol=1e-12)


def _run(cfg, steps):
    sim = build(cfg)
    s = sim.init([{"seed": 1}, {"seed": 2, "reg.strength": 1.0}])
    for _ in range(steps):
        s = sim.step(s)
    return s


@pytest.mark.slow
def test_compiled_step_follows_the_eager_step():
    """compile = true fuses the step (torch.compile, the unrolled critic products); the
    trajectory is the eager one up to float64 rounding, per member and with divergence checks."""
    import warnings
    cfg = {"particles": 24, "dtype": "float64", "disc.width": 16, "target.std": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)       # a compile fallback would hide the test
        try:
            fused = _run({**cfg, "compile": True}, 30)
        except RuntimeWarning as w:
            pytest.skip(f"torch.compile unavailable here: {w}")
    eager = _run(cfg, 30)
    assert fused.t == eager.t == 30
    torch.testing.assert_close(fused.x, eager.x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fused.disc["W0"], eager.disc["W0"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fused.loss_d, eager.loss_d, rtol=1e-9, atol=1e-9)
    assert not torch.equal(fused.x[0], fused.x[1])


@pytest.mark.parametrize("message, shown", [("no C++ compiler", "RuntimeError: no C\\+\\+ compiler"),
                                             ("", "RuntimeError\\)")])
def test_compile_failure_falls_back_to_the_eager_step(monkeypatch, message, shown):
    """Any compiler failure, one with an empty message too, warns in one line and runs eagerly."""
    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError(message)
        return call
    monkeypatch.setattr(torch, "compile", broken)
    cfg = {"particles": 12, "dtype": "float64", "disc.width": 8}
    with pytest.warns(RuntimeWarning, match=f"compile: torch.compile failed \\({shown}"):
        fallback = _run({**cfg, "compile": True}, 5)
    torch.testing.assert_close(fallback.x, _run(cfg, 5).x, rtol=1e-12, atol=1e-12)   # products differ in order


def _threads_after(code: str, env: dict | None = None) -> list[int]:
    """Run `code` in a fresh interpreter (the test process set its own threads); it prints ints."""
    import os
    import subprocess
    import sys
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import torch\nfrom dynamics import threads\n"
                          "from dynamics.engine import build\n" + code], capture_output=True, text=True,
                         env={**base, **(env or {})}, timeout=300, check=True)
    return [int(v) for v in out.stdout.split()]


@pytest.mark.slow
def test_build_applies_the_thread_policy_unless_the_user_chose():
    """A small problem runs on one thread, a large batch on torch's default, without the
    caller doing anything; OMP_NUM_THREADS or an explicit torch.set_num_threads wins."""
    small = "sim = build({'particles': 64})\nprint(torch.get_num_threads(), threads.policy_threads(sim.cfg))\n"
    got, policy = _threads_after(small)
    assert got == policy == 1
    batch = small + "sim.init([{'seed': s} for s in range(200)])\nprint(torch.get_num_threads(), threads.torch_default())"
    assert _threads_after(batch)[2] == _threads_after(batch)[3]
    assert _threads_after(small, {"OMP_NUM_THREADS": "2"})[0] == 2          # not the policy's 1
    assert _threads_after("torch.set_num_threads(3)\n" + small)[0] == 3


@pytest.mark.slow
def test_compiled_recording_measures_what_the_eager_one_does():
    """Under compile the run's metrics are one fused row per record: the same values as the
    eager recorder, hops included (a cloud moved from mode to mode), NaN speeds at step 0."""
    import warnings

    from dynamics import observables as obs
    from dynamics.run import _measurer
    sim = build({"particles": 24, "dtype": "float64", "target.kind": "ring", "target.modes": 4})
    s = sim.init([{"seed": 1}, {"seed": 2}])
    centres = sim.target.centers
    clouds = [s.x] + [s.x + (centres[i % 4] - s.x.mean(1, keepdim=True)) for i in range(6)]
    rows = {}
    for compiled in (False, True):
        hops = obs.HopCounter(2, sim.target.n_modes, max(0.3, sim.target.capture), sim.device)
        measure, names = _measurer(sim, hops, s.x, compiled)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)       # a compile fallback would hide the test
            try:
                rows[compiled] = [measure(x, clouds[i - 1] if i else x, torch.tensor(i > 0),
                                          torch.stack([s.loss_d, s.loss_g]))
                                  for i, x in enumerate(clouds)]
            except RuntimeWarning as w:
                pytest.skip(f"torch.compile unavailable here: {w}")
    for eager, fused in zip(rows[False], rows[True]):
        torch.testing.assert_close(fused, eager, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert rows[True][-1][names.index("hops")].tolist() == [5.0, 5.0]
    assert torch.isnan(rows[True][0][names.index("speed_collective")]).all()


def test_compiling_says_so_once_on_stderr(monkeypatch, capsys):
    """The first compiled call tells the user that it waits for the compiler (and how long)."""
    from dynamics import engine
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)                # no real compiler: fast
    monkeypatch.setattr(engine, "_compile_said", [])
    _run({"particles": 12, "disc.width": 8, "compile": True}, 3)
    err = capsys.readouterr().err
    assert err.count("compiling the step (first run, ~") == 1 and "cached afterwards" in err
