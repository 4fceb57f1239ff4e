"""The companion papers' critics and target inside the engine (registry entries)."""
import pytest
import torch

from app.cli import main
from dynamics.engine import build

PAIR = {"target.kind": "sphere_pair", "target.sphere_dim": 8, "target.sphere_k": 6, "init.kind": "pair",
        "particles": 3000, "lr.gen": 0.0, "dtype": "float64"}


def critic_after(cfg, steps):
    sim = build(cfg)
    s = sim.init()
    for _ in range(steps):
        s = sim.step(s)
    return sim, s


def test_f1_neuron_finds_the_hidden_direction_and_the_f1_ipm():
    """F1 IPM of the Legendre pair (d = 8, k = 6) is 3.59e-2, attained at θ = ±e_d."""
    sim, s = critic_after({**PAIR, "disc.kind": "f1_neuron", "critic.restarts": 32}, 40)
    assert float(-s.loss_d[0]) == pytest.approx(0.036, abs=0.008)
    w = s.disc["w"][0]
    assert abs(float(w[-1])) > 0.95                                  # θ* = ±e_d, the hidden direction


def test_f2_critic_sits_at_its_noise_floor_while_f1_detects_the_pair():
    """At n = 1500 the F2 (kernel MMD) value of ν vs μ is indistinguishable from ν vs ν′."""
    from dynamics.objective import Batch
    sim2, s2 = critic_after({**PAIR, "particles": 1500, "disc.kind": "f2_features"}, 1)
    _, s1 = critic_after({**PAIR, "particles": 1500, "disc.kind": "f1_neuron"}, 30)
    nu, nu2 = sim2.target.sample(s2.key, 7, 1500), sim2.target.sample(s2.key, 8, 1500)
    _, _, null = sim2.disc.update(s2.disc, s2.opt, Batch(nu, nu2), s2.hyper)
    f2 = float(-s2.loss_d[0])
    assert 0.6 * float(null[0]) < f2 < 1.6 * float(null[0])
    assert f2 < 0.5 * float(-s1.loss_d[0])


def test_particles_start_on_mu_and_f1_moves_them_towards_nu():
    sim = build({**PAIR, "particles": 400, "lr.gen": 30.0, "disc.kind": "f1_neuron", "dtype": "float32"})
    s = sim.init()
    from dynamics.papers.spheres import gegenbauer
    mean_p = lambda x: float(gegenbauer(6, 8, x[0, :, -1].double()).mean())   # noqa: E731
    before = mean_p(s.x)
    assert before < 0                                                # μ lives where P_k < 0
    for _ in range(150):
        s = sim.step(s)
    assert mean_p(s.x) > before + 0.008


def test_ct_force_is_minus_n_times_the_loss_gradient():
    sim = build({"disc.kind": "ct", "particles": 16, "dtype": "float64", "ct.rho": 0.3})
    s = sim.init()
    real = sim.target.sample(s.key, 0, 16)
    loss, F = sim.disc.force(s.disc, s.x, real, s.hyper)
    from dynamics.papers.ct import ct_costs
    x = s.x.clone().requires_grad_(True)
    L = ct_costs(real, x, 4.0, 0.3)["loss"].sum()
    torch.testing.assert_close(F, -16 * torch.autograd.grad(L, x)[0])


@pytest.mark.parametrize("args,first", [(["--set", "ct.rho=1.5"], "ct.rho: 1.5 is out of range; allowed numbers in [0, 1]"),
                                        (["--set", "target.sphere_dim=2"], "target.sphere_dim: 2 is out of range"),
                                        (["--set", "target.sphere_k=0"], "target.sphere_k: 0 is out of range"),
                                        (["--set", "init.kind=pair"], "init.kind: pair needs target.kind = sphere_pair")])
