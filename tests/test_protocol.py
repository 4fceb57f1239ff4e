"""The authors' critic protocol pieces (issue 15), each against an exact equivalent:
disc.steps_first, disc.reset (the optimiser re-created every particle step) and the
per-particle lr.convention."""
from __future__ import annotations

import pytest
import torch

from dynamics import theory
from dynamics.engine import _zeros, build
from dynamics.knobs import ConfigError, resolve
from dynamics.objective import OPTIMIZERS

RING = {"particles": 16, "real": 16, "disc.width": 16, "dtype": "float64", "disc.optimizer": "adam",
        "lr.disc": 0.05, "lr.gen": 0.5, "kernel.ratio": 0.3}


def _steps(sim, n, s=None):
    s = sim.init() if s is None else s
    for _ in range(n):
        s = sim.step(s)
    return s


def test_steps_first_makes_the_first_step_the_one_of_a_run_with_that_many_updates():
    """Step 0 with steps_first = 4 is step 0 of a disc.steps = 4 run (same updates, same real
    batches 0..3); afterwards one update per step, its real batch at counter 4 + (t − 1)."""
    first = build({**RING, "disc.steps": 1, "disc.steps_first": 4})
    four = build({**RING, "disc.steps": 4})
    plain = build({**RING, "disc.steps": 1})
    a, b, c = _steps(first, 1), _steps(four, 1), _steps(plain, 1)
    assert torch.equal(a.x, b.x) and all(torch.equal(a.disc[k], b.disc[k]) for k in a.disc)
    assert not torch.allclose(a.x, c.x)
    assert torch.equal(first.real_batch(a, 0), first.target.sample(a.key, 4, 16))
    assert torch.equal(first.real_batch(_steps(first, 2, a), -1), first.target.sample(a.key, 5, 16))
    assert torch.equal(first.real_batch(first.init(), 0), first.target.sample(a.key, 3, 16))  # step 0's own update


def test_steps_first_below_disc_steps_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^disc.steps_first: 3 is fewer than disc.steps = 5; allowed 0 .* or 5 to 1000$"):
        resolve({"disc.steps": 5, "disc.steps_first": 3})


def test_every_optimisers_fresh_state_is_zero_so_a_reset_is_a_fresh_optimiser():
    p = {"W": torch.randn(2, 3, 4), "a": torch.randn(2, 3)}
    for name in OPTIMIZERS.names():
        for cfg in ({"disc.beta1": 0.5, "disc.amsgrad": False}, {"disc.beta1": 0.9, "disc.amsgrad": True}):
            state = OPTIMIZERS[name].for_config(cfg).init(p)
            flat = [v for v in torch.utils._pytree.tree_leaves(state)]
            assert all(torch.count_nonzero(v) == 0 for v in flat), name


def test_reset_is_the_run_whose_optimiser_state_is_zeroed_before_every_step_after_the_first():
    kw = {**RING, "disc.steps": 3, "disc.amsgrad": True}
    reset, keep = build({**kw, "disc.reset": True}), build(kw)
    s0 = _steps(keep, 1)
    assert torch.equal(_steps(reset, 1).x, s0.x)           # step 0 starts fresh either way
    by_hand = keep.step(s0.replace(opt=_zeros(s0.opt)))
    assert torch.equal(reset.step(s0).x, by_hand.x)
    assert not torch.allclose(keep.step(s0).x, by_hand.x)


def test_reset_keeps_the_warm_up_and_the_first_step_one_run_of_updates():
    """With steps_first the first particle step's updates go on from the warm-up's moments (the
    authors' 200 updates before the first move are one optimiser's)."""
    kw = {**RING, "disc.steps": 1, "disc.steps_first": 4}
    assert torch.equal(_steps(build({**kw, "disc.reset": True}), 1).x, _steps(build(kw), 1).x)


def test_the_per_particle_convention_is_the_mean_one_with_n_times_the_rate():
    N = RING["particles"]
    particle = build({**RING, "lr.convention": "particle", "lr.gen": 0.5 / N})
    mean = build(RING)
    assert torch.allclose(_steps(particle, 5).x, _steps(mean, 5).x, rtol=1e-12, atol=1e-12)
    assert theory.gamma_c(resolve({**RING, "lr.convention": "particle", "lr.gen": 0.5 / N})) == \
        pytest.approx(theory.gamma_c(resolve(RING)), rel=1e-12)


def test_conditional_transport_clips_the_per_particle_step_by_its_own_size():
    ct = {"disc.kind": "ct", "particles": 8, "real": 8, "dtype": "float64", "ct.max_step": 0.01, "kernel.ratio": 0.0}
    moved = [(_steps(build({**ct, **kw}), 1).x - build({**ct, **kw}).init().x).norm(dim=-1).max()
             for kw in ({"lr.gen": 80.0}, {"lr.gen": 10.0, "lr.convention": "particle"})]
    assert moved[0] == pytest.approx(moved[1], rel=1e-12) and float(moved[0]) <= 0.01 + 1e-12
