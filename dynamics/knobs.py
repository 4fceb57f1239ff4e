"""Every knob of a simulation, declared once: type, default, bounds or choices, doc.

The CLI (`--set key=value`), the app (widgets, URL) and sweeps (axes) all read this table,
so a bound or a doc string changes in one place. A config is a flat dict keyed by the
dotted names below; `resolve` fills defaults and validates, raising `ConfigError` with a
one-line message that names the key and what is allowed.

A knob that means something for some choices only says so with ``applies``, e.g. ct.rho has
``("disc.kind", ("ct",))``: the app hides it otherwise. Without it a knob always matters.

Roles:
  * ``hyper``  scalar per batch member, held as a ``(B,)`` tensor in the state: it can differ
    between members of one batch (sweeps) and can change while a run goes on (the app).
  * ``struct`` fixes shapes or the computation: shared by a batch; changing it rebuilds.
  * ``run``    how long / how often to record; not part of the physics.
"""
from __future__ import annotations

import dataclasses
import decimal
import math
from typing import Any, Callable, Sequence


class ConfigError(ValueError):
    """Bad user input: the message is one line naming the key and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Knob:
    name: str
    kind: type                      # int, float, str, bool
    default: Any
    doc: str
    bounds: tuple[float | None, float | None] | None = None
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    role: str = "struct"            # hyper | struct | run
    log: bool = False               # log-scaled slider / sweep axis
    advanced: bool = False          # hidden in teach mode
    label: str = ""
    applies: tuple[str, Sequence[str]] | None = None   # (knob, its values) for which this one matters
    lab: tuple[float, float] | None = None  # stricter bounds of the live lab: each alone fits one session's memory
    symbol: str = ""                # mathtext of a figure axis, e.g. r"$\eta_D$"
    unit: str = ""                  # printed after the symbol on a figure axis, e.g. "steps"
    check: Callable[[Any], Any] | None = None   # a free-form value's own parser (ConfigError when bad)

    def allowed(self) -> list[str] | None:
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)

    def describe(self) -> str:
        """The 'allowed' half of an error message."""
        ch = self.allowed()
        if ch is not None:
            return "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else c for c in ch)
        if self.bounds is not None:
            lo, hi = self.bounds
            word = "integers" if self.kind is int else "numbers"
            f = (lambda v: str(int(v))) if self.kind is int else _fmt
            if lo is not None and hi is not None:
                return f"{word} in [{f(lo)}, {f(hi)}]"
            if lo is not None:
                return f"{word} >= {f(lo)}"
            return f"{word} <= {f(hi)}"
        return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.kind]

    def coerce(self, value: Any) -> Any:
        """Parse and check one value (strings from the command line or a URL included)."""
        v = _parse(self, value)
        ch = self.allowed()
        if ch is not None and v not in ch:
            raise ConfigError(f"{self.name}: {show(value)} is not allowed; allowed {self.describe()}")
        if self.kind in (int, float):
            lo, hi = self.bounds or (None, None)
            # ints compare exactly (a 400-digit one has no float); a float must be finite
            if (self.kind is float and not math.isfinite(v)) or (lo is not None and v < lo) \
                    or (hi is not None and v > hi):
                raise ConfigError(f"{self.name}: {show(value)} is out of range; allowed {self.describe()}")
        if self.check is not None:
            self.check(v)
        return v


SHOW_MAX = 40


def show(value: Any) -> str:
    """A value as an error message quotes it: at most SHOW_MAX characters, one line."""
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, int) else _int_text(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    if not text.strip():
        return repr(text)
    return text if len(text) <= SHOW_MAX else f"{text[:SHOW_MAX - 12]}... ({len(text)} characters)"


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to `limit` characters ('' when it has
    none): how a message from torch or a library is quoted inside a one-line error."""
    return (str(err).strip().splitlines() or [""])[0][:limit]


