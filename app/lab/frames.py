"""What the worker sends to the page: a `Scene` per build and a `Frame` per render tick.

Both are plain numpy (float32 for anything per particle) so the event loop only swaps
arrays. Targets of dimension d > 2 are shown in the plane of their two principal axes
(computed once from the target's reference sample, so the axes stay fixed while the
particles move); d = 1 is drawn on the x axis.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from dynamics import kernels, observables
from dynamics.engine import Simulation, State
from dynamics.knobs import VALUED

from .meters import applicable

log = logging.getLogger(__name__)
SHOW_MAX = 10_000        # particles drawn per frame (the rest are statistically the same)
FIELD_GRID = 72          # discriminator field resolution (FIELD_GRID² evaluations)
ARROWS_MAX = 300
IMAGES = 16              # digits: particles shown as images
REF_POINTS = 600        # target sample drawn under the particles (redrawn every frame: keep it light)
SPECTRUM_N_MAX = 1500    # dense kernels: an N×N eigendecomposition per change is too slow beyond
SPECTRUM_N_MAX_PER_PARTICLE = 256   # kernels whose Θ takes one backward pass per particle (KernelKind)
CLUSTER_MAX = 50         # a point set with more points than this is a sample, not clusters: each point
                         # is a "mode", so mode counts mean nothing there; distances are shown instead
DISTANCE_N = 256         # particles / data points the live distances use (three 256² distance matrices)
SPECTRUM_TOP_N_MAX = 6000                   # beyond SPECTRUM_N_MAX, a cached Θ's top levels by block
                                            # Krylov (12 products with a (N, 48) block: 0.5 s at 6000 on 2 cores)


@dataclasses.dataclass(frozen=True)
class Scene:
    """Fixed per build: projection, axes extent, target drawing, labels."""
    build: int
    dim: int
    origin: np.ndarray            # (d,)
    basis: np.ndarray             # (d, 2) orthonormal columns
    extent: tuple[float, float, float, float]   # x0, x1, y0, y1 (square)
    ref_xy: np.ndarray            # (n, 2) target reference sample, projected
    centers_xy: np.ndarray        # (K, 2)
    capture: float
    n_modes: int
    particles: int
    image_shape: tuple[int, int] | None
    kernel_kind: str
    title: str
    meters: tuple[str, ...] = ()  # companion meters that apply (`app.meters`)
    distances: bool = False       # a point set, not clusters: show distances, not mode counts
    valued: bool = True           # the critic has a value D to paint (conditional transport has none)


@dataclasses.dataclass(frozen=True)
class Frame:
    scene: Scene
    t: int
    epoch: int                    # bumps on every reset or rebuild: time series restart
    xy: np.ndarray                # (n, 2) float32
    metrics: dict[str, float]
    hyper: dict[str, float]
    diverged_step: int            # −1 while the run is healthy
    field: np.ndarray | None = None        # (G, G) float32, D − mean, rows along y
    arrows: np.ndarray | None = None       # (n, 4) float32: x0, y0, x1, y1
    spectrum: tuple[np.ndarray, np.ndarray] | None = None   # levels (k,), multiplicity (k,)
    images: np.ndarray | None = None       # (k, h, w) float32 in [0, 1]
    meters: dict[str, float] | None = None  # companion meters due this frame, with their step 't'


def _projection(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = ref.shape[1]
    if d <= 2:
        return np.zeros(d), np.eye(d, 2)
    mean = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
    return mean, vt[:2].T


def project(x: np.ndarray, scene: Scene) -> np.ndarray:
    return ((x - scene.origin) @ scene.basis).astype(np.float32)


def make_scene(sim: Simulation, build: int) -> Scene:
    cfg, tg = sim.cfg, sim.target
    ref = tg.sample_fixed(REF_POINTS).double().cpu().numpy()
    centers = tg.centers.double().cpu().numpy()
    origin, basis = _projection(np.concatenate([ref, centers]))
    pr = lambda a: (a - origin) @ basis                                     # noqa: E731
    start = np.zeros((1, tg.dim))
    start[0, 0] = cfg["init.shift"]
    pts = np.concatenate([pr(ref), pr(centers), pr(start)])
    mid = (pts.max(0) + pts.min(0)) / 2
    half = max(float((pts.max(0) - pts.min(0)).max()) / 2, 3 * cfg["init.std"], 0.5) * 1.3
    if tg.dim == 1:
        mid[1] = 0.0
    extent = (mid[0] - half, mid[0] + half, mid[1] - half, mid[1] + half)
    distances = shows_distances(sim)
    count = f"{tg.n_modes} points" if distances else f"{tg.n_modes} modes"
    title = f"{cfg['target.kind']} target · d = {tg.dim} · {count} · N = {cfg['particles']}"
    return Scene(build, tg.dim, origin, basis, tuple(float(e) for e in extent), pr(ref).astype(np.float32),
                 pr(centers).astype(np.float32), float(tg.capture), tg.n_modes, cfg["particles"],
                 tg.image_shape, cfg["kernel.kind"], title, applicable(cfg), distances,
                 cfg["disc.kind"] in VALUED)


def shows_distances(sim: Simulation) -> bool:
    """Your own points, more of them than form clusters: every point is a mode of its own."""
    return sim.cfg["target.kind"] == "file" and sim.target.n_modes > CLUSTER_MAX


def field_points(scene: Scene, device, dtype) -> torch.Tensor:
    """(1, G², d) points of the display plane, row-major in y then x."""
    x0, x1, y0, y1 = scene.extent
    u = np.linspace(x0, x1, FIELD_GRID)
    v = np.linspace(y0, y1, FIELD_GRID)
    uu, vv = np.meshgrid(u, v)                                              # (G, G), rows along y
    plane = np.stack([uu.ravel(), vv.ravel()], 1)
    pts = scene.origin + plane @ scene.basis.T
    return torch.as_tensor(pts, dtype=dtype, device=device).unsqueeze(0)


def discriminator_field(sim: Simulation, state: State, grid: torch.Tensor) -> np.ndarray:
    D, _ = sim.disc.value_and_grad(state.disc, grid)
    D = D[0].detach().double().cpu().numpy()
    return (D - D.mean()).reshape(FIELD_GRID, FIELD_GRID).astype(np.float32)


def force_arrows(sim: Simulation, state: State, scene: Scene) -> np.ndarray:
    """Forces at up to ARROWS_MAX particles, scaled so the longest is 8 % of the view."""
    x = state.x[:, :ARROWS_MAX]
    F = sim.forces(state)[1][0, :ARROWS_MAX].detach().double().cpu().numpy()
    start = project(x[0].detach().double().cpu().numpy(), scene)
    dirs = F @ scene.basis
    size = np.linalg.norm(dirs, axis=1).max()
    scale = 0.08 * (scene.extent[1] - scene.extent[0]) / size if size > 0 and np.isfinite(size) else 0.0
    return np.concatenate([start, start + scale * dirs], 1).astype(np.float32)


def spectrum(sim: Simulation, state: State) -> tuple[np.ndarray, np.ndarray]:
    """Levels and multiplicities of member 0's Θ: every level up to SPECTRUM_N_MAX particles (by
    kind), above that the top SPECTRUM_TOP while Θ is cached and N ≤ SPECTRUM_TOP_N_MAX; empty
    arrays when too costly to compute live."""
    N = sim.cfg["particles"]
    costly = kernels.KERNELS[sim.cfg["kernel.kind"]].theta_per_particle
    n_max = SPECTRUM_N_MAX_PER_PARTICLE if costly else SPECTRUM_N_MAX
    if sim.kernel.matrix is None or N <= n_max:
        levels, mult = sim.kernel.spectrum(state.kernel, state.hyper)
        return levels[0].double().cpu().numpy(), mult[0].cpu().numpy()
    theta = state.kernel.get("theta")
    if theta is None or N > SPECTRUM_TOP_N_MAX:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    top = kernels.top_eigenvalues(lambda V: torch.bmm(theta[:1], V), 1, N, kernels.SPECTRUM_TOP, theta.dtype,
                                  theta.device)[0]
    return top.double().cpu().numpy(), np.ones(len(top), dtype=np.int64)


def frame_metrics(sim: Simulation, state: State, x_prev: torch.Tensor | None,
                  distances: bool = False) -> dict[str, float]:
    """The live observables (`observables.OBSERVABLES`, source cloud and state) of member 0, and
    the distances to the data where the target is a point set rather than clusters."""
    m = observables.cheap(state.x, sim.target, x_prev if x_prev is not None and x_prev.shape == state.x.shape
                          else None)
    m.pop("com_mode")
    if distances:
        m.update(data_distances(sim, state))
    m.update(observables.from_state(state))
    return {k: float(v[0]) for k, v in m.items()}


def data_distances(sim: Simulation, state: State) -> dict[str, torch.Tensor]:
    """MMD², sliced W1 and energy distance of DISTANCE_N particles to DISTANCE_N of the target's
    points (the same points and projections every frame, so the curves are smooth)."""
    gen = torch.Generator().manual_seed(0)
    pts = sim.target.centers
    idx = torch.randperm(len(pts), generator=gen)[:DISTANCE_N].to(pts.device)
    x = state.x[:, :DISTANCE_N].detach()
    y = pts[idx].to(x).unsqueeze(0).expand(x.shape[0], -1, -1)
    return observables.distances(x, y, gen)


def make_frame(sim: Simulation, state: State, scene: Scene, epoch: int, x_prev: torch.Tensor | None = None, *,
               field_grid: torch.Tensor | None = None, arrows: bool = False, with_spectrum: bool = False,
               meters: dict[str, float] | None = None) -> Frame:
    """Everything the views need from one state; the costly parts only when asked (the
    meters come measured, see `Worker._measure`)."""
    x = state.x[0, :SHOW_MAX].detach()
    images = None
    if scene.image_shape is not None:
        images = x[:IMAGES].clamp(0, 1).reshape(-1, *scene.image_shape).float().cpu().numpy()
    return Frame(
        scene=scene, t=state.t, epoch=epoch,
        xy=project(x.double().cpu().numpy(), scene) if scene.dim > 2 else _xy(x),
        metrics=frame_metrics(sim, state, x_prev, scene.distances),
        hyper={k: float(v[0]) for k, v in state.hyper.items()},
        diverged_step=int(state.diverged_step[0]),
        field=_optional(discriminator_field, sim, state, field_grid) if field_grid is not None else None,
        arrows=_optional(force_arrows, sim, state, scene) if arrows else None,
        spectrum=_optional(spectrum, sim, state) if with_spectrum else None,
        images=images, meters=meters)


def _optional(fn, *args):
    """A view-only extra that a critic or kernel cannot provide is left out, never fatal."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - e.g. a critic without a value function
        log.debug("%s unavailable", fn.__name__, exc_info=True)
        return None


def _xy(x: torch.Tensor) -> np.ndarray:
    """(n, d ≤ 2) -> (n, 2) float32 without a projection (d = 1 sits on the x axis)."""
    a = x.float().cpu().numpy()
    return a if a.shape[1] == 2 else np.concatenate([a, np.zeros_like(a)], 1)
