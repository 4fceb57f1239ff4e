"""The effective GAN dynamics: ``build(cfg) -> Simulation`` with pure ``init`` and ``step``.

One step (alternating, the default):
  0. (first step only, with ``disc.steps_first``) the extra critic updates before the first
     particle update; (``disc.reset``) otherwise the optimiser's state starts from zero;
  1. ``disc.steps`` times: draw a fresh real batch y `(B, M, d)` and take one critic step
     (`Critic.update`; for gradient-ascent critics the objective J of `dynamics.objective`);
  2. forces at the particles with the updated critic (`Critic.force`, e.g. F_j =
     gen_weight(D(x_j)) ∇_x D(x_j)), plus the pseudo-supervision pull;
  3. particles move through the generator kernel: x_i += (η_G/N) Σ_j Θ_ij F_j (the
     per-particle `lr.convention` drops the 1/N, `dynamics.convention`).
``update = simultaneous`` takes the forces from the critic before its update instead.

State is a frozen dataclass of `(B, ...)` tensors; member b of a batch follows exactly the
trajectory of the same config run alone (per-member seeds, counter-based streams). A member
whose particles or critic become non-finite or run away is frozen at its last good state and
its step recorded in ``diverged_step``; the others go on. Nothing raises out of a step.
"""
from __future__ import annotations

import dataclasses
import sys
import warnings
from typing import Any, Callable, Sequence

import torch

from . import allocator  # noqa: F401  (tunes glibc's allocator once, see the module)
from . import aot, convention, rng, threads
from .critics import CRITICS, Critic
from .kernels import KERNELS, Kernel
from .knobs import ConfigError, hyper_keys, one_line, resolve
from .objective import REGULARISERS, batches
from .targets import Target, build_target

Tensor = torch.Tensor
STREAM_MIX = rng.STREAMS["mix"]
PAIRS_COUNTER = rng.COUNTERS["pairs"].start      # the stream counter of the pseudo-supervision pairs
RUNAWAY = 1e4                      # |x| beyond RUNAWAY · (1 + target size) counts as diverged
COMPILE_NOTE = ("compiling the step (first run, ~{s} s; cached afterwards: a few seconds); "
                "compile = false runs eagerly at once")
COMPILE_S = 60                     # a cold compile of the step and the recorder on 2 shared cores
_compile_said: list[bool] = []     # the note is given once per process


@dataclasses.dataclass(frozen=True)
class State:
    """x `(B, N, d)` particles; disc/opt/kernel: dicts of `(B, ...)` tensors; hyper: dict of
    `(B,)` live knobs; key, diverged_step `(B,)` int64 (−1: not diverged); alive `(B,)` bool;
    loss_d, loss_g `(B,)` from the last step; t: steps taken (shared by the batch: it is the
    counter of the random streams)."""
    x: Tensor
    disc: dict
    opt: dict
    kernel: dict
    hyper: dict
    key: Tensor
    t: int
    alive: Tensor
    diverged_step: Tensor
    loss_d: Tensor
    loss_g: Tensor

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    def replace(self, **kw) -> "State":
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class Simulation:
    cfg: dict
    target: Target
    disc: Critic
    kernel: Kernel
    init: Callable[..., State]
    step: Callable[[State], State]
    set_hyper: Callable[[State, dict], State]
    forces: Callable[[State], tuple[Tensor, Tensor]]
    real_batch: Callable[[State, int], Tensor]
    device: torch.device
    dtype: torch.dtype


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda is not available on this machine; allowed auto, cpu")
    return torch.device(name)


def _tree_where(keep: Tensor, new, old):
    """Per member, new where keep else old, through nested dicts of (B, ...) tensors."""
    if isinstance(new, dict):
        return {k: _tree_where(keep, new[k], old[k]) for k in new}
    return torch.where(keep.view(-1, *([1] * (new.dim() - 1))), new, old)


def _zeros(tree):
    """The same nested dict of tensors, all zero: every optimiser's fresh state (tests check it)."""
    return {k: _zeros(v) if isinstance(v, dict) else torch.zeros_like(v) for k, v in tree.items()}


