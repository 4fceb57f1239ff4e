"""Closed-form critic gradients against autograd in float64, and the optimisers."""
import pytest
import torch

from dynamics import discriminators, rng
from dynamics.activations import ACTIVATIONS
from dynamics.discriminators import DISCRIMINATORS, Batch, autograd_ascent, autograd_value_and_grad
from dynamics.engine import _optimizer
from dynamics.knobs import KNOBS, resolve
from dynamics.losses import LOSSES, REGULARISERS

B, M, N, d = 3, 7, 5, 3


def _setup(kind, act, seed=0, monkeypatch=None):
    """kind "mlp_unrolled": the mlp with the products written for torch.compile (run eagerly)."""
    torch.manual_seed(seed)
    compiled = kind == "mlp_unrolled"
    if compiled:        # they are chosen only while tracing: choose them here, eagerly
        monkeypatch.setattr(discriminators, "products_for", lambda compiled, d: discriminators.UNROLLED)
    kind = "mlp" if compiled else kind
    cfg = resolve({"disc.activation": act, "disc.width": 6, "disc.kind": kind, "compile": compiled})
    disc = DISCRIMINATORS[kind](cfg)
    p = disc.init(rng.generators([1, 2, 3]), d, torch.float64, "cpu")
    p = {k: torch.randn_like(v) for k, v in p.items()}          # away from the zero init of the linear critic
    g = torch.Generator().manual_seed(seed)
    mk = lambda n: torch.randn(B, n, d, generator=g, dtype=torch.float64)  # noqa: E731
    batch = Batch(mk(M), mk(N), mk(N))
    hyper = {"reg.strength": torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)}
    return disc, p, batch, hyper


# the activation is the MLP's: the linear critic has none (test_linear_critic_ignores_the_activation)
CASES = [(kind, act) for kind in ("mlp", "mlp_unrolled") for act in ACTIVATIONS.names()] + [("linear", "relu")]


