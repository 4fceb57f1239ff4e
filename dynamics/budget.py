"""How much memory a simulation will take, known before anything is allocated.

``estimate_bytes(cfg, members)`` is the peak of build + init + a step + recording for a
resolved config run as a batch of B = members, summed over the parts below; ``check`` refuses
a config whose estimate passes a limit (by default a share of the memory available now) with
one line naming the knobs that drive the size. The counts follow the shapes the engine forms
(`engine`, `kernels`, `critics`, `objective`, `observables`, `run`); the critic's and the
kernel's parts are declared by their registry entries (`memory`): a part counts each tensor
of that shape alive at its peak, temporaries included, so the estimate errs on the high side.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

from .knobs import ConfigError, first_line

SHARE = 0.75                    # of the memory available now: the rest stays for the system
SUBSAMPLE = 4000                # `targets._point_set` measures spacings on at most this many points


class Sizes(NamedTuple):
    """What a registry entry's `memory(cfg, s)` sizes itself by: B members, N particles, M real
    samples, d data dimension, b bytes per number, n points the critic's objective touches (real,
    fake and wgan_gp interpolates), copies of the critic's parameters alive in an update, gpu,
    and the knobs that drive the point count (to name in a message)."""
    B: int
    N: int
    M: int
    d: int
    b: int
    n: int
    copies: int
    gpu: bool
    point_knobs: tuple[str, ...]


def _critic(cfg, s: Sizes) -> tuple[int, tuple[str, ...]]:
    from .critics import CRITICS
    memory = CRITICS[cfg["disc.kind"]].memory
    if memory is None:                                          # a critic that declares none: a small one
        return s.B * s.b * s.copies * (s.d + 1) * 16, s.point_knobs
    return memory(cfg, s)


def _kernel(cfg, s: Sizes) -> tuple[int, tuple[str, ...]]:
    from .kernels import KERNELS
    return KERNELS[cfg["kernel.kind"]].memory(cfg, s)


def parts(cfg: dict[str, Any], members: int = 1) -> dict[str, tuple[int, tuple[str, ...]]]:
    """name -> (bytes, the knobs that drive them) for a resolved config and B = members."""
    from .targets import TARGETS
    target = TARGETS[cfg["target.kind"]]
    B, N = max(1, members), cfg["particles"]
    (K, d), M = target.shape(cfg), cfg["real"] or N
    b = 8 if cfg["dtype"] == "float64" else 4
    gpu = cfg["device"] == "cuda" or (cfg["device"] == "auto" and _cuda())
    pts = ("particles",) + target.dim_knobs
    T = cfg["steps"] // cfg["record.every"] + 2
    S = min(cfg["record.snapshots"], T)
    n_pts = target.point_set
    real_knob = ("real",) if cfg["real"] else ("particles",)
    target_knobs = target.knobs
    copies = 6 if cfg["disc.optimizer"] == "adam" else 3        # params, grads, new params (+ adam's m, v)
    sizes = Sizes(B, N, M, d, b, M + 2 * N, copies, gpu, pts)
    return {
        # x, the new x, forces, the critic's gradient at x, interpolates, x of the previous record
        "particles": (6 * B * N * d * b, pts),
        # counter-based bits (int64, 1 + 2d per sample) and their shifted copies, Box-Muller's
        # uniforms and temporaries, the samples and their centres
        "real samples": (B * M * (2 * (1 + 2 * d) * 8 + 8 + 12 * d * b), real_knob + pts[1:]),
        "critic": _critic(cfg, sizes),
        "generator kernel": _kernel(cfg, sizes),
        # float64 centres, cdist's two augmented copies of them and the (K, K) separations
        # (a point set: of at most SUBSAMPLE points); the centres in dtype
        "target": (K * d * (3 * 8 + b) + 3 * 8 * min(K, SUBSAMPLE if n_pts else K) ** 2, target_knobs),
        # distances from every particle to every centre (cdist, then min), per record; cdist
        # copies the centres per member and augments both operands
        "metrics": (B * b * (3 * N * K // 2 + 3 * K * d), ("particles",) + target_knobs[:1]),
        # snapshots (float32) and about 24 series per record, on the device, then stacked and copied
        "records": (3 * B * (S * N * d * 4 + T * 24 * b), ("record.snapshots", "particles", "steps")),
    }


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def estimate_bytes(cfg: dict[str, Any], members: int = 1) -> int:
    """Peak bytes of build + init + step (+ recording) of a resolved config with B = members."""
    return sum(v for v, _ in parts(cfg, members).values())


def available_bytes(cfg: dict[str, Any] | None = None) -> tuple[int | None, str]:
    """(bytes, where) the memory available now: free GPU memory for a CUDA config, else the
    host's (MemAvailable from /proc/meminfo, or free pages from sysconf)."""
    if cfg is not None and (cfg["device"] == "cuda" or (cfg["device"] == "auto" and _cuda())):
        import torch
        return int(torch.cuda.mem_get_info()[0]), "free GPU memory"
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(1 << 16).splitlines():
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available memory"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free memory"
    except (OSError, ValueError, AttributeError):
        return None, "unknown memory"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check(cfg: dict[str, Any], members: int = 1, limit_bytes: int | None = None) -> None:
    """ConfigError (one line naming the knobs, the estimate and the limit) when the estimate of
    `cfg` with B = members passes limit_bytes (default: SHARE of the memory available now)."""
    where = "given limit"
    if limit_bytes is None:
        avail, what = available_bytes(cfg)
        if avail is None:
            return
        limit_bytes, where = int(avail * SHARE), f"{SHARE:.0%} of the {what}"
    p = parts(cfg, members)
    total = sum(v for v, _ in p.values())
    if total <= limit_bytes:
        return
    name, (size, knobs) = max(p.items(), key=lambda kv: kv[1][0])
    named = ", ".join(f"{k} = {cfg[k]}" for k in dict.fromkeys(knobs) if k in cfg)
    batch = f" for {members} members" if members > 1 else ""
    raise ConfigError(f"{named}: the run needs about {fmt_bytes(total)}{batch} ({name} {fmt_bytes(size)}), more "
                      f"than the limit of {fmt_bytes(limit_bytes)} ({where}); allowed smaller values of these knobs")


def is_out_of_memory(err: BaseException) -> bool:
    """True for what torch and Python raise when an allocation fails."""
    import torch
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("not enough memory" in text or "out of memory" in text
                                              or "DefaultCPUAllocator" in text)


def out_of_memory_error(cfg: dict[str, Any], members: int, err: BaseException) -> ConfigError:
    """The one-line error for an allocation that failed although the estimate passed."""
    p = parts(cfg, members)
    name, (size, knobs) = max(p.items(), key=lambda kv: kv[1][0])
    named = ", ".join(f"{k} = {cfg[k]}" for k in dict.fromkeys(knobs) if k in cfg)
    first = first_line(err, 120) or type(err).__name__
    return ConfigError(f"{named}: out of memory while running (estimate {fmt_bytes(estimate_bytes(cfg, members))}, "
                       f"mostly {name}; {first}); allowed smaller values of these knobs")

