"""Target distributions: what the real samples y ~ p look like.

Every built-in target is a mixture: centres ``(K, d)`` (one per component), an isotropic
standard deviation, and a mode label per centre (a digit class, a ring position). Fresh
real batches are drawn every step from the counter-based stream (`dynamics.rng`).
Mode metrics (`dynamics.observables`) read the same object: the capture radius decides when a
particle counts as sitting on a mode.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import rng
from .knobs import ConfigError
from .registry import Registry

STREAM_SAMPLE = rng.STREAMS["sample"]


@dataclasses.dataclass(frozen=True)
class Target:
    """A mixture of isotropic Gaussians (std 0: an empirical point set).

    centers: `(K, d)`; labels: `(K,)` mode id of each centre in [0, n_modes);
    capture: radius within which a particle sits on a mode; quality: radius of a
    high-quality sample; scale: a typical length (mode separation) for relative metrics.
    """
    kind: str
    centers: torch.Tensor
    labels: torch.Tensor
    n_modes: int
    std: float
    capture: float
    quality: float
    scale: float
    image_shape: tuple[int, int] | None = None
    sampler: Callable | None = None       # (key, counter, m) -> (B, m, d) for non-mixture targets

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    def to(self, device, dtype) -> "Target":
        return dataclasses.replace(self, centers=self.centers.to(device=device, dtype=dtype),
                                   labels=self.labels.to(device))

    def sample(self, key: torch.Tensor, counter: int, m: int) -> torch.Tensor:
        """(B, m, d) fresh real samples for members with keys `(B,)` at an integer counter.

        One hash pass gives both the component index and the Gaussian noise."""
        if self.sampler is not None:
            return self.sampler(key, counter, m).to(self.centers)
        K, d = self.centers.shape
        B = key.shape[0]
        noisy = self.std > 0
        h = rng.bits(key, counter, STREAM_SAMPLE, m * (1 + 2 * d * noisy))
        idx = (h[:, :m] * K) >> 32                                             # (B, m) uniform in [0, K)
        y = self.centers[idx]                                                  # (B, m, d)
        if noisy:
            u = rng.to_uniform(h[:, m:], self.centers.dtype).view(B, m, 2 * d)
            y = y + self.std * rng.box_muller(u)
        return y

    def sample_fixed(self, n: int, seed: int = 0) -> torch.Tensor:
        """(n, d) a reproducible reference sample (plots, grid densities)."""
        key = rng.member_keys([seed], self.centers.device)
        return self.sample(key, rng.COUNTERS["fixed"].start + seed, n)[0]


@dataclasses.dataclass(frozen=True)
class TargetKind:
    """A TARGETS entry: the factory make(cfg) -> Target (call the entry), and what a caller
    knows before building one (`dynamics.budget` sizes a run by it). shape(cfg) -> (K, d): an
    upper bound on the centres and the data dimension; knobs: those that size the centres;
    dim_knobs: those that set d; point_set: an empirical point set (centres are data points);
    on_sphere: the data lie on S^(d−1) (paper A's critics then use no bias coordinate)."""
    make: Callable[[dict], Target]
    shape: Callable[[dict], tuple[int, int]]
    knobs: tuple[str, ...]
    dim_knobs: tuple[str, ...] = ("target.dim",)
    point_set: bool = False
    on_sphere: bool = False

    def __call__(self, cfg) -> Target:
        return self.make(cfg)


TARGETS: Registry[TargetKind] = Registry("target.kind")


def target_kind(name: str, shape, knobs: tuple[str, ...], dim_knobs: tuple[str, ...] = ("target.dim",),
                point_set: bool = False, on_sphere: bool = False):
    """Register a factory as TARGETS[name] with its declared shape."""
    def deco(make):
        TARGETS.add(name, TargetKind(make, shape, knobs, dim_knobs, point_set, on_sphere))
        return make
    return deco


_modes_shape = lambda cfg: (cfg["target.modes"], cfg["target.dim"])       # noqa: E731
_sphere_shape = lambda cfg: (1, cfg["target.sphere_dim"])                 # noqa: E731


def _radii(std: float, centers: torch.Tensor, R: float) -> tuple[float, float, float]:
    """capture, quality and separation of a Gaussian mixture.

    9σ capture (0.45 for the ring of 8 at σ = 0.05, whose neighbouring modes are 1.53 apart)
    and 3σ quality, capped so that captures of neighbouring modes never overlap and floored
    for σ -> 0.
    """
    if centers.shape[0] > 1:
        dist = torch.cdist(centers.double(), centers.double())
        sep = float(dist[dist > 0].min()) if (dist > 0).any() else max(R, 1e-3)
    else:
        sep = math.inf
    floor = 0.02 * max(R, 1e-3)
    capture = min(max(9 * std, floor), 0.45 * sep)
    quality = min(max(3 * std, floor / 2), capture)
    scale = sep if math.isfinite(sep) else max(R, 1e-3)
    return capture, quality, scale


def _embed(c2: torch.Tensor, dim: int, kind: str, need: int = 2) -> torch.Tensor:
    if dim < need:
        raise ConfigError(f"target.dim: {dim} is out of range for target.kind = {kind}; allowed integers >= {need}")
    out = torch.zeros(c2.shape[0], dim, dtype=torch.float64)
    out[:, : c2.shape[1]] = c2[:, :dim]
    return out


def _mixture(kind, centers, cfg, labels=None) -> Target:
    std, R = cfg["target.std"], cfg["target.radius"]
    capture, quality, scale = _radii(std, centers, R)
    labels = torch.arange(centers.shape[0]) if labels is None else labels
    return Target(kind, centers, labels, int(labels.max()) + 1, std, capture, quality, scale)


@target_kind("ring", _modes_shape, ("target.modes", "target.dim"))
def ring(cfg) -> Target:
    K, R = cfg["target.modes"], cfg["target.radius"]
    th = 2 * math.pi * torch.arange(K, dtype=torch.float64) / K
    return _mixture("ring", _embed(torch.stack([R * th.cos(), R * th.sin()], 1), cfg["target.dim"], "ring"), cfg)


@target_kind("grid", _modes_shape, ("target.modes", "target.dim"))
def grid(cfg) -> Target:
    side, R = round(math.sqrt(cfg["target.modes"])), cfg["target.radius"]
    g = torch.linspace(-R, R, side, dtype=torch.float64) if side > 1 else torch.zeros(1, dtype=torch.float64)
    c = torch.cartesian_prod(g, g)
    return _mixture("grid", _embed(c, cfg["target.dim"], "grid"), cfg)


@target_kind("point", lambda cfg: (1, cfg["target.dim"]), ("target.dim",))
def point(cfg) -> Target:
    c = torch.tensor([[cfg["target.radius"], 0.0]], dtype=torch.float64)
    return _mixture("point", _embed(c, cfg["target.dim"], "point", need=1), cfg)


@target_kind("two_modes", lambda cfg: (2, cfg["target.dim"]), ("target.dim",))
def two_modes(cfg) -> Target:
    R = cfg["target.radius"]
    c = torch.tensor([[-R, 0.0], [R, 0.0]], dtype=torch.float64)
    return _mixture("two_modes", _embed(c, cfg["target.dim"], "two_modes", need=1), cfg)


def _point_set(kind: str, pts: np.ndarray, cfg, labels=None, image_shape=None) -> Target:
    """Empirical target: each point a centre; capture radius from nearest-neighbour spacing."""
    keep = cfg["target.samples"] or len(pts)
    pts = pts[:keep]
    labels = None if labels is None else labels[:keep]
    c = torch.as_tensor(pts, dtype=torch.float64)
    n = c.shape[0]
    sub = c if n <= 4000 else c[torch.randperm(n, generator=torch.Generator().manual_seed(0))[:4000]]
    dist = torch.cdist(sub, sub)
    dist.fill_diagonal_(math.inf)
    nn = dist.min(1).values
    nn = nn[torch.isfinite(nn) & (nn > 0)]
    typical = float(nn.median()) if nn.numel() else 1.0
    # generated samples of a point set rarely land on a training point: a particle belongs to
    # the nearest point's mode within two typical neighbour spacings, and is sharp within one
    std = cfg["target.std"]
    capture = max(9 * std, 2.0 * typical)
    quality = max(3 * std, 1.0 * typical)
    labels = torch.arange(n) if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    return Target(kind, c, labels, int(labels.max()) + 1, std, capture, quality, typical, image_shape)


CSV_ALLOWED = "allowed numbers only, one point per row, comma- or semicolon-separated, an optional header row"
NPY_ALLOWED = "allowed a numeric .npy array of real integers or floats (numpy.save), one point per row"
MAX_FILE_MB = 64        # a point file becomes a (n, d) float64 tensor plus a capture-radius pass


def load_points(path: str, data: bytes | None = None) -> np.ndarray:
    """(n, d) float array from a .npy or CSV file (header row allowed).

    data: the file's bytes when it was uploaded rather than read here (path is then only its
    name). Anything wrong is a one-line ConfigError on target.file."""
    p = Path(path)
    if data is None:
        if not p.is_file():
            why = "is not a regular file" if p.exists() else "does not exist"
            raise ConfigError(f"target.file: {path!r} {why}; allowed a path to a .csv or .npy file")
        _check_size(p.stat().st_size, p.name)
        data = p.read_bytes()
    _check_size(len(data), p.name)
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - numpy raises several kinds for a bad header
            raise ConfigError(f"target.file: cannot read {p.name} ({type(e).__name__}); {NPY_ALLOWED}") from None
        if arr.dtype.kind not in "iuf":           # complex, dates, strings and records are no points
            raise ConfigError(f"target.file: {p.name} holds {arr.dtype.name or arr.dtype.str} values; {NPY_ALLOWED}")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"target.file: cannot read {p.name}, it is not UTF-8 text; {CSV_ALLOWED}") from None
        arr = parse_csv(text, p.name)
    return check_points(arr, p.name)


