"""`effgan reproduce NAME --quick`: each sweep experiment runs end to end, writes its data and
figure, and its numbers show the physics: the collapse threshold against coupling and critic,
fastest convergence at the critical damping γ_c, the kernel spectrum's two-level limit."""
import json
import math

import numpy as np
import pytest

pytestmark = pytest.mark.slow     # the module's fixtures run whole experiments

from app.cli import main
from dynamics.experiments import EXPERIMENTS
from dynamics import theory
from dynamics.sweep import open_results

PNG = b"\x89PNG\r\n\x1a\n"


def reproduce(name, out):
    assert main(["reproduce", name, "--quick", "--out", str(out), "--no-progress"]) == 0
    return json.loads((out / "summary.json").read_text()), open_results(out)


@pytest.fixture(scope="module")
def collapse(tmp_path_factory):
    out = tmp_path_factory.mktemp("collapse")
    return out, *reproduce("collapse-phase", out)


@pytest.fixture(scope="module")
def damping(tmp_path_factory):
    out = tmp_path_factory.mktemp("damping")
    return out, *reproduce("critical-damping", out)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernel")
    return out, *reproduce("kernel-universality", out)


def _inf(r):
    return math.inf if r is None else r


def test_collapse_phase_covers_fewer_modes_with_coupling_and_sigmoid_collapses_first(collapse):
    out, s, ds = collapse
    assert (out / "collapse-phase.png").read_bytes()[:8] == PNG and (out / "results.nc").is_file()
    assert ds["final_modes_covered"].dims == ("disc.activation", "kernel.ratio", "lr.disc", "seed")
    K = s["modes_total"]
    relu, sig = s["by_activation"]["relu"], s["by_activation"]["sigmoid"]
    for act in (relu, sig):
        per_r = np.asarray(act["modes_covered"]).mean(0)            # mean over lr.disc, against r
        assert np.all(np.diff(per_r) <= 1.0), per_r                   # decreases with r (1 mode of slack)
        assert per_r[-1] <= K / 2 and per_r[0] - per_r[-1] >= 3       # strong coupling collapses
    assert np.asarray(relu["modes_covered"])[:, 0].min() == K       # r = 0, ReLU: every mode, every lr.disc
    # the sigmoid critic collapses at smaller r (or needs a larger lr.disc) than the ReLU one
    rc_relu, rc_sig = [_inf(r) for r in relu["r_c"]], [_inf(r) for r in sig["r_c"]]
    assert all(a <= b for a, b in zip(rc_sig, rc_relu)) and rc_sig != rc_relu, (rc_sig, rc_relu)
    assert sig["mean_modes_covered"] < relu["mean_modes_covered"] - 1
    # a faster critic protects against collapse: r_c does not fall as lr.disc grows
    for rc in (rc_relu, rc_sig):
        assert all(a <= b for a, b in zip(rc, rc[1:])), rc
    assert s["diverged_points"] == 0


def test_critical_damping_is_fastest_near_gamma_c(damping):
    out, s, ds = damping
    assert (out / "critical-damping.png").read_bytes()[:8] == PNG
    cfg = json.loads(ds.attrs["config"])
    lam = (1 + (cfg["particles"] - 1) * cfg["kernel.ratio"]) / cfg["particles"]
    assert s["gamma_c"] == pytest.approx(2 * math.sqrt(cfg["lr.gen"] * lam / cfg["lr.disc"]))
    assert 0.5 <= s["best_over_gamma_c"] <= 2.0
    assert s["slowdown_low_end"] >= 2 and s["slowdown_high_end"] >= 2      # ends at γ_c/8 and 8 γ_c
    assert s["never_converged"] == 0 and s["diverged_points"] == 0
    # the linear critic follows the damped oscillator closely
    np.testing.assert_allclose(s["t_conv"], s["t_conv_theory"], rtol=0.15)
    t = ds["final_convergence_step"]
    assert t.sizes["seed"] == 2 and int(t.min()) > 0


def test_kernel_spectrum_collapses_onto_two_levels(kernel):
    out, s, ds = kernel
    assert (out / "kernel-universality.png").read_bytes()[:8] == PNG
    assert s["g2_over_g1"] == pytest.approx(1 / (2 * math.pi), rel=1e-9)
    N = ds.sizes["eig"]
    assert N == 64 and s["top_theory"] == pytest.approx(1 + (N - 1) / (2 * math.pi))
    dz = np.asarray(s["kernel.latent_dim"], float)
    spread = np.asarray(s["bulk_relative_spread"])
    assert np.all(np.diff(spread) < 0) and spread[0] / spread[-1] > 10 and spread[-1] < 0.15
    big = dz >= 64                                                        # the 1/√d_z law of the bulk
    scaled = spread[big] * np.sqrt(dz[big])
    assert scaled.max() / scaled.min() < 1.4
    top = np.asarray(s["top"])
    assert abs(top[-1] - s["top_theory"]) / s["top_theory"] < 0.01
    assert abs(top[0] - s["top_theory"]) > abs(top[-1] - s["top_theory"])
    assert s["bulk_median"][-1] == pytest.approx(s["relative_theory"], rel=0.05)
    # multiplicities: a dense kernel lists every eigenvalue once, descending
    lam = ds["spectrum"].values
    assert np.all(np.diff(lam, axis=-1) <= 1e-6) and (ds["spectrum_multiplicity"] == 1).all()


def test_linearised_damping_theory_matches_the_notes():
    cfg = {"particles": 10, "kernel.g1": 1.0, "kernel.ratio": 0.5, "lr.disc": 0.05, "lr.gen": 0.05}
    gc = theory.gamma_c(cfg)
    assert gc == pytest.approx(1.483, abs=1e-3)
    t = theory.damping_time(np.array([0.1, 8.0]) * gc, cfg, eps=1e-3)      # notes: ≈1862 and ≈2980 steps
    assert t[0] == pytest.approx(1862, rel=0.1) and t[1] == pytest.approx(2980, rel=0.1)
    g = gc * np.geomspace(0.1, 10, 81)
    best = g[np.argmin(theory.damping_time(g, cfg, eps=1e-3))] / gc
    assert 0.6 <= best <= 1.05


def test_unknown_experiment_is_one_line_exit_2(capsys):
    assert main(["reproduce", "collapse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NAME: unknown experiment 'collapse'; allowed collapse-phase" in err
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPERIMENTS)


def test_list_name_prints_the_whole_description_that_the_list_cuts(capsys):
    long = max(EXPERIMENTS.names(), key=lambda n: len(EXPERIMENTS[n].doc))
    words = " ".join(EXPERIMENTS[long].doc.split())
    assert len(words) > 100
    assert main(["reproduce", "--list"]) == 0
    assert words[-40:] not in " ".join(capsys.readouterr().out.split())       # the list cuts it
    assert main(["reproduce", "--list", long]) == 0
    assert words[-40:] in " ".join(capsys.readouterr().out.split())
