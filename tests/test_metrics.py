"""Metrics on hand-made clouds whose answers are known."""
import math

import pytest
import torch

from dynamics import observables as metrics
from dynamics.knobs import resolve
from dynamics.targets import build_target

f64 = torch.float64


def ring():
    return build_target(resolve({}), "cpu", f64)


def test_perfect_coverage_and_total_collapse():
    t = ring()
    cover = t.centers.repeat(4, 1).unsqueeze(0)                    # 4 particles on every mode
    blob = t.centers[:1].expand(32, 2).unsqueeze(0)                # all 32 on one mode
    m = metrics.coverage(torch.cat([cover, blob]), t)
    assert m["modes_covered"].tolist() == [8, 1]
    assert m["mode_entropy"][0] == pytest.approx(1.0) and m["mode_entropy"][1] == pytest.approx(0.0)
    assert m["mode_kl"][0] == pytest.approx(0.0, abs=1e-12) and m["mode_kl"][1] == pytest.approx(math.log(8))
    assert m["high_quality_fraction"].tolist() == [1.0, 1.0]


def test_capture_radius_decides_what_counts():
    t = ring()
    x = (t.centers[:2] * (1 + torch.tensor([[0.2], [0.1]], dtype=f64) / 2)).unsqueeze(0)  # 0.2 and 0.1 off
    m = metrics.coverage(x, t)
    assert m["modes_covered"][0] == 2                              # both inside 0.45
    assert m["high_quality_fraction"][0] == 0.5                    # only one inside 3σ = 0.15


def test_spread_speeds_and_com():
    x = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]], dtype=f64)
    assert float(metrics.spread(x)[0]) == pytest.approx(1.0)
    shifted = x + torch.tensor([0.3, 0.4], dtype=f64)
    col, rel = metrics.speeds(x, shifted)
    assert float(col[0]) == pytest.approx(0.5) and float(rel[0]) == pytest.approx(0.0, abs=1e-12)
    d, mode = metrics.com_distance(x + torch.tensor([2.0, 0.0], dtype=f64), ring())
    assert float(d[0]) == pytest.approx(0.0, abs=1e-12) and int(mode[0]) == 0


def test_hop_counter_counts_changes_of_the_visited_mode():
    h = metrics.HopCounter(1, 8, 0.3, "cpu")
    for mode, dist in [(0, 0.1), (0, 0.1), (3, 1.0), (1, 0.2), (1, 0.1), (2, 0.2), (1, 0.25)]:
        h.update(torch.tensor([dist]), torch.tensor([mode]))
    assert int(h.hops[0]) == 3 and int(h.visited[0]) == 3            # 0 -> 1 -> 2 -> 1; the far point ignored


def test_center_kl_matches_the_authors_score():
    """Research check 11: 0 for particles = the 100 target images, log 100 for all on one image."""
    t = build_target(resolve({"target.kind": "digits", "target.samples": 100, "target.std": 0.0}), "cpu", f64)
    assert float(metrics.center_kl(t.centers.unsqueeze(0), t)[0]) == pytest.approx(0.0, abs=1e-6)
    one = t.centers[5:6].expand(100, 64).unsqueeze(0)
    assert float(metrics.center_kl(one, t)[0]) == pytest.approx(math.log(100), abs=1e-5)


def test_mmd_and_sliced_w1_order_distributions():
    t = ring()
    good = t.sample_fixed(1500, seed=3).unsqueeze(0)
    bad = (t.sample_fixed(1500, seed=4) * 0.3).unsqueeze(0)
    ref = t.sample_fixed(1500, seed=5).unsqueeze(0).expand(2, -1, -1)
    mmd = metrics.mmd_rbf(torch.cat([good, bad]), ref)
    assert float(mmd[0]) < 0.01 < float(mmd[1])
    sw = metrics.sliced_w1(torch.cat([good, bad]), ref, torch.Generator().manual_seed(0))
    assert float(sw[0]) < 0.05 and float(sw[1]) > 0.5


def test_convergence_step_needs_the_error_to_stay_low():
    err = torch.tensor([[1.0, 0.01, 0.5, 0.01, 0.01], [1.0, 1.0, 1.0, 1.0, 0.5]])
    steps = torch.tensor([0, 10, 20, 30, 40])
    assert metrics.convergence_step(err, steps, 0.05).tolist() == [30, -1]


def test_distances_vanish_on_the_same_sample_and_grow_with_a_shift():
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(1, 300, 2, generator=gen, dtype=torch.float64)
    same = metrics.distances(y, y, torch.Generator().manual_seed(1))
    near = metrics.distances(y + 0.2, y, torch.Generator().manual_seed(1))
    far = metrics.distances(y + 2.0, y, torch.Generator().manual_seed(1))
    for k in ("mmd", "sliced_w1", "energy"):
        assert abs(float(same[k][0])) < 1e-9 and 0 < float(near[k][0]) < float(far[k][0])
    # the energy distance of a shift δ between two copies of one sample approaches 2|δ| − E|X−X'| + ...
    assert float(metrics.energy_distance(y + 100.0, y)[0]) == pytest.approx(2 * 100 * 2**0.5, rel=0.02)


@pytest.mark.parametrize("target", ["ring", "digits"])
def test_a_run_records_exactly_the_declared_observables(target):
    """`observables.OBSERVABLES` is the one list: a run records every declared step observable
    as a series (and as a final value with the end ones), and nothing undeclared."""
    from dynamics.run import simulate
    cfg = resolve({"target.kind": target, "steps": 2, "particles": 8, "disc.width": 4, "record.snapshots": 0,
                   **({"target.samples": 20} if target == "digits" else {})})
    h = simulate(cfg)
    applies = [o for o in metrics.OBSERVABLES.values() if o.targets is None or target in o.targets]
    assert set(h.series) == {o.name for o in applies if o.when == "step"}
    assert set(h.final) == {o.name for o in applies if o.when in ("step", "end")}
    for name, v in h.final.items():
        assert v.dtype.kind == metrics.OBSERVABLES[name].dtype_kind, name
    y = torch.randn(1, 30, 2, generator=torch.Generator().manual_seed(0), dtype=f64)
    assert set(metrics.distances(y, y, torch.Generator().manual_seed(0))) == set(metrics.names(when=("request",)))
