"""Issue 15's critic protocol pieces: the augmented-Lagrangian Sobolev/Fisher objective, adam's
β1 and AMSGrad, the mlp_layers critic (widths, dropout, output bias, PyTorch's init), each
checked in float64 against an independent computation, each changing a trajectory, each
refusing a bad value with a one-line error."""
import math

import pytest
import torch

from dynamics import rng
from dynamics.critics import layers, linear, mlp
from dynamics.critics.contract import by_ascent
from dynamics.engine import build
from dynamics.knobs import ConfigError, resolve
from dynamics.objective import DUAL, LOSSES, OPTIMIZERS, REGULARISERS, Batch

f64 = torch.float64
B, M, N, d = 2, 7, 5, 3


def _batch(seed=0, key=False):
    g = torch.Generator().manual_seed(seed)
    mk = lambda n: torch.randn(B, n, d, generator=g, dtype=f64)  # noqa: E731
    return Batch(mk(M), mk(N), None, rng.member_keys([1, 2]) if key else None, 3 if key else None)


def _reg(alpha=0.7, rho=0.4, batch_mean=True):
    return REGULARISERS["sobolev"].for_config({"reg.alpha": alpha, "reg.rho": rho, "reg.batch_mean": batch_mean})


def _authors_objective(mods, x_p, x_q, lam, alpha, rho):
    """Their D_forward_weights (w = 1) on torch.nn modules: obj_D, written from their code."""
    x_q = x_q.clone().requires_grad_(True)
    f_p, f_q = mods(x_p), mods(x_q)
    Ep_f, Eq_f = f_p.mean(), f_q.mean()
    constraint_F = (f_q ** 2).mean() - Eq_f ** 2
    grad_f_q = torch.autograd.grad(Eq_f, x_q, create_graph=True)[0]
    constraint_S = (grad_f_q ** 2).sum(dim=1, keepdim=True).mean()
    c = constraint_S + alpha * constraint_F - 1.0
    return Ep_f - Eq_f - lam * c - rho / 2 * c ** 2


def _as_module(p, b, widths):
    seq = []
    for l, _ in enumerate(widths):
        lin = torch.nn.Linear(p[f"W{l}"].shape[2], p[f"W{l}"].shape[1]).double()
        lin.weight.data, lin.bias.data = p[f"W{l}"][b].clone(), p[f"b{l}"][b].clone()
        seq += [lin, torch.nn.ReLU()]
    out = torch.nn.Linear(widths[-1], 1, bias=False).double()
    out.weight.data = p["a"][b].clone().view(1, -1)
    return torch.nn.Sequential(*seq, out)