def test_companion_bad_input_exits_2(capsys, args, first):
    assert main(["run", "--steps", "1", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and first in err[0]


def test_pseudo_supervision_pulls_each_particle_to_its_own_pair():
    """λ_PS ≫ the critic: the flow is regression, each particle lands on its fixed sample."""
    sim = build({"particles": 32, "dtype": "float64", "ps.weight": 50.0, "lr.gen": 0.1, "kernel.ratio": 0.0})
    s = sim.init()
    pairs = s.kernel["pairs"]
    for _ in range(400):
        s = sim.step(s)
    assert float((s.x - pairs).norm(dim=-1).max()) < 0.05
    plain = build({"particles": 32, "dtype": "float64"}).init()
    assert "pairs" not in plain.kernel
    again = build({"particles": 32, "dtype": "float64"})
    assert "pairs" in again.set_hyper(again.init(), {"ps.weight": 1.0}).kernel   # switched on live


def test_linear_generator_kernel_is_worst_conditioned_at_q_equal_n():
    from dynamics.kernels import condition_number
    kappa = {}
    for q in (8, 32, 128):
        sim = build({"kernel.kind": "linear", "kernel.latent_dim": q, "particles": 32, "dtype": "float64"})
        s = sim.init([{"seed": i} for i in range(4)])
        levels, _ = sim.kernel.spectrum(s.kernel, s.hyper)
        assert int((levels > 1e-9 * levels[:, :1]).sum(1).max()) == min(q, 32)        # rank min(q, N)
        kappa[q] = float(condition_number(levels).median())
    assert kappa[32] > 10 * kappa[8] and kappa[32] > 10 * kappa[128]
    mp = ((128**0.5 + 32**0.5) / (128**0.5 - 32**0.5)) ** 2                         # Marchenko–Pastur, q = 4N
    assert kappa[128] == pytest.approx(mp, rel=0.35)


CT_RING = {"disc.kind": "ct", "target.kind": "ring", "target.modes": 8, "target.radius": 2 / 1.414,
           "target.std": 0.02 / 1.414, "init.std": 0.1, "init.shift": 0.3, "particles": 128, "lr.gen": 2.56,
           "ct.beta": 4.0, "ct.rho": 0.5, "dtype": "float64"}


def test_ct_max_step_shortens_each_force_to_the_bound_and_keeps_its_direction():
    """(η_G/N)·g1·‖F_j‖ ≤ max_step for every kernel coupling; the direction is the unclipped one."""
    sim = build({**CT_RING, "kernel.g1": 2.0, "kernel.ratio": 0.4})
    s = sim.init()
    free = sim.forces(sim.set_hyper(s, {"ct.max_step": 0.0}))[1]
    clipped = sim.forces(sim.set_hyper(s, {"ct.max_step": 0.05}))[1]
    bound = 0.05 * 128 / (2.56 * 2.0)
    norm = free.norm(dim=-1, keepdim=True)
    assert (norm > bound).float().mean() > 0.5                       # the clip is active at the start
    torch.testing.assert_close(clipped, free * (bound / norm).clamp(max=1.0))


def test_ct_max_step_bounds_every_move_and_gives_the_balanced_regime():
    """ρ = 0.5 on the 8-Gaussian ring: clipped at 0.05 per particle and step
    (exact for two_number, r = 0) the run covers all 8 modes sharply; unclipped, the particles
    that reach a mode first take long forward-cost jumps and the cloud stalls short of it."""
    from dynamics.papers import mode_coverage, ring_centers
    sim = build(CT_RING)
    s = sim.init([{"ct.max_step": 0.05}, {"ct.max_step": 0.0}])
    longest = torch.zeros(2, dtype=torch.float64)
    for _ in range(800):
        new = sim.step(s)
        longest = torch.maximum(longest, (new.x - s.x).norm(dim=-1).amax(1))
        s = new
    assert torch.isfinite(s.x).all() and bool((s.diverged_step < 0).all())
    assert float(longest[0]) <= 0.05 * (1 + 1e-9) and float(longest[1]) > 4 * 0.05
    modes, quality = mode_coverage(s.x, ring_centers(8), 0.1)
    assert int(modes[0]) == 8 and float(quality[0]) >= 0.95
    assert int(modes[1]) < 8 or float(quality[1]) < 0.9


def test_ct_preset_balances_at_half_and_seeks_modes_at_zero():
    """The `ct` preset, as the lab opens it: ρ = 0.5 covers the ring, ρ = 0 settles on a few modes."""
    from dynamics import observables as metrics, presets
    sim = build({**presets.load("ct"), "steps": 800})
    s = sim.init([{"ct.rho": 0.5}, {"ct.rho": 0.0}])
    for _ in range(800):
        s = sim.step(s)
    covered = metrics.coverage(s.x, sim.target)["modes_covered"].tolist()
    assert covered[0] == 8 and covered[1] <= 5, covered


def test_stein_target_is_von_mises_fisher_at_k1_and_particles_climb_it_from_uniform():
    """k = 1: ν ∝ exp(γ x_d) is von Mises–Fisher, E x_d = I_{d/2}(γ)/I_{d/2−1}(γ). Particles
    started uniform on the sphere (init.kind = sphere, the paper's μ = τ) move towards e_d."""
    from scipy.special import iv
    from dynamics import rng
    d, gamma = 8, 3.0
    cfg = {"target.kind": "sphere_stein", "target.sphere_dim": d, "target.sphere_k": 1,
           "target.sphere_gamma": gamma, "init.kind": "sphere", "particles": 256, "dtype": "float64",
           "lr.gen": 1.0, "lr.disc": 0.05}
    sim = build(cfg)
    y = sim.target.sample(rng.member_keys([3]), 0, 20000)[0]
    expected = iv(d / 2, gamma) / iv(d / 2 - 1, gamma)
    assert torch.allclose(y.norm(dim=-1), torch.ones(20000, dtype=torch.float64))
    assert abs(float(y[:, -1].mean()) - expected) < 4 * float(y[:, -1].std()) / 20000 ** 0.5
    s = sim.init()
    assert torch.allclose(s.x.norm(dim=-1), torch.ones(1, 256, dtype=torch.float64))
    start = float(s.x[0, :, -1].mean())
    for _ in range(300):
        s = sim.step(s)
    assert abs(start) < 0.1 and float(s.x[0, :, -1].mean()) > start + 0.5 * expected