def parse_csv(text: str, name: str = "points") -> np.ndarray:
    """(n, d) floats from CSV text; ConfigError on target.file naming the first bad row."""
    rows = [(i, r) for i, r in enumerate(text.splitlines(), 1) if r.strip()]
    if rows and not all(_is_float(c) for c in _cells(rows[0][1])):
        rows = rows[1:]                   # a header: a first row that is not all numbers (nan, inf are numbers)
    out: list[list[float]] = []
    for i, row in rows:
        cells = _cells(row)
        try:
            out.append([float(c) for c in cells])
        except ValueError:
            bad = next(c for c in cells if not _is_float(c))
            raise ConfigError(f"target.file: cannot read {name}, row {i} holds {bad[:20]!r}; {CSV_ALLOWED}") from None
        if len(out[-1]) != len(out[0]):
            raise ConfigError(f"target.file: cannot read {name}, row {i} has {len(out[-1])} values where the first "
                              f"row has {len(out[0])}; {CSV_ALLOWED}, the same count in every row")
    return np.array(out, dtype=np.float64).reshape(len(out), len(out[0]) if out else 0)


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.replace(";", ",").split(",") if c.strip()]


def _check_size(n: int, name: str) -> None:
    if n > MAX_FILE_MB * 2**20:
        raise ConfigError(f"target.file: {name} is {n / 2**20:.0f} MB; allowed files up to {MAX_FILE_MB} MB")


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def check_points(arr, name: str = "points") -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ConfigError(f"target.file: {name} has shape {arr.shape}; allowed a 2-D table, one point per row")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ConfigError(f"target.file: {name} contains non-finite values (point {int(bad.argmax()) + 1} of "
                          f"{len(arr)}); allowed finite numbers only")
    return arr