@pytest.mark.parametrize("kind, act", CASES)
def test_closed_form_objective_gradient_equals_autograd(kind, act, monkeypatch):
    disc, p, batch, hyper = _setup(kind, act, monkeypatch=monkeypatch)
    for ln in LOSSES.names():
        for rn in REGULARISERS.names():
            g1, J1 = disc.ascent(p, batch, hyper, LOSSES[ln], REGULARISERS[rn])
            g2, J2 = autograd_ascent(disc.value, p, batch, hyper, LOSSES[ln], REGULARISERS[rn])
            assert set(g1) == set(g2)
            for k in g1:
                torch.testing.assert_close(g1[k], g2[k], rtol=1e-10, atol=1e-10, msg=f"{act} {ln} {rn} {k}")
            torch.testing.assert_close(J1, J2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind, act", CASES)
def test_closed_form_input_gradient_equals_autograd(kind, act, monkeypatch):
    disc, p, batch, _ = _setup(kind, act, monkeypatch=monkeypatch)
    D1, g1 = disc.value_and_grad(p, batch.fake)
    D2, g2 = autograd_value_and_grad(disc.value, p, batch.fake)
    torch.testing.assert_close(D1, D2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


def test_linear_critic_ignores_the_activation():
    """disc.activation applies to the mlp only, and the linear critic's ascent, value and input
    gradient are bitwise the same whatever it names: one activation case covers the linear critic."""
    assert KNOBS["disc.activation"].applies == ("disc.kind", ("mlp",))
    out = []
    for act in ACTIVATIONS.names():
        disc, p, batch, hyper = _setup("linear", act)
        g, J = disc.ascent(p, batch, hyper, LOSSES["ns"], REGULARISERS["gp0"])
        out.append((g, J, *disc.value_and_grad(p, batch.fake)))
    for other in out[1:]:
        assert all(torch.equal(a, b) for a, b in zip(other[1:], out[0][1:]))
        assert other[0].keys() == out[0][0].keys() and all(torch.equal(other[0][k], out[0][0][k]) for k in other[0])


def test_unrolled_products_only_while_compiling():
    """compile = true picks the products written for torch.compile only inside its trace: an eager
    caller of the same critic (the fallback, the lab's force arrows and critic field) keeps BLAS,
    2.5-3x faster eagerly."""
    assert discriminators.products_for(True, 2) is discriminators.BLAS
    seen = []

    @torch.compile(backend="eager")
    def traced(x):
        seen.append(discriminators.products_for(True, 2) is discriminators.UNROLLED)
        return x + 1

    traced(torch.zeros(2))
    assert seen == [True]
    assert discriminators.products_for(True, 2 * discriminators.UNROLL_MAX_DIM) is discriminators.BLAS


def test_activation_derivatives_match_autograd():
    u = torch.linspace(-4, 4, 101, dtype=torch.float64).requires_grad_(True)
    for name in ACTIVATIONS.names():
        act = ACTIVATIONS[name]
        s, s1, s2 = act.derivs(u.detach())
        d1 = torch.autograd.grad(act.f(u).sum(), u, create_graph=True)[0]
        d2 = torch.autograd.grad(d1.sum(), u)[0]
        torch.testing.assert_close(s, act.f(u).detach())
        torch.testing.assert_close(s1, d1.detach(), msg=name)
        if act.curved:
            torch.testing.assert_close(s2, d2, msg=name)
        else:
            assert float(d2.abs().max()) == 0.0


def test_deep_mlp_penalty_gradient_matches_finite_differences():
    """The depth-2 critic goes through autograd's double backward: check it independently."""
    cfg = resolve({"disc.depth": 2, "disc.width": 5, "disc.activation": "tanh"})
    disc = DISCRIMINATORS["mlp"](cfg)
    p = disc.init(rng.generators([4]), 2, torch.float64, "cpu")
    g = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(1, 6, 2, generator=g, dtype=torch.float64),
                  torch.randn(1, 4, 2, generator=g, dtype=torch.float64))
    hyper = {"reg.strength": torch.tensor([0.7], dtype=torch.float64)}
    loss, reg = LOSSES["ns"], REGULARISERS["gp0"]
    grads, _ = disc.ascent(p, batch, hyper, loss, reg)
    h = 1e-6
    for k in ("W1", "a"):
        idx = (0,) + (0,) * (p[k].dim() - 1)
        plus = {**p, k: p[k].clone()}
        plus[k][idx] += h
        minus = {**p, k: p[k].clone()}
        minus[k][idx] -= h
        fd = (disc.ascent(plus, batch, hyper, loss, reg)[1] - disc.ascent(minus, batch, hyper, loss, reg)[1]) / (2 * h)
        assert abs(float(fd[0]) - float(grads[k][idx])) < 1e-6


def test_adam_ascent_equals_torch_adam_maximize_with_weight_decay():
    torch.manual_seed(0)
    p = {"w": torch.randn(1, 4, dtype=torch.float64)}
    opt = {"t": torch.zeros(1, dtype=torch.float64), "m": {"w": torch.zeros_like(p["w"])},
           "v": {"w": torch.zeros_like(p["w"])}}
    ref = p["w"].clone().requires_grad_(True)
    topt = torch.optim.Adam([ref], lr=0.01, betas=(0.5, 0.999), eps=1e-8, weight_decay=0.1, maximize=True)
    adam = _optimizer("adam")
    lr, wd = torch.tensor([0.01], dtype=torch.float64), torch.tensor([0.1], dtype=torch.float64)
    for i in range(5):
        grad = torch.randn(1, 4, dtype=torch.float64)
        p, opt = adam(p, {"w": grad}, opt, lr, wd)
        ref.grad = grad.clone()
        topt.step()
        torch.testing.assert_close(p["w"], ref.detach(), rtol=1e-12, atol=1e-12)
