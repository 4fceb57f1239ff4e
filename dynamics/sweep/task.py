"""The unit of work: one chunk run as one batch. A plain function of picklable arguments, so
the same call runs in-process, in a worker process or on a Dask worker."""
from __future__ import annotations

import dataclasses
import functools
import json
import time

import numpy as np

from .plan import Chunk

META = ("seconds", "cpu_seconds", "device")   # entries of a result that are not data


@dataclasses.dataclass(frozen=True)
class Wants:
    """What to keep of a run: final metrics, time series, and the kernel spectrum padded to
    `eig` levels (NaN where a group has fewer)."""
    metrics: tuple[str, ...]
    series: tuple[str, ...]
    spectrum: bool = False
    eig: int = 0


def run_chunk(chunk: Chunk, wants: Wants, threads: int | None = None) -> dict[str, np.ndarray]:
    """Simulate the chunk's members as one batch -> arrays of shape chunk.shape (+ (T,) / (eig,)).

    Also returns META: `seconds` and `cpu_seconds` (wall and CPU time of the batch; CPU time
    does not grow when other programs share the cores) and `device` (where it ran).
    """
    import torch

    from ..run import simulate
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        sim = simulation(chunk.cfg)
        h = simulate(chunk.cfg, list(chunk.members), sim=sim, keep_state=wants.spectrum)
    finally:
        torch.set_num_threads(before)
    shape = chunk.shape
    out = {f"final_{m}": np.asarray(h.final[m]).reshape(shape) for m in wants.metrics if m != "spectrum"}
    for m in wants.series:
        out[m] = np.asarray(h.series[m]).reshape(shape + (-1,))
    if wants.spectrum:
        levels, mult = (t.detach().cpu().numpy() for t in sim.kernel.spectrum(h.state.kernel, h.state.hyper))
        k = levels.shape[1]
        pad = wants.eig - k
        out["spectrum"] = np.pad(levels.astype(np.float64), ((0, 0), (0, pad)),
                                 constant_values=np.nan).reshape(shape + (-1,))
        out["spectrum_multiplicity"] = np.pad(mult.astype(np.int64), ((0, 0), (0, pad))).reshape(shape + (-1,))
    out["seconds"] = np.float64(time.perf_counter() - t0)
    out["cpu_seconds"] = np.float64(time.process_time() - c0)
    out["device"] = str(sim.device)
    return out


def simulation(cfg: dict):
    """The Simulation of a resolved config, built once per config and process (the lab's phase
    map uses it too)."""
    return _built(json.dumps(cfg, sort_keys=True))


@functools.lru_cache(maxsize=4)
def _built(cfg_json: str):
    """One Simulation per config and process: chunks of a group reuse it, so a fused step
    (compile = true) is compiled once per worker, not once per chunk. build() is pure."""
    from ..engine import build
    return build(json.loads(cfg_json))


def spectrum_size(cfg: dict) -> int:
    """Number of spectrum levels a group's kernel reports."""
    from ..kernels import spectrum_levels
    return spectrum_levels(cfg["kernel.kind"], cfg["particles"])