def test_sobolev_objective_and_gradient_equal_the_authors_code_on_torch_modules():
    cfg = resolve({"disc.kind": "mlp_layers", "disc.widths": "6,9,4", "disc.out_bias": False, "disc.init": "default"})
    parts = layers.parts(cfg)
    p = parts.init(rng.generators([1, 2]), d, f64, "cpu")
    p[DUAL] = torch.tensor([0.3, -0.2], dtype=f64)
    batch, reg = _batch(), _reg()
    hyper = {"reg.strength": torch.tensor([1.25, 0.5], dtype=f64)}
    grads, J = parts.gradient(p, batch, hyper, LOSSES["ipm"], reg)
    for b in range(B):
        mods = _as_module(p, b, (6, 9, 4))
        lam = torch.tensor(float(hyper["reg.strength"][b] + p[DUAL][b]), dtype=f64, requires_grad=True)
        obj = _authors_objective(mods, batch.real[b], batch.fake[b], lam, reg.alpha, reg.rho)
        obj.backward()
        torch.testing.assert_close(J[b], obj.detach(), rtol=1e-12, atol=1e-12)
        lins = [m for m in mods if isinstance(m, torch.nn.Linear)]
        for l, lin in enumerate(lins[:-1]):
            torch.testing.assert_close(grads[f"W{l}"][b], lin.weight.grad, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(grads[f"b{l}"][b], lin.bias.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grads["a"][b], lins[-1].weight.grad.view(-1), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grads[DUAL][b], lam.grad, rtol=1e-10, atol=1e-12)     # −c


def test_sobolev_on_the_linear_critic_matches_its_closed_form():
    """D = ψ·x + c: ∇D = ψ, Var_q D = ψᵀΣ_qψ, so J and ∂J/∂ψ are explicit."""
    for batch_mean in (True, False):
        reg, batch = _reg(0.6, 0.9, batch_mean), _batch(1)
        p = {"psi": torch.randn(B, d, dtype=f64, generator=torch.Generator().manual_seed(2)),
             "c": torch.tensor([0.1, -0.4], dtype=f64)}
        lam = torch.tensor([1.25, 0.3], dtype=f64)
        grads, J = linear.parts(resolve({"disc.kind": "linear"})).gradient(
            p, batch, {"reg.strength": lam}, LOSSES["ipm"], reg)
        psi, xq = p["psi"], batch.fake
        s = 1 / N**2 if batch_mean else 1.0
        cov = torch.einsum("bni,bnj->bij", xq - xq.mean(1, keepdim=True), xq - xq.mean(1, keepdim=True)) / N
        Spsi = torch.einsum("bij,bj->bi", cov, psi)
        c = s * (psi * psi).sum(-1) + reg.alpha * (psi * Spsi).sum(-1) - 1
        dm = batch.real.mean(1) - xq.mean(1)
        torch.testing.assert_close(J, (psi * dm).sum(-1) - lam * c - reg.rho / 2 * c * c, rtol=1e-12, atol=1e-12)
        want = dm - (lam + reg.rho * c).unsqueeze(1) * (2 * s * psi + 2 * reg.alpha * Spsi)
        torch.testing.assert_close(grads["psi"], want, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grads["c"], torch.zeros_like(grads["c"]), rtol=0, atol=1e-12)


def test_sobolev_with_rho_and_alpha_zero_is_a_fixed_fake_side_penalty():
    """ρ = α = 0: J = data − λ0 (E_q‖∇D‖²/N² − 1), the gradient of r2 with γ = 2λ0/N² (r2 is (γ/2)E_q‖∇D‖²)."""
    cfg = resolve({"disc.width": 6, "disc.activation": "tanh"})
    parts = mlp.parts(cfg)
    p = {k: torch.randn_like(v) for k, v in parts.init(rng.generators([1, 2]), d, f64, "cpu").items()}
    batch, lam = _batch(2), torch.tensor([1.25, 2.0], dtype=f64)
    g1, J1 = parts.gradient(p, batch, {"reg.strength": lam}, LOSSES["ipm"], _reg(0.0, 0.0))
    g2, J2 = parts.gradient(p, batch, {"reg.strength": 2 * lam / N**2}, LOSSES["ipm"], REGULARISERS["r2"])
    for k in g2:
        torch.testing.assert_close(g1[k], g2[k], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(J1, J2 + lam, rtol=1e-12, atol=1e-12)


def test_the_dual_step_is_lambda_plus_rho_c_and_persists_in_the_critic():
    cfg = resolve({"disc.kind": "linear", "reg.kind": "sobolev", "reg.rho": 0.5, "reg.alpha": 0.2,
                   "disc.optimizer": "adam"})
    critic = by_ascent(cfg, linear.parts(cfg))
    params, opt = critic.init(rng.generators([1, 2]), d, f64, "cpu")
    params = {**params, "psi": torch.ones(B, d, dtype=f64)}
    assert torch.equal(params[DUAL], torch.zeros(B, dtype=f64)) and DUAL not in opt["m"]
    hyper = {"reg.strength": torch.tensor([1.25, 1.25], dtype=f64), "lr.disc": torch.full((B,), 0.01, dtype=f64),
             "disc.weight_decay": torch.zeros(B, dtype=f64)}
    batch = _batch(3)
    grads, _ = linear.parts(cfg).gradient(params, batch, hyper, LOSSES["ipm"], critic_reg(cfg))
    new, _, _ = critic.update(params, opt, batch, hyper)
    torch.testing.assert_close(new[DUAL], -0.5 * grads[DUAL])                   # Δλ = ρ c, c = −∂J/∂λ
    assert not torch.equal(new["psi"], params["psi"])


def critic_reg(cfg):
    return REGULARISERS[cfg["reg.kind"]].for_config(cfg)


def test_adam_beta1_and_amsgrad_equal_torch_adam():
    for amsgrad in (False, True):
        cfg = resolve({"disc.optimizer": "adam", "disc.beta1": 0.9, "disc.amsgrad": amsgrad})
        adam = OPTIMIZERS["adam"].for_config(cfg)
        p = {"w": torch.randn(1, 4, dtype=f64, generator=torch.Generator().manual_seed(0))}
        opt = adam.init(p)
        ref = p["w"].clone().requires_grad_(True)
        topt = torch.optim.Adam([ref], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4, amsgrad=amsgrad,
                                maximize=True)
        lr, wd = torch.tensor([0.01], dtype=f64), torch.tensor([1e-4], dtype=f64)
        g = torch.Generator().manual_seed(1)
        for i in range(8):
            grad = torch.randn(1, 4, dtype=f64, generator=g) * (3.0 if i < 2 else 0.1)   # v falls: AMSGrad matters
            p, opt = adam.step(p, {"w": grad}, opt, lr, wd)
            ref.grad = grad.clone()
            topt.step()
            torch.testing.assert_close(p["w"], ref.detach(), rtol=1e-12, atol=1e-12)


def test_mlp_layers_init_bias_and_dropout():
    gens = rng.generators([5])
    cfg = resolve({"disc.kind": "mlp_layers", "disc.widths": "64,300,8", "disc.init": "default",
                   "disc.out_bias": False, "disc.dropout": 0.25})
    parts = layers.parts(cfg)
    p = parts.init(gens, 20, f64, "cpu")
    assert "c" not in p and p["W1"].shape == (1, 300, 64) and p["a"].shape == (1, 8)
    for k, fan in (("W0", 20), ("b0", 20), ("W1", 64), ("b1", 64), ("a", 8)):        # U(±1/√fan_in), like nn.Linear
        bound = 1 / math.sqrt(fan)
        assert p[k].abs().max() <= bound and p[k].abs().max() > 0.9 * bound and abs(float(p[k].mean())) < 0.1 * bound
    ntk = layers.parts(resolve({"disc.kind": "mlp_layers"})).init(gens, 20, f64, "cpu")
    assert "c" in ntk and float(ntk["W0"].std()) == pytest.approx(1 / math.sqrt(20), rel=0.1)
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(1, 9, 20, generator=g, dtype=f64), torch.randn(1, 6, 20, generator=g, dtype=f64),
                  None, rng.member_keys([5]), 11)
    h = {"reg.strength": torch.tensor([0.3], dtype=f64)}
    args = (h, LOSSES["ipm"], REGULARISERS["gp0"])
    g1, J1 = parts.gradient(p, batch, *args)
    g2, J2 = parts.gradient(p, batch, *args)                                         # same counter, same masks
    assert all(torch.equal(g1[k], g2[k]) for k in g1) and torch.equal(J1, J2)
    other = Batch(batch.real, batch.fake, None, batch.key, 12)
    g3, _ = parts.gradient(p, other, *args)
    assert not torch.equal(g1["W0"], g3["W0"])
    eval_only = layers.parts(resolve({"disc.kind": "mlp_layers", "disc.widths": "64,300,8",
                                      "disc.out_bias": False}))
    g4, _ = eval_only.gradient(p, batch, *args)
    assert not torch.equal(g1["W0"], g4["W0"])                                      # masks act in the ascent
    torch.testing.assert_close(parts.value(p, batch.fake), eval_only.value(p, batch.fake))   # not in the forces
    u = rng.uniform(batch.key, 11, rng.STREAMS["dropout"], (15, 300), f64)
    assert float((u < 0.25).double().mean()) == pytest.approx(0.25, abs=0.02)


BASE = {"target.kind": "mnist", "target.samples": 12, "particles": 12, "real": 12, "disc.kind": "mlp_layers",
        "disc.widths": "8,16,8", "disc.optimizer": "adam", "reg.kind": "sobolev", "reg.strength": 1.25,
        "lr.disc": 1e-3, "lr.gen": 50.0, "disc.steps": 2, "dtype": "float64", "init.std": 0.5}
CHANGES = [("disc.widths", "8,12,8"), ("disc.dropout", 0.2), ("disc.out_bias", False), ("disc.init", "default"),
           ("disc.beta1", 0.9), ("disc.amsgrad", True), ("reg.alpha", 0.5), ("reg.rho", 0.5),
           ("reg.batch_mean", False), ("disc.steps_first", 6), ("disc.reset", True), ("lr.convention", "particle")]


def _run(**over):
    sim = build({**BASE, **over})
    s = sim.init()
    for _ in range(4):
        s = sim.step(s)
    return s.x


@pytest.mark.parametrize("key, value", CHANGES)
def test_each_protocol_knob_changes_the_trajectory(key, value):
    """The output bias is the exception under the ipm loss: ∂J/∂c = E_p 1 − E_q 1 = 0 and no
    penalty sees c, so it never moves and never moves a particle (the authors' bias=False is
    cosmetic there); under a loss that reads D's value (ns) it matters."""
    over = {"loss": "ns"} if key == "disc.out_bias" else {}
    base = _run(**over)
    assert torch.isfinite(base).all()
    assert not torch.equal(_run(**over, **{key: value}), base), key
    if key == "disc.out_bias":
        assert torch.equal(_run(**{key: value}), _run())


@pytest.mark.parametrize("key, value, allowed", [
    ("disc.widths", "64,,x", "allowed 1 to 8 comma-separated integers in [1, 100000]"),
    ("disc.widths", "0,4", "allowed 1 to 8"), ("disc.widths", ",".join(["4"] * 9), "allowed 1 to 8"),
    ("disc.dropout", 0.99, "numbers in [0, 0.95]"), ("disc.beta1", 1.0, "numbers in [0, 0.9999]"),
    ("disc.init", "xavier", "one of ntk, default"), ("reg.rho", -1, "numbers in [0, 1e+06]"),
    ("reg.alpha", "a", "allowed numbers in [0, 1e+06]")])
def test_a_bad_value_is_one_line_naming_the_field_and_the_range(key, value, allowed):
    with pytest.raises(ConfigError) as err:
        resolve({key: value})
    text = str(err.value)
    assert text.startswith(f"{key}: ") and allowed in text and "\n" not in text


def test_cli_refuses_bad_widths_with_exit_code_2(capsys):
    from app.cli import main
    assert main(["run", "--steps", "1", "--set", "disc.kind=mlp_layers", "--set", "disc.widths=64;1024"]) == 2
    assert "disc.widths" in capsys.readouterr().err