def file_values_bound(cfg) -> int:
    """An upper bound on the numbers a target file holds, from its size alone: 8 bytes each in
    .npy, 2 in CSV ('1,')."""
    try:
        size = os.stat(cfg["target.file"]).st_size
    except (OSError, ValueError):
        return 0
    return size // (8 if str(cfg["target.file"]).lower().endswith(".npy") else 2)


def _file_shape(cfg) -> tuple[int, int]:
    n = max(1, file_values_bound(cfg) // 2)
    return min(n, cfg["target.samples"] or n), 2      # d is unknown before the file is read: count points


@target_kind("file", _file_shape, ("target.file",), dim_knobs=(), point_set=True)
def file(cfg) -> Target:
    return _point_set("file", load_points(cfg["target.file"]), cfg)


DIGITS = (1797, 64)             # scikit-learn's digits: images x pixels


@target_kind("digits", lambda cfg: (min(DIGITS[0], cfg["target.samples"] or DIGITS[0]), DIGITS[1]),
             ("target.samples",), dim_knobs=(), point_set=True)
def digits(cfg) -> Target:
    """scikit-learn's bundled 8x8 digits (1797 images, 64-d, pixel values scaled to [0, 1]).

    Modes are the ten digit classes: a class is covered when a particle sits within the
    capture radius of one of its images.
    """
    from sklearn.datasets import load_digits
    d = load_digits()
    return _point_set("digits", d.data / 16.0, cfg, labels=d.target, image_shape=(8, 8))


@target_kind("mnist", lambda cfg: (min(100, cfg["target.samples"] or 100), 784), ("target.samples",),
             dim_knobs=(), point_set=True)
def mnist(cfg) -> Target:
    """The first 100 MNIST training images (`dynamics.mnist`, shipped in assets/data/), 784-d,
    scaled to [0, 1] and normalised with mean 0.1307, std 0.3081, as in the authors' MNIST
    mode-collapse experiment: one mode per image (K = 100, or target.samples)."""
    from . import mnist as data
    return _point_set("mnist", data.normalised(), cfg, image_shape=data.SHAPE)


def member_generators(key: torch.Tensor, counter: int) -> list[torch.Generator]:
    """One torch.Generator per member seeded from (key, counter): for samplers that need torch's
    own distributions; still a pure function of the state."""
    h = rng.bits(key, counter, rng.STREAMS["generators"], 2)
    return [torch.Generator().manual_seed(int(a) << 32 | int(b)) for a, b in h.tolist()]


@target_kind("sphere_pair", _sphere_shape, ("target.sphere_dim",), dim_knobs=("target.sphere_dim",), on_sphere=True)
def sphere_pair(cfg) -> Target:
    """ν ∝ (P_{k,d}(x_d))_+ on S^(d−1) (Domingo-Enrich & Mroueh), drawn exactly by inverse CDF.

    Its partner μ ∝ (−P_{k,d})_+ is where `init.kind = pair` starts the particles: ν − μ is a
    pure degree-k spherical harmonic, which fixed-kernel critics can barely see."""
    from .papers.spheres import sample_sphere_pair
    d, k = cfg["target.sphere_dim"], cfg["target.sphere_k"]

    def sampler(key, counter, m):
        return torch.stack([sample_sphere_pair(m, d, k, +1, g, dtype=torch.float64)
                            for g in member_generators(key, counter)])
    e = torch.zeros(1, d, dtype=torch.float64)
    e[0, -1] = 1.0
    return Target("sphere_pair", e, torch.zeros(1, dtype=torch.int64), 1, 0.0, 0.5, 0.25, 1.0, sampler=sampler)


@target_kind("sphere_stein", _sphere_shape, ("target.sphere_dim",), dim_knobs=("target.sphere_dim",),
             on_sphere=True)
def sphere_stein(cfg) -> Target:
    """The Stein target ν ∝ exp(γ P_{k,d}(x_d)) on S^(d−1) (paper A's explicit-model pair, with
    μ = τ: `init.kind = sphere`), drawn exactly by inverse CDF of its zonal density."""
    from .papers.spheres import sample_stein
    d, k, gamma = cfg["target.sphere_dim"], cfg["target.sphere_k"], cfg["target.sphere_gamma"]

    def sampler(key, counter, m):
        return torch.stack([sample_stein(m, d, k, gamma, g, dtype=torch.float64)
                            for g in member_generators(key, counter)])
    e = torch.zeros(1, d, dtype=torch.float64)
    e[0, -1] = 1.0
    return Target("sphere_stein", e, torch.zeros(1, dtype=torch.int64), 1, 0.0, 0.5, 0.25, 1.0, sampler=sampler)


def points_target(pts, cfg) -> Target:
    """A target from in-memory points (drawn on the app's canvas, uploaded)."""
    return _point_set("file", check_points(pts), cfg)


ON_SPHERE = tuple(n for n in TARGETS.names() if TARGETS[n].on_sphere)   # as the entries declare


def build_target(cfg, device="cpu", dtype=torch.float32) -> Target:
    return TARGETS[cfg["target.kind"]](cfg).to(device, dtype)
