"""Closed-form critic gradients against autograd in float64, and the optimisers."""
import pytest
import torch

from dynamics import rng
from dynamics.activations import ACTIVATIONS
from dynamics.critics import linear, mlp
from dynamics.knobs import KNOBS, resolve
from dynamics.objective import (LOSSES, OPTIMIZERS, REGULARISERS, Batch, autograd_ascent,
                                autograd_value_and_grad)

B, M, N, d = 3, 7, 5, 3


def _setup(kind, act, seed=0, monkeypatch=None):
    """kind "mlp_unrolled": the mlp with the products written for torch.compile (run eagerly)."""
    torch.manual_seed(seed)
    compiled = kind == "mlp_unrolled"
    if compiled:        # they are chosen only while tracing: choose them here, eagerly
        monkeypatch.setattr(mlp, "products_for", lambda compiled, d: mlp.UNROLLED)
    kind = "mlp" if compiled else kind
    cfg = resolve({"disc.activation": act, "disc.width": 6, "disc.kind": kind, "compile": compiled})
    disc = {"mlp": mlp, "linear": linear}[kind].parts(cfg)
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
            g1, J1 = disc.gradient(p, batch, hyper, LOSSES[ln], REGULARISERS[rn])
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
        g, J = disc.gradient(p, batch, hyper, LOSSES["ns"], REGULARISERS["gp0"])
        out.append((g, J, *disc.value_and_grad(p, batch.fake)))
    for other in out[1:]:
        assert all(torch.equal(a, b) for a, b in zip(other[1:], out[0][1:]))
        assert other[0].keys() == out[0][0].keys() and all(torch.equal(other[0][k], out[0][0][k]) for k in other[0])


def test_unrolled_products_only_while_compiling():
    """compile = true picks the products written for torch.compile only inside its trace: an eager
    caller of the same critic (the fallback, the lab's force arrows and critic field) keeps BLAS,
    the faster form eagerly."""
    assert mlp.products_for(True, 2) is mlp.BLAS
    seen = []

    @torch.compile(backend="eager")
    def traced(x):
        seen.append(mlp.products_for(True, 2) is mlp.UNROLLED)
        return x + 1

    traced(torch.zeros(2))
    assert seen == [True]
    assert mlp.products_for(True, 2 * mlp.UNROLL_MAX_DIM) is mlp.BLAS


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
    disc = mlp.parts(cfg)
    p = disc.init(rng.generators([4]), 2, torch.float64, "cpu")
    g = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(1, 6, 2, generator=g, dtype=torch.float64),
                  torch.randn(1, 4, 2, generator=g, dtype=torch.float64))
    hyper = {"reg.strength": torch.tensor([0.7], dtype=torch.float64)}
    loss, reg = LOSSES["ns"], REGULARISERS["gp0"]
    grads, _ = disc.gradient(p, batch, hyper, loss, reg)
    h = 1e-6
    for k in ("W1", "a"):
        idx = (0,) + (0,) * (p[k].dim() - 1)
        plus = {**p, k: p[k].clone()}
        plus[k][idx] += h
        minus = {**p, k: p[k].clone()}
        minus[k][idx] -= h
        fd = (disc.gradient(plus, batch, hyper, loss, reg)[1] - disc.gradient(minus, batch, hyper, loss, reg)[1]) / (2 * h)
        assert abs(float(fd[0]) - float(grads[k][idx])) < 1e-6


def test_adam_ascent_equals_torch_adam_maximize_with_weight_decay():
    torch.manual_seed(0)
    p = {"w": torch.randn(1, 4, dtype=torch.float64)}
    opt = OPTIMIZERS["adam"].init(p)
    ref = p["w"].clone().requires_grad_(True)
    topt = torch.optim.Adam([ref], lr=0.01, betas=(0.5, 0.999), eps=1e-8, weight_decay=0.1, maximize=True)
    adam = OPTIMIZERS["adam"].step
    lr, wd = torch.tensor([0.01], dtype=torch.float64), torch.tensor([0.1], dtype=torch.float64)
    for i in range(5):
        grad = torch.randn(1, 4, dtype=torch.float64)
        p, opt = adam(p, {"w": grad}, opt, lr, wd)
        ref.grad = grad.clone()
        topt.step()
        torch.testing.assert_close(p["w"], ref.detach(), rtol=1e-12, atol=1e-12)


def test_every_critic_fills_the_contract_as_its_registry_entry_declares():
    """value is None exactly for the critics declared without a value; the knobs' ASCENT / VALUED
    are the registry's declared facts."""
    from dynamics import knobs
    from dynamics.critics import CRITICS, kinds_with
    for kind in CRITICS:
        critic = CRITICS[kind](resolve({"disc.kind": kind}))
        assert (critic.value is not None) == CRITICS[kind].valued == (critic.value_and_grad is not None), kind
    assert list(knobs.ASCENT) == kinds_with("ascent") == ["mlp", "linear", "mlp_layers"]
    assert list(knobs.VALUED) == kinds_with("valued") == ["mlp", "linear", "f1_neuron", "f2_features", "mlp_layers"]


def test_a_new_critic_is_one_registry_entry(monkeypatch):
    """A critic the engine has never seen runs through `build`/`step` by the contract alone: its
    update's J becomes loss_d, its force moves the particles, its facts reach the knobs."""
    from dynamics import knobs
    from dynamics.critics import CRITICS, Critic, Kind
    from dynamics.engine import build

    def make(cfg):
        def init(gens, d, dtype, device):
            return {"n": torch.zeros(len(gens), dtype=dtype, device=device)}, {"calls": torch.zeros(len(gens))}

        def update(p, opt, batch, hyper):
            return {"n": p["n"] + 1}, {"calls": opt["calls"] + 1}, p["n"] + 1

        def force(p, x, real, hyper):
            return x.new_zeros(x.shape[0]), torch.ones_like(x)
        return Critic(init, update, force, value=None, value_and_grad=None)

    monkeypatch.setitem(CRITICS._entries, "probe", Kind(make, ascent=True, valued=False))
    assert "probe" in knobs.ASCENT and "probe" not in knobs.VALUED
    sim = build({"disc.kind": "probe", "particles": 4, "dtype": "float64", "disc.steps": 2, "kernel.ratio": 0.0,
                 "lr.gen": 0.4})
    s = sim.init()
    s2 = sim.step(sim.step(s))
    assert float(s2.disc["n"][0]) == 4 and float(s2.opt["calls"][0]) == 4 and float(s2.loss_d[0]) == -4
    torch.testing.assert_close(s2.x - s.x, torch.full_like(s.x, 2 * 0.4 / 4))      # x += (η_G/N) g1 F, twice