def _counter(t: int, device: torch.device) -> Tensor:
    """0-d int64 tensor holding t, made by a fill kernel (no host-to-device copy, no sync)."""
    return torch.full((), t, dtype=torch.int64, device=device)


def compile_or_eager(fn: Callable, what: str, compile_args: Callable | None = None) -> Callable:
    """fn under torch.compile (compile_args maps the call's arguments to the compiled one's).
    Where compiling fails (no C++ compiler, an unsupported op) it warns once and goes on
    eagerly: same maths, slower."""
    fused = torch.compile(fn, dynamic=False)
    compiled = []                                  # [True]: compiled once; [False]: fell back

    def call(*args):
        if compiled == [False]:
            return fn(*args)
        if not compiled and not _compile_said:
            print(COMPILE_NOTE.format(s=COMPILE_S), file=sys.stderr, flush=True)
            _compile_said.append(True)
        try:
            out = fused(*(compile_args(*args) if compile_args else args))
        except Exception as err:  # noqa: BLE001  (any compiler failure: fall back, never crash a run)
            if compiled:                           # it compiled before: a real error, not the compiler
                raise
            warnings.warn(f"compile: torch.compile failed ({one_line(err)}); "
                          f"running {what} eagerly", RuntimeWarning, stacklevel=3)
            compiled.append(False)
            return fn(*args)
        compiled[:] = [True]
        return out
    return call


def _tensor_step(device: torch.device) -> Callable:
    """The step's arguments with the step number as a tensor (a new value must not recompile)."""
    def tensor_step(x, p, opt, kstate, h, key, t: int):
        return x, p, opt, kstate, h, key, _counter(t, device)
    return tensor_step


def _compiled(advance: Callable, device: torch.device) -> Callable:
    """advance under torch.compile, the step number passed as a tensor."""
    return compile_or_eager(advance, "the step", _tensor_step(device))


# compile = false: eager; true: torch.compile; auto: a cached ahead-of-time package where it pays (aot.py)
CORES: dict[object, Callable] = {
    False: lambda advance, cfg, device, target: advance,
    True: lambda advance, cfg, device, target: _compiled(advance, device),
    "auto": lambda advance, cfg, device, target: advance if target.sampler is not None else  # (Python samplers)
    aot.aot_or_eager(advance, cfg, (target.centers,), _tensor_step(device)),
}


def initial_cloud(cfg, gens, N: int, d: int, dtype, device) -> Tensor:
    """(B, N, d) starting particles: init.std · N(0, I) shifted by init.shift along the first
    axis, (init.kind = pair) a draw from the sphere pair's negative half μ, or (sphere) uniform
    on S^(d−1)."""
    if cfg["init.kind"] == "pair":
        if cfg["target.kind"] != "sphere_pair":
            raise ConfigError("init.kind: pair needs target.kind = sphere_pair; allowed gaussian or sphere otherwise")
        from .papers.spheres import sample_sphere_pair
        return torch.stack([sample_sphere_pair(N, d, cfg["target.sphere_k"], -1, g, dtype=torch.float64)
                            for g in gens]).to(device=device, dtype=dtype)
    if cfg["init.kind"] == "sphere":
        z = rng.stacked_normal(gens, (N, d), torch.float64, "cpu")
        return (z / z.norm(dim=-1, keepdim=True)).to(device=device, dtype=dtype)
    x0 = cfg["init.std"] * rng.stacked_normal(gens, (N, d), dtype, device)
    x0[..., 0] += cfg["init.shift"]
    return x0


