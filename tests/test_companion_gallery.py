"""The companion papers' experiments (`dynamics.experiments.separation`, `ipm_vs_kl`, `ct_balance`,
`double_descent`) at --quick size, and the live meters (`dynamics.papers.live`): each
experiment's summary must state the physics its paper (and our prototypes of it) found, and
its data and figure must be on disk."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr

pytestmark = pytest.mark.slow     # the module's fixtures run whole experiments

from app.plots.companion import draw
from dynamics.papers import ring_centers, sample_mixture
from dynamics.experiments import EXPERIMENTS, Hooks
from dynamics.experiments.ct_balance import CT_BALANCE
from dynamics.experiments.double_descent import DOUBLE_DESCENT
from dynamics.experiments.ipm_vs_kl import IPM_VS_KL, mode_drop_family
from dynamics.experiments.separation import SEPARATION, pair_means
from dynamics.papers.live import approximability, f1_f2_meter, w1_estimate

PNG = b"\x89PNG\r\n\x1a\n"
F64 = torch.float64
SIZES = {"separation": SEPARATION, "ipm-vs-kl": IPM_VS_KL, "ct-balance": CT_BALANCE,
         "double-descent": DOUBLE_DESCENT}


def quick(tmp_path_factory, name):
    out = tmp_path_factory.mktemp(name)
    summary = EXPERIMENTS[name].run(out, True, Hooks(draw=draw), seed=0)
    return out, summary


@pytest.fixture(scope="module")
def separation(tmp_path_factory):
    return quick(tmp_path_factory, "separation")


@pytest.fixture(scope="module")
def ipm_kl(tmp_path_factory):
    return quick(tmp_path_factory, "ipm-vs-kl")


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    return quick(tmp_path_factory, "ct-balance")


@pytest.fixture(scope="module")
def descent(tmp_path_factory):
    return quick(tmp_path_factory, "double-descent")


def test_registry_interface():
    companion = {name: EXPERIMENTS[name] for name in EXPERIMENTS if not EXPERIMENTS[name].sweep}
    assert set(companion) == {"separation", "ipm-vs-kl", "ct-balance", "double-descent"}
    for name, e in companion.items():
        assert e.name == name and callable(e.run)
        assert "--quick" in e.doc and "full" in e.doc and "\n" not in e.doc


# ---------------------------------------------------------------- A: separation
def test_separation_ratio_is_sqrt_n_and_f1_beats_its_null(separation):
    _, s = separation
    # sqrt(N_{6,d}) for d = 6..16: 18.3, 37.2, 65.5, 104.9, 157.3, 224.5
    assert s["ratio_over_sqrt_n_max_deviation"] < 0.01
    assert np.allclose(s["theory_ratio"], [18.3, 37.2, 65.5, 104.9, 157.3, 224.5], rtol=0.01)
    assert all(a > b for a, b in zip(s["theory_f1"], s["theory_f1"][1:]))  # 3.6e-2 -> 3.2e-2
    fs = s["finite_sample"]
    assert min(fs["f1_over_null_min"]) >= 3                  # F1 sees the pair at n = 10^4
    assert min(fs["align_min"]) > 0.99                       # ... along the hidden axis e_d
    assert all(0.7 <= r <= 1.5 for r in fs["f2_over_null_median"])   # F2 sits at its noise floor
    assert all(abs(f - 0.036) < 0.008 for f in fs["f1_mean"])


def test_separation_flow_f1_transports_f2_does_not(separation):
    out, s = separation
    f = s["flow"]
    nu, mu = pair_means(8, 6)
    assert f["nu_mean_p"] == pytest.approx(nu) and nu > 0 > mu  # ν lives where P_k > 0
    assert f["f1_neuron"]["mean_p_start"] < 0                     # particles start on μ
    assert f["f1_neuron"]["progress_to_nu"] > 0.1
    assert f["f1_neuron"]["progress_to_nu"] > 3 * abs(f["f2_features"]["progress_to_nu"])
    ds = xr.load_dataset(out / "results.nc")
    p = ds.mean_p.sel(critic="f1_neuron").mean("member").values
    assert p[-1] > p[0] and ds.critic_ipm.sel(critic="f1_neuron").isel(step=-1).min() > 0


# ---------------------------------------------------------------- B: ipm vs kl
def test_test_ipm_tracks_kl_and_w1(ipm_kl):
    _, s = ipm_kl
    assert s["generators"] >= 15
    assert s["corr_test_ipm_kl"]["spearman"] > 0.8 and s["corr_test_ipm_kl"]["pearson"] > 0.8
    assert s["corr_test_ipm_w1"]["spearman"] > 0.8
    # restricted approximability: the symmetric 4-of-8 collapse is under-detected (a prototype at n = 2000: 0.19)
    assert s["test_ipm_over_w1_alternating4"] < 0.35
    assert s["test_ipm_over_w1_alternating4"] < 0.5 * s["test_ipm_over_w1_contiguous4"]


def test_mode_drop_family_is_deterministic_and_covers_every_drop_count():
    w = mode_drop_family(2, seed=3)
    assert np.array_equal(w, mode_drop_family(2, seed=3))
    assert set((w == 0).sum(1)) == set(range(8))
    assert len({tuple(r) for r in w}) == len(w)
    assert any((r == (np.arange(8) % 2 == 0)).all() for r in w)


# ---------------------------------------------------------------- C: ct balance
def test_ct_rho_orders_seeking_balance_covering(ct):
    _, s = ct
    for run in ("engine", "prototype"):
        modes, quality = s[run]["modes_covered_mean"], s[run]["quality_mean"]
        assert modes[1] >= modes[0] and modes[2] == 8, (run, modes)      # ρ = 0 seeks, ρ = 1 covers
        assert quality[2] < quality[1] and quality[0] >= 0.95, (run, quality)
        fwd, bwd = s[run]["forward_cost"], s[run]["backward_cost"]
        assert fwd[2] < 0.2 * fwd[0] and bwd[0] < 0.2 * bwd[2]           # each ρ end minimises its cost
    for run in ("engine", "prototype"):                                   # the prototype's table, with the step clip
        p = s[run]
        assert p["modes_covered_mean"][1] >= 7.5 and p["quality_mean"][1] >= 0.95, run
        assert max(p["modes_covered"][0]) <= 6 and p["quality_mean"][2] <= 0.5, run
    u = s["unclipped"]                                             # ct.max_step = 0: no balance
    assert u["modes_covered_mean"][1] < 7.5 or u["quality_mean"][1] < 0.9


# ---------------------------------------------------------------- D: double descent
def test_double_descent_peak_at_n_and_flat_metric_learner(descent):
    _, s = descent
    assert s["peak_q"] == s["n"] == s["kappa_peak_q"]
    assert s["peak_over_q_2n"] >= 100
    assert 80 <= s["best_overparameterized_q"] <= 150 and 1.5 <= s["best_overparameterized_error"] <= 3.5
    assert s["metric_cv"] < 0.1 and 1.0 < s["metric_mean"] < 1.7
    q, k, mp = (np.array(s[key], dtype=float) for key in ("q", "kappa_median", "kappa_marchenko_pastur"))
    far = q >= 4 * s["n"]
    assert np.allclose(k[far], mp[far], rtol=0.3)


# ---------------------------------------------------------------- files
@pytest.mark.parametrize("name", ["separation", "ipm_kl", "ct", "descent"])
def test_results_figures_and_summary_on_disk(name, request):
    out, s = request.getfixturevalue(name)
    exp = s["experiment"]
    assert json.loads((out / "summary.json").read_text()) == s
    assert s["figures"]
    for f in s["figures"]:
        data = (out / f).read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000
    ds = xr.load_dataset(out / "results.nc")
    assert json.loads(ds.attrs["config"]) == SIZES[exp]["quick"]
    assert "torch" in json.loads(ds.attrs["versions"]) and ds.attrs["experiment"] == exp


# ---------------------------------------------------------------- live meters
def _gaussians(b, n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 2, generator=g, dtype=F64)
    x[..., 0] += shift
    return x


def test_approximability_gap_zero_for_a_fixed_critic_and_positive_for_a_memorizing_one():
    train, test, fake = _gaussians(4, 2000, 0.0, 1), _gaussians(4, 2000, 0.0, 2), _gaussians(4, 300, 0.0, 3)
    neuron = lambda pts: torch.relu(pts[..., 0] + 0.5)  # noqa: E731 - a 1-Lipschitz ReLU neuron
    m = approximability(fake, train, test, neuron, w1="max_sliced")
    se = math.sqrt(2 / 2000)  # std of σ(z + 0.5) < 1 for z ~ N(0, 1)
    assert (m["train_test_gap"].abs() < 4 * se).all()
    # a critic made of bumps on the training points: large on train, ≈ 0 on fresh data
    bump = lambda pts: torch.exp(-torch.cdist(pts, train) ** 2 / 2e-6).sum(-1)  # noqa: E731
    m = approximability(fake, train, test, bump, w1="max_sliced")
    assert (m["train_test_gap"] > 0.9).all() and (m["ipm_test"].abs() < 0.05).all()


def test_approximability_ratio_one_for_the_optimal_critic_of_a_shift():
    """real = fake + δ e_0: the linear critic x_0 attains W1 = δ (up to sampling); a critic
    along the other axis sees nothing."""
    real, test = _gaussians(3, 256, 1.0, 4), _gaussians(3, 256, 1.0, 5)
    fake = _gaussians(3, 256, 0.0, 6)
    m = approximability(fake, real, test, lambda pts: pts[..., 0])
    assert m["w1_method"] == "exact"
    assert ((m["ipm_over_w1"] > 0.85) & (m["ipm_over_w1"] <= 1.0 + 1e-9)).all()
    m = approximability(fake, real, test, lambda pts: pts[..., 1])
    assert (m["ipm_over_w1"].abs() < 0.25).all()
    w, method = w1_estimate(test, fake[:, :200], torch.Generator().manual_seed(0))  # unequal sizes
    assert method == "max_sliced" and ((w > 0.8) & (w < 1.2)).all()


def test_f1_f2_meter_against_nulls():
    g = torch.Generator().manual_seed(7)
    c = ring_centers()
    real = sample_mixture(400, c, 0.05, None, g, batch=2, dtype=F64)
    null = sample_mixture(400, c, 0.05, None, g, batch=2, dtype=F64)
    same = sample_mixture(400, c, 0.05, None, g, batch=2, dtype=F64)
    dropped = sample_mixture(400, c, 0.05, torch.tensor([0.0] + [1.0] * 7), g, batch=2, dtype=F64)
    bad = f1_f2_meter(dropped, real, g, real_null=null)
    good = f1_f2_meter(same, real, g, real_null=null)
    for key in ("f1", "f2", "max_sliced_w1", "sliced_w1"):
        assert (bad[key] > 1.5 * bad[key + "_null"]).all(), key
        assert (good[key] < 2.0 * good[key + "_null"]).all(), key
        assert (bad[key] > good[key]).all(), key
    assert (bad["f1"] <= bad["max_sliced_w1"] + 1e-6).all()  # a unit ReLU neuron is 1-Lipschitz
    halves = f1_f2_meter(dropped, torch.cat([real, null], 1), g)  # null from the two halves
    assert (halves["f1"] > 1.5 * halves["f1_null"]).all()


# ---------------------------------------------------------------- the command line
def test_reproduce_companion_cli_honours_no_figures_and_refuses_what_it_cannot_do(tmp_path, capsys):
    """`effgan reproduce double-descent`: --no-figures writes data and summary only; options of
    sweeps it does not use (--resume, --workers, --scheduler) are one-line errors, exit 2; an
    --out that already holds results is refused, not overwritten."""
    from app.cli import main
    out = tmp_path / "dd"
    assert main(["reproduce", "double-descent", "--quick", "--out", str(out), "--no-figures"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("double-descent: the error peaks at q = 50 (n = 50)") and len(printed) == 3
    assert printed[0].endswith(" s")                                # the wall time; then results.nc, summary.json
    assert sorted(p.name for p in out.iterdir()) == ["results.nc", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["figures"] == []
    for extra, field in ((["--resume"], "--resume"), (["--workers", "2"], "--workers"),
                         (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler")):
        assert main(["reproduce", "double-descent", "--quick", "--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"effgan reproduce: error: {field}: double-descent runs"), err
    assert main(["reproduce", "double-descent", "--quick", "--out", str(out)]) == 2
    assert "already holds results; allowed a new folder" in capsys.readouterr().err


def test_the_companion_papers_are_cited_where_a_user_reads_about_them(capsys):
    """`reproduce --list` and the presets' texts name authors, title and year, never "paper A".."D"."""
    import re

    from dynamics import presets
    from dynamics.papers import CITATIONS
    from app.cli import main
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    for key in "ABCD":
        assert CITATIONS[key] in listed
        assert re.search(r"\b(19|20)\d\d\b", CITATIONS[key]) and '"' in CITATIONS[key]      # a year and a title
    texts = [listed] + [presets.describe(n) for n in presets.names()] + [EXPERIMENTS[n].doc for n in EXPERIMENTS]
    for text in texts:
        assert not re.search(r"\bpaper [A-D]\b", text, re.IGNORECASE), text[:120]