def one_line(err: BaseException) -> str:
    """A failure as one line for a user (its traceback belongs in a log): a ConfigError as it
    is, anything else as `Type: first line of its message`."""
    if isinstance(err, ConfigError):
        return str(err)
    text = first_line(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _int_text(v: int) -> str:
    try:
        return str(v)
    except ValueError:                                  # over Python's 4300-digit limit
        return f"an integer of about {int(v.bit_length() * 0.30103)} digits"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _parse(knob: Knob, value: Any) -> Any:
    k = knob.kind
    try:
        if k is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s == "auto" and "auto" in (knob.allowed() or ()):          # a bool knob with an auto choice
                return "auto"
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if k is int:
            # an integral number written as a float (JSON 1e2, TOML 100.0, --set particles=1e2) is
            # that integer; 1.5, nan and inf are not integers
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            if isinstance(value, int):
                return value
            text = value.strip()
            if len(text) > 4000 and text.lstrip("+-").isdigit():
                raise OverflowError                     # past Python's int limit: out of any bound
            try:
                return int(text)
            except ValueError:
                number = decimal.Decimal(text)          # exact: 1e2 -> 100, 1.5 refused below
                if not number.is_finite() or number != number.to_integral_value():
                    raise
                if number.adjusted() > 4000:
                    raise OverflowError from None
                return int(number)
        if k is float:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            return float(value)
        if k is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except OverflowError:                               # an integer too large for a float
        raise ConfigError(f"{knob.name}: {show(value)} is out of range; allowed {knob.describe()}") from None
    except (TypeError, ValueError, ArithmeticError):    # decimal's errors are ArithmeticErrors
        pass
    shown = repr(value) if isinstance(value, str) and len(value) <= SHOW_MAX else show(value)
    raise ConfigError(f"{knob.name}: {shown} is not {_article(knob)}; allowed {knob.describe()}")


def _article(knob: Knob) -> str:
    return {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}[knob.kind]


# Choices live in the registries of the modules that implement them; look them up lazily
# so this table has no import cycle with them.
def _reg(module: str, attr: str) -> Callable[[], list[str]]:
    def get():
        import importlib
        return importlib.import_module(f"dynamics.{module}").__dict__[attr].names()
    return get


class _Lazy(Sequence):
    """Names read from a registry on first use, like `_reg`: a sequence that can stand where a
    tuple of choice names goes (in `applies`)."""

    def __init__(self, names: Callable[[], list[str]]):
        self._get = names

    def _names(self) -> list[str]:
        return list(self._get())

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(tuple(self._names()))


WIDTHS_MAX = (8, 100_000)        # hidden layers of mlp_layers, units per layer


def layer_widths(text: str) -> tuple[int, ...]:
    """'64,1024,64' -> (64, 1024, 64); ConfigError on disc.widths otherwise."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not 1 <= len(widths) <= WIDTHS_MAX[0] or not all(1 <= w <= WIDTHS_MAX[1] for w in widths):
        raise ConfigError(f"disc.widths: {show(text)!r} is not allowed; allowed 1 to {WIDTHS_MAX[0]} comma-separated "
                          f"integers in [1, {WIDTHS_MAX[1]}], e.g. 64,1024,64")
    return widths


K = Knob
GEOMETRIC = ("ring", "grid", "point", "two_modes")     # targets built from target.radius / .dim
RELU_NETS = ("relu_ntk", "network")
def _critics_with(fact: str) -> Callable[[], list[str]]:
    def get():
        import importlib
        return importlib.import_module("dynamics.critics").kinds_with(fact)
    return get


def _penalties() -> list[str]:
    import importlib
    regs = importlib.import_module("dynamics.objective").REGULARISERS
    return [n for n in regs.names() if regs[n].where != "none"]


ASCENT = _Lazy(_critics_with("ascent"))   # critics trained by gradient ascent: the others bring their own update
VALUED = _Lazy(_critics_with("valued"))   # critics whose value D(x) the loss turns into forces
PENALTIES = _Lazy(_penalties)             # regularisers that penalise something (reg.strength matters)
KNOBS: dict[str, Knob] = {k.name: k for k in [
    # particles and data
    K("particles", int, 64, "N, number of generator particles x_i", (1, 10_000_000),
      label="particles N", lab=(1, 20_000), symbol=r"$N$"),
    K("real", int, 0, "M, real samples drawn fresh every step (0: as many as particles)", (0, 10_000_000),
      advanced=True, lab=(0, 20_000), symbol=r"$M$"),
    K("target.kind", str, "ring", "target distribution", choices=_reg("targets", "TARGETS")),
    K("target.modes", int, 8, "number of modes (ring; grid takes the nearest square)", (1, 10_000), lab=(1, 500),
      applies=("target.kind", ("ring", "grid")), symbol=r"$K$"),
    K("target.radius", float, 2.0, "ring radius / grid half-width / distance of point and two-mode targets",
      (1e-6, 1e6), applies=("target.kind", GEOMETRIC), symbol=r"$R$"),
    K("target.std", float, 0.05, "standard deviation of each Gaussian mode", (0.0, 1e6), symbol=r"$\sigma$"),
    K("target.dim", int, 2, "data dimension d for geometric targets (extra axes carry mode-free noise)",
      (1, 100_000), advanced=True, lab=(1, 1000), applies=("target.kind", GEOMETRIC), symbol=r"$d$"),
    K("target.file", str, "", "CSV or .npy file of target points (target.kind = file), one point per row",
      advanced=True, applies=("target.kind", ("file",))),
    K("target.samples", int, 0, "use only the first n points of a point-set target (digits, file, mnist); 0: all",
      (0, 10_000_000), advanced=True, lab=(0, 20_000), applies=("target.kind", ("digits", "file", "mnist"))),
    K("target.sphere_dim", int, 8, "d of the sphere_pair / sphere_stein target on S^(d-1)", (3, 1000),
      advanced=True, lab=(3, 256), applies=("target.kind", ("sphere_pair", "sphere_stein")), symbol=r"$d$"),
    K("target.sphere_k", int, 6, "degree k of the Legendre polynomial P_{k,d} of the sphere targets", (1, 50),
      advanced=True, applies=("target.kind", ("sphere_pair", "sphere_stein")), symbol=r"$k$"),
    K("target.sphere_gamma", float, 1.0, "γ of the Stein target ν ∝ exp(γ P_{k,d}(x_d)) on the sphere",
      (-100.0, 100.0), advanced=True, applies=("target.kind", ("sphere_stein",)), symbol=r"$\gamma$"),
    K("init.kind", str, "gaussian", "initial cloud: a Gaussian blob, the sphere pair's other half μ, or "
      "uniform on the sphere S^(d-1) (the Stein experiment's μ = τ)", choices=("gaussian", "pair", "sphere"),
      advanced=True),
    K("init.std", float, 0.1, "standard deviation of the initial particle cloud", (0.0, 1e6), advanced=True,
      symbol=r"$\sigma_0$"),
    K("init.shift", float, 0.0, "offset of the initial cloud along the first axis", (-1e6, 1e6), advanced=True),
    # generator kernel
    K("kernel.kind", str, "two_number", "generator kernel Θ coupling the particles",
      choices=_reg("kernels", "KERNELS")),
    K("kernel.g1", float, 1.0, "Θ_ii, the self coupling (overall scale of the particle step)", (1e-6, 1e6),
      role="hyper", log=True, advanced=True, symbol=r"$g_1$"),
    K("kernel.ratio", float, 0.0, "r = g2/g1, the cross coupling of two_number (1: rigid cloud)", (0.0, 1.0),
      role="hyper", label="coupling r = g2/g1", applies=("kernel.kind", ("two_number",)), symbol=r"$g_2/g_1$"),
    K("kernel.width", float, 0.5, "length-scale of the rbf kernel over latent codes (wider: stronger coupling)",
      (1e-6, 1e6), role="hyper", log=True, applies=("kernel.kind", ("rbf",)), symbol=r"$\ell$"),
    K("kernel.latent_dim", int, 16, "d_z, dimension of the latent codes (rbf, relu_ntk, network, linear)",
      (1, 100_000), lab=(1, 1000), label="d_z (kernel.latent_dim)",
      applies=("kernel.kind", ("rbf", "relu_ntk", "network", "linear")), symbol=r"$d_z$"),
    K("kernel.depth", int, 1, "hidden layers L of the ReLU generator (relu_ntk, network)", (1, 20),
      applies=("kernel.kind", RELU_NETS), symbol=r"$L$"),
    K("kernel.bias", float, 0.0, "bias variance σ_b² of the ReLU generator (relu_ntk, network)", (0.0, 100.0),
      advanced=True, applies=("kernel.kind", RELU_NETS), symbol=r"$\sigma_b^2$"),
    K("kernel.net_width", int, 512, "hidden width of the finite generator network (network)", (1, 100_000),
      advanced=True, lab=(1, 2048), applies=("kernel.kind", ("network",)), symbol=r"$n$"),
    # discriminator
    K("disc.kind", str, "mlp", "discriminator family", choices=_reg("critics", "CRITICS")),
    K("disc.activation", str, "relu", "activation of the discriminator MLP (its 'type')",
      choices=_reg("activations", "ACTIVATIONS"), applies=("disc.kind", ("mlp",))),
    K("disc.width", int, 128, "hidden units H per layer", (1, 100_000), lab=(1, 2048), applies=("disc.kind", ("mlp",)),
      symbol=r"$H$"),
    K("disc.depth", int, 1, "hidden layers of the discriminator MLP", (1, 3), applies=("disc.kind", ("mlp",))),
    K("disc.steps", int, 1, "discriminator updates per particle update", (1, 1000), lab=(1, 100), symbol=r"$n_D$"),
    K("disc.steps_first", int, 0, "discriminator updates before the first particle update (0: disc.steps; "
      "the authors' MNIST runs: 200)", (0, 1000), advanced=True, symbol=r"$n_D^{(0)}$"),
    K("disc.optimizer", str, "sgd", "discriminator optimiser (gradient ascent)", choices=_reg("objective", "OPTIMIZERS"),
      advanced=True, applies=("disc.kind", ASCENT)),
    K("disc.weight_decay", float, 0.0, "weight decay wd: the objective gets −(wd/2)‖φ‖²", (0.0, 100.0),
      role="hyper", advanced=True, applies=("disc.kind", ASCENT), symbol=r"$\lambda_\mathrm{wd}$"),
    K("ct.rho", float, 0.5, "ρ of conditional transport: 1 covers modes (forward), 0 seeks them (backward)",
      (0.0, 1.0), role="hyper", applies=("disc.kind", ("ct",)), symbol=r"$\rho$"),
    K("ct.beta", float, 4.0, "β, inverse temperature of the fixed conditional-transport navigator d = β‖x−y‖²",
      (1e-6, 1e6), role="hyper", log=True, advanced=True, applies=("disc.kind", ("ct",)), symbol=r"$\beta$"),
    K("ct.max_step", float, 0.0, "longest move of one particle per step under conditional transport (0: no "
      "clip): F_j is shortened so that (η_G/N)·g1·‖F_j‖ ≤ ct.max_step, the whole move for two_number with "
      "r = 0, a bound on its self term otherwise", (0.0, 1e6), role="hyper", advanced=True,
      applies=("disc.kind", ("ct",))),
    K("critic.restarts", int, 16, "neurons searched in parallel by the f1_neuron critic", (1, 4096),
      advanced=True, lab=(1, 256), applies=("disc.kind", ("f1_neuron",))),
    # the authors' MNIST protocol (issue 15): a critic with per-layer widths, adam's options, the Sobolev AL
    K("disc.widths", str, "64,1024,64", "hidden widths of the mlp_layers critic, comma-separated (the "
      "authors': 64,1024,64)", applies=("disc.kind", ("mlp_layers",)), check=layer_widths),
    K("disc.dropout", float, 0.0, "dropout rate after the second hidden layer of mlp_layers (the authors': 0.2); "
      "masks in the critic's ascent, none in the forces", (0.0, 0.95), advanced=True,
      applies=("disc.kind", ("mlp_layers",)), symbol=r"$p_\mathrm{drop}$"),
    K("disc.out_bias", bool, True, "a bias on the output layer of mlp_layers (the authors': none)", advanced=True,
      applies=("disc.kind", ("mlp_layers",))),
    K("disc.init", str, "ntk", "initialisation of mlp_layers: ntk (W ~ N(0, 1/fan_in)) or default (PyTorch's "
      "nn.Linear: W, b ~ U(±1/√fan_in))", choices=_reg("critics.layers", "INITS"), advanced=True,
      applies=("disc.kind", ("mlp_layers",))),
    K("disc.beta1", float, 0.5, "β1 of adam (β2 = 0.999; torch's default β1 is 0.9)", (0.0, 0.9999),
      advanced=True, applies=("disc.optimizer", ("adam",)), symbol=r"$\beta_1$"),
    K("disc.reset", bool, False, "re-create the optimiser at every particle update (its moments and step count "
      "start from zero, as the authors' code re-creates Adam each step)", advanced=True,
      applies=("disc.optimizer", ("adam",))),
    K("disc.amsgrad", bool, False, "AMSGrad: adam divides by the running maximum of its second moment",
      advanced=True, applies=("disc.optimizer", ("adam",))),
    K("reg.alpha", float, 0.0, "α of the sobolev regulariser: the constraint gets + α·Var_q D (Fisher)",
      (0.0, 1e6), advanced=True, applies=("reg.kind", ("sobolev",)), symbol=r"$\alpha$"),
    K("reg.rho", float, 0.0, "ρ of the sobolev regulariser: the penalty (ρ/2)c² and the step λ += ρc after "
      "each critic update (λ starts at reg.strength)", (0.0, 1e6), advanced=True,
      applies=("reg.kind", ("sobolev",)), symbol=r"$\rho$"),
    K("reg.batch_mean", bool, True, "sobolev's gradient term as the authors' code takes it, ∇ of the batch "
      "mean: E_q‖∇D‖²/N² (false: E_q‖∇D‖²)", advanced=True, applies=("reg.kind", ("sobolev",))),
    K("loss", str, "ipm", "GAN loss", choices=_reg("objective", "LOSSES"), applies=("disc.kind", VALUED)),
    K("reg.kind", str, "gp0", "discriminator regulariser", choices=_reg("objective", "REGULARISERS"),
      applies=("disc.kind", ASCENT)),
    K("reg.strength", float, 0.2, "γ: the objective gets −(γ/2)·E‖∇D‖² (wgan_gp: −γ·E(‖∇D‖−1)²)",
      (0.0, 1e4), role="hyper", log=True, label="regulariser γ", applies=("reg.kind", PENALTIES), symbol=r"$\gamma$"),
    K("lr.disc", float, 0.01, "η_D, discriminator learning rate", (0.0, 100.0), role="hyper", log=True,
      label="η_D (lr.disc)", applies=("disc.kind", ASCENT), symbol=r"$\eta_D$"),
    K("lr.gen", float, 0.1, "η_G, particle learning rate in x_i += η_G/N Σ_j Θ_ij F_j (lr.convention)", (0.0, 1e4),
      role="hyper", log=True, label="η_G (lr.gen)", symbol=r"$\eta_G$"),
    K("lr.convention", str, "mean", "how lr.gen scales the particle update: mean, x_i += (η_G/N) Σ_j Θ_ij F_j "
      "(effgan's), or particle, x_i += η_G Σ_j Θ_ij F_j (the authors' per-particle η_Q; same dynamics with "
      "lr.gen(mean) = N·lr.gen(particle))", choices=_reg("convention", "CONVENTIONS"), advanced=True),
    K("ps.weight", float, 0.0, "λ_PS, pseudo-supervision: each particle is also pulled towards its own fixed "
      "target sample, L_G += λ_PS·mean‖x_i − y_i‖² (0: a plain GAN)", (0.0, 1e6), role="hyper", advanced=True,
      symbol=r"$\lambda_\mathrm{PS}$"),
    K("update", str, "alternating", "alternating (discriminator first) or simultaneous updates",
      choices=("alternating", "simultaneous"), advanced=True),
    K("seed", int, 1, "random seed of the run", (0, 2**31 - 1)),
    K("dtype", str, "float32", "floating-point precision", choices=("float32", "float64"), advanced=True),
    K("device", str, "auto", "where to run", choices=("auto", "cpu", "cuda"), advanced=True),
    K("compile", bool, "auto", "fuse each step into compiled kernels: true, with torch.compile (faster, also for "
      "dense kernels above ~11,000 particles; the first step waits for the compiler, seconds to a minute; needs a "
      "C++ compiler on the CPU); auto, a long single run's step compiled once ahead of time and loaded from the "
      "cache by later runs in milliseconds (README: speed); false, eager", choices=(False, True, "auto"),
      advanced=True),
    # run control
    K("steps", int, 4000, "particle updates in a run", (0, 100_000_000), role="run", symbol=r"$T$", unit="steps"),
    K("record.every", int, 10, "record metrics every this many steps", (1, 1_000_000), role="run",
      advanced=True),
    K("record.snapshots", int, 50, "particle snapshots kept over a run", (0, 100_000), role="run",
      advanced=True),
]}


def unknown_key(name: Any, allowed=None, field: str | None = None, where: str = "") -> ConfigError:
    """The one-line error for a key that is not a knob: the closest key when one is near (a
    typo), then every allowed key. field: how the message names it (default: the key)."""
    import difflib
    allowed = list(KNOBS if allowed is None else allowed)
    near = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.8)
    guess = f" (did you mean {near[0]}?)" if near else ""
    return ConfigError(f"{field or show(name)}: unknown key{where}{guess}; allowed keys: {', '.join(allowed)}")


def knob(name: str) -> Knob:
    try:
        return KNOBS[name]
    except KeyError:
        raise unknown_key(name) from None


def defaults() -> dict[str, Any]:
    return {k.name: k.default for k in KNOBS.values()}


def resolve(*layers: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then each layer on top (preset, file, --set ...), each value checked.

    Cross-field rules are checked last (e.g. a file target needs target.file).
    """
    cfg = defaults()
    for layer in layers:
        for key, value in layer.items():
            cfg[key] = knob(key).coerce(value)
    _check_together(cfg)
    return cfg


def _check_together(cfg: dict[str, Any]) -> None:
    if cfg["target.kind"] == "file" and not cfg["target.file"]:
        raise ConfigError("target.file: required when target.kind = file; allowed a path to a .csv or .npy file")
    if cfg["target.kind"] == "grid":
        side = round(math.sqrt(cfg["target.modes"]))
        if side * side != cfg["target.modes"]:
            raise ConfigError(f"target.modes: {cfg['target.modes']} is not a square; the grid target allows "
                              "perfect squares (4, 9, 16, 25, ...)")
    if cfg["init.kind"] == "pair" and cfg["target.kind"] != "sphere_pair":
        raise ConfigError("init.kind: pair needs target.kind = sphere_pair; allowed gaussian or sphere otherwise")
    if 0 < cfg["disc.steps_first"] < cfg["disc.steps"]:
        raise ConfigError(f"disc.steps_first: {cfg['disc.steps_first']} is fewer than disc.steps = {cfg['disc.steps']}; "
                          f"allowed 0 (as disc.steps) or {cfg['disc.steps']} to 1000")


def hyper_keys() -> list[str]:
    return [k.name for k in KNOBS.values() if k.role == "hyper"]


def parse_assignment(text: str) -> tuple[str, Any]:
    """'kernel.ratio=0.5' -> ('kernel.ratio', 0.5), checked against the knob."""
    if "=" not in text:
        raise ConfigError(f"--set: {show(text)!r} is not KEY=VALUE; allowed keys: {', '.join(KNOBS)}")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set: {show(text)!r} names no key; allowed KEY=VALUE with keys: {', '.join(KNOBS)}")
    if key not in KNOBS:
        raise unknown_key(key, field=f"--set: {show(key)}")
    return key, knob(key).coerce(value.strip())


def inapplicable(key: str, values: dict[str, Any]) -> tuple[str, Sequence[str]] | None:
    """The first condition along `key`'s chain of `applies` that `values` breaks, as (knob, the
    values it needs), or None when the knob matters (reg.strength needs a penalty, which needs a
    critic trained by ascent)."""
    seen = set()
    while KNOBS[key].applies is not None and key not in seen:
        seen.add(key)
        other, allowed = KNOBS[key].applies
        if values[other] not in allowed:
            return other, allowed
        key = other
    return None


def check_applies(cfg: dict[str, Any], given: dict[str, Any], where: str) -> None:
    """ConfigError for a key the user gave (`where`: --set, --config) that has no effect in the
    resolved cfg by its knob's `applies` chain (target.file without target.kind = file), unless
    it holds the default (a full config saved from a run lists every key)."""
    for key in given:
        if cfg[key] == KNOBS[key].default or (broken := inapplicable(key, cfg)) is None:
            continue
        other, values = broken
        raise ConfigError(f"{where} {key}: has no effect with {other} = {cfg[other]}; allowed only with "
                          f"{other} = {' or '.join(values)}")