def build(cfg: dict[str, Any], target: Target | None = None) -> Simulation:
    """Set up once for a config; members of a batch may differ in seed and hyper knobs.

    target: an already built Target (points drawn or uploaded in the app) instead of the
    one cfg names.
    """
    cfg = resolve(cfg)
    threads.apply(cfg)                     # one thread for a small problem, unless the user chose
    device = resolve_device(cfg["device"])
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg["dtype"]]
    target = build_target(cfg, device, dtype) if target is None else target.to(device, dtype)
    disc = CRITICS[cfg["disc.kind"]](cfg)
    kernel = KERNELS[cfg["kernel.kind"]](cfg)
    N, d = cfg["particles"], target.dim
    M = cfg["real"] or N
    n_disc, simultaneous = cfg["disc.steps"], cfg["update"] == "simultaneous"
    # disc.steps_first: the first step's extra updates draw counters 0 .. shift − 1, so critic
    # update k of step t draws at shift + t·n_disc + k (= steps_first + (t − 1)·n_disc + k, t ≥ 1)
    shift = (cfg["disc.steps_first"] or n_disc) - n_disc
    reset = cfg["disc.reset"]
    step_scale = convention.of(cfg).scale(N)
    hkeys = hyper_keys()
    limit = RUNAWAY * (1.0 + float(target.centers.abs().max()))
    check_host = device.type == "cpu"      # a host check is free on the CPU; on a GPU, never sync
    make_batch = batches(REGULARISERS[cfg["reg.kind"]], N, M, STREAM_MIX, dtype, device)

    def hyper_tensor(members: Sequence[dict], key: str) -> Tensor:
        return torch.tensor([m.get(key, cfg[key]) for m in members], dtype=dtype, device=device)

    def init(members: Sequence[dict] | None = None) -> State:
        """members: per-member overrides of 'seed' and hyper knobs (default: one member = cfg)."""
        members = [{}] if members is None else [dict(m) for m in members]
        if not members:
            raise ConfigError("members: the batch is empty; allowed at least one member (None: one member = cfg)")
        for m in members:
            for k, v in m.items():
                if k != "seed" and k not in hkeys:
                    raise ConfigError(f"{k}: cannot differ within a batch; allowed per-member keys: seed, "
                                      + ", ".join(hkeys))
            resolve(cfg, m)                                  # checks each override's range
        seeds = [m.get("seed", cfg["seed"]) for m in members]
        B = len(members)
        threads.apply(cfg, B)                                # a large batch gets its cores back
        gens = rng.generators(seeds)
        hyper = {k: hyper_tensor(members, k) for k in hkeys}
        x0 = initial_cloud(cfg, gens, N, d, dtype, device)
        params, opt = disc.init(gens, d, dtype, device)
        x, kstate = kernel.init(x0, gens, hyper)
        z = torch.zeros(B, dtype=dtype, device=device)
        return with_pairs(State(x=x, disc=params, opt=opt, kernel=kstate, hyper=hyper,
                     key=rng.member_keys(seeds, device), t=0,
                     alive=torch.ones(B, dtype=torch.bool, device=device),
                     diverged_step=torch.full((B,), -1, dtype=torch.int64, device=device), loss_d=z, loss_g=z))

    def forces(params, x, real, h, pairs):
        """(loss_g (B,), F (B, N, d)): the generator loss and the force on every particle.

        pairs `(B, N, d)` or None: the fixed targets of pseudo-supervision."""
        lg, F = disc.force(params, x, real, h)
        if pairs is not None:
            # L_G += λ mean‖x_i − y_i‖² with fixed pairs  ->  F_i = −N ∂L_G/∂x_i gains −2λ (x_i − y_i)
            lam = h["ps.weight"]
            diff = x - pairs
            lg = lg + lam * diff.pow(2).sum(-1).mean(1)
            F = F - 2 * lam.view(-1, 1, 1) * diff
        return lg, F

    def with_pairs(s: State) -> State:
        """Draw the fixed code-sample pairs of pseudo-supervision (once, when first needed)."""
        if "pairs" in s.kernel or not bool((s.hyper["ps.weight"] > 0).any()):
            return s
        return s.replace(kernel={**s.kernel, "pairs": target.sample(s.key, PAIRS_COUNTER, N)})

    def advance(x, p, opt, kstate, h, key, t):
        """The arithmetic of one step, a pure function of tensors (t: the step number, an int
        or, under torch.compile, a 0-d int64 tensor so that a new step does not recompile).
        Returns x', params, opt, kstate, J (B,), loss_g (B,), ok (B,) bool."""
        J = loss_g = F = real = None
        pairs = kstate.get("pairs")
        for sub in range(n_disc):
            counter = t * n_disc + sub + shift
            real = target.sample(key, counter, M)                               # (B, M, d)
            batch = make_batch(real, x, key, counter)                          # (+ wgan_gp interpolates)
            if simultaneous and sub == 0:
                loss_g, F = forces(p, x, real, h, pairs)
            p, opt, J = disc.update(p, opt, batch, h)
        if not simultaneous:
            loss_g, F = forces(p, x, real, h, pairs)
        x_new, kstate = kernel.move(kstate, x, F, h["lr.gen"] * step_scale, h)
        # NaN fails the comparison; J is non-finite when any critic parameter is
        ok = (x_new.abs().amax((1, 2)) < limit) & torch.isfinite(J)
        return x_new, p, opt, kstate, J, loss_g, ok

    core = CORES[cfg["compile"]](advance, cfg, device, target)

    def warm_up(s: State) -> State:
        """The critic's first `shift` updates, before the first particle step (disc.steps_first)."""
        p, opt = s.disc, s.opt
        for counter in range(shift):
            real = target.sample(s.key, counter, M)
            p, opt, _ = disc.update(p, opt, make_batch(real, s.x, s.key, counter), s.hyper)
        return s.replace(disc=p, opt=opt)

    def step(s: State) -> State:
        if s.t == 0 and shift:
            s = warm_up(s)
        elif reset and s.t:                # at t = 0 the state is fresh (or warmed up: one run of updates)
            s = s.replace(opt=_zeros(s.opt))
        x_new, p, opt, kstate, J, loss_g, ok = core(s.x, s.disc, s.opt, s.kernel, s.hyper, s.key, s.t)
        new = s.replace(x=x_new, disc=p, opt=opt, kernel=kstate, t=s.t + 1, loss_d=-J, loss_g=loss_g)
        if check_host and bool((ok & s.alive).all()):
            return new
        keep = s.alive & ok
        newly = s.alive & ~ok
        frozen = _tree_where(keep, {"x": x_new, "disc": p, "opt": opt, "kernel": kstate,
                                    "loss_d": new.loss_d, "loss_g": new.loss_g},
                             {"x": s.x, "disc": s.disc, "opt": s.opt, "kernel": s.kernel,
                              "loss_d": s.loss_d, "loss_g": s.loss_g})
        return new.replace(**frozen, alive=keep, diverged_step=torch.where(newly, s.t + 1, s.diverged_step))

    def real_batch(s: State, sub: int = 0) -> Tensor:
        """(B, M, d) the real batch of critic update `sub` of the step from s (sub = −1: the last
        update of the step that led to s): the engine's stream counter, for views and meters."""
        return target.sample(s.key, s.t * n_disc + sub + shift, M)

    def forces_now(s: State) -> tuple[Tensor, Tensor]:
        """(loss_g (B,), F (B, N, d)): the generator loss and forces the next step would apply
        with the current critic (pseudo-supervision pull included), on the real batch it uses."""
        real = real_batch(s, 0 if simultaneous else n_disc - 1)
        return forces(s.disc, s.x, real, s.hyper, s.kernel.get("pairs"))

    def set_hyper(s: State, changes: dict) -> State:
        """Change live knobs for every member (values checked), keeping particles and critic."""
        changes = {k: resolve(cfg, {k: v})[k] for k, v in changes.items()}
        bad = [k for k in changes if k not in hkeys]
        if bad:
            raise ConfigError(f"{bad[0]}: not a live knob; allowed {', '.join(hkeys)}")
        hyper = {**s.hyper, **{k: torch.full_like(s.hyper[k], float(v)) for k, v in changes.items()}}
        return with_pairs(s.replace(hyper=hyper, kernel=kernel.retune(s.kernel, hyper)))

    return Simulation(cfg, target, disc, kernel, init, step, set_hyper, forces_now, real_batch, device, dtype)
