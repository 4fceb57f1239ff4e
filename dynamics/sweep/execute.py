"""Run a sweep: plan, skip finished chunks, compute the rest, write each as it finishes.

Executors yield (chunk, result) as chunks complete; the calling process is the only writer:
  * in-process (one worker; also the GPU default),
  * local worker processes (spawned, so CUDA and OpenMP start clean in each),
  * a dask.distributed cluster (`scheduler = "tcp://HOST:PORT"`), running the same
    `run_chunk` calls on the same chunks, hence the same numbers.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from ..knobs import KNOBS, ConfigError
from . import store
from .plan import Chunk, Plan, make_plan
from .spec import Spec
from .task import Wants, run_chunk, spectrum_size


@dataclasses.dataclass
class Report:
    out: Path
    store: Path
    netcdf: Path | None
    points: int                 # grid points (seeds included)
    chunks: int
    computed: list[int]         # chunk indices computed by this call
    seconds: float
    diverged: int               # diverged points among those computed now
    device: str
    workers: int | str
    complete: bool              # every chunk is on disk


def run_sweep(spec: Spec, out: str | Path, *, resume: bool = False, scheduler: str | None = None,
              workers: int | None = None, device: str | None = None, threads: int | None = None,
              progress: bool = True, netcdf: bool = True) -> Report:
    t0 = time.perf_counter()
    _check_options(scheduler, workers, threads)
    if device is not None:
        device = KNOBS["device"].coerce(device)
    dev = _device(device or spec.config["device"], remote=scheduler is not None)
    client = _connect(scheduler) if scheduler is not None else None     # before any file is made
    try:
        return _run(spec, Path(out), resume, client, workers, dev, threads, progress, netcdf, t0)
    finally:
        if client is not None:
            client.close()


def _run(spec, out, resume, client, workers, dev, threads, progress, netcdf, t0) -> Report:
    out = store.prepare_out(out)
    path = out / store.STORE
    if path.exists():
        if not resume:
            raise ConfigError(f"--out: {out} already holds sweep results; allowed --resume to continue them, "
                              "or a new folder")
        attrs = store.stored_attrs(path)
        if attrs.get("fingerprint") != spec.fingerprint():
            raise ConfigError(f"--resume: {path} was made by another spec ({attrs.get('name')}"
                              f"{', quick' if attrs.get('quick') else ''}); allowed the same spec and --quick "
                              "setting, or a new --out folder")
        plan = make_plan(spec, dev, json.loads(attrs["plan"])["chunk"])
        wants = _wants(spec, plan)
        store.check_template(path, plan, wants)
        redo = store.damaged_chunks(path, plan)
        for index, name in sorted(redo.items()):
            store.log_line(out, f"chunk {index} damaged in {name}: computing it again")
        if redo:
            print(f"effgan sweep: {len(redo)} damaged chunk(s) computed again: "
                  + ", ".join(f"chunk {i} ({n})" for i, n in sorted(redo.items())), file=sys.stderr)
        finished = store.done_chunks(path, plan, redo)
    else:
        plan = make_plan(spec, dev)
        wants = _wants(spec, plan)
        store.create(path, spec, plan, wants, dev)
        finished = set()
    (out / "spec.toml").write_text(spec.source)

    pending = [c for c in plan.chunks if c.index not in finished]
    n_workers, run = _executor(pending, client, workers, dev, threads, spec.config["steps"])
    store.log_line(out, f"start {time.strftime('%Y-%m-%d %H:%M:%S')}: {len(pending)} of {len(plan.chunks)} chunks "
                        f"to compute on {dev}, workers {n_workers}")
    computed, diverged, devices = [], 0, set()
    bar = _bar(sum(c.size for c in pending), spec.name, progress)
    try:
        for chunk, result in run(pending, wants):
            store.write_chunk(path, plan, chunk, result)
            n_div = int(result["final_diverged"].sum())
            diverged += n_div
            computed.append(chunk.index)
            devices.add(result["device"])
            store.log_line(out, f"chunk {chunk.index} done: {chunk.size} points in {float(result['seconds']):.2f} s"
                                f"{f', {n_div} diverged' if n_div else ''}")
            bar.update(chunk.size)
            if diverged:
                bar.set_postfix(diverged=diverged)
    finally:
        bar.close()
        if devices:
            store.note_devices(path, devices)
    complete = len(finished) + len(computed) == len(plan.chunks)
    nc = None
    if netcdf and complete:
        nc = out / store.NETCDF
        store.export_netcdf(path, nc)
    ran = ", ".join(sorted(devices)) if devices else dev            # a cluster's "auto" resolved
    return Report(out, path, nc, plan.points, len(plan.chunks), computed, time.perf_counter() - t0, diverged,
                  ran, n_workers, complete)


def _device(name: str, remote: bool) -> str:
    """The device chunks run on; on a cluster 'auto' is left to each worker."""
    if remote:
        return name
    from ..engine import resolve_device
    return str(resolve_device(name))


def _wants(spec: Spec, plan: Plan) -> Wants:
    eig = 0
    if spec.spectrum:
        cfgs = {json.dumps(c.cfg, sort_keys=True): c.cfg for c in plan.chunks}
        eig = max(spectrum_size({**cfg, "device": "cpu"}) for cfg in cfgs.values())
    return Wants(tuple(m for m in spec.metrics if m != "spectrum"), spec.series, spec.spectrum, eig)


def _check_options(scheduler, workers, threads) -> None:
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers: {workers} is not allowed; allowed an integer >= 1")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads: {threads} is not allowed; allowed an integer >= 1")
    if scheduler is not None and "://" not in scheduler:
        raise ConfigError(f"--scheduler: {scheduler!r} is not an address; allowed tcp://HOST:PORT of a running "
                          "dask scheduler")


def _executor(pending, client, workers, dev, threads, steps):
    """(description, run) for the chosen executor. On a CPU, parallelism comes from worker
    processes with `threads` torch threads each (default 1: a batch's tensors are small, and
    intra-op threads only fight each other on shared cores)."""
    if dev == "cpu":
        threads = threads or 1
    if client is not None:
        return f"dask {client.scheduler.address}", lambda p, w: _dask(p, w, client, threads)
    if workers is None:
        # a GPU is driven by one process; a sweep without steps is not worth starting processes
        one = dev.startswith("cuda") or steps == 0
        workers = 1 if one else max(1, min(os.cpu_count() or 1, len(pending)))
    if workers == 1:
        return 1, lambda p, w: _serial(p, w, threads)
    return workers, lambda p, w: _processes(p, w, workers, threads)


def _serial(pending: list[Chunk], wants: Wants, threads) -> Iterator:
    for c in pending:
        yield c, run_chunk(c, wants, threads)


ORPHAN_POLL = 1.0     # s between a worker's checks that the sweep that started it still runs


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: exit as soon as the sweep process is gone. A killed sweep (SIGKILL,
    or a scheduler's SIGTERM) cannot shut its pool down, and its workers would idle forever."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="orphan-guard").start()


def _processes(pending: list[Chunk], wants: Wants, workers: int, threads) -> Iterator:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),))
    finished = False
    try:
        futures = {ex.submit(run_chunk, c, wants, threads): c for c in pending}
        for f in as_completed(futures):
            yield futures[f], f.result()
        finished = True
    finally:
        if not finished:            # interrupted: running chunks are lost anyway, do not wait for them
            _stop_workers(ex)
        ex.shutdown(wait=finished, cancel_futures=True)


def _stop_workers(ex) -> None:
    """Terminate a pool's workers now (shutdown() lets running tasks finish: minutes per chunk)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for proc in procs:
        proc.terminate()
    for proc in procs:                      # gone before "interrupted" is printed
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def _connect(address: str):
    from distributed import Client
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ConfigError(f"--scheduler: cannot reach {address} ({type(e).__name__}); allowed tcp://HOST:PORT of a "
                          "running dask scheduler") from None


def _dask(pending: list[Chunk], wants: Wants, client, threads) -> Iterator:
    from distributed import as_completed
    futures = [client.submit(run_chunk, c, wants, threads, pure=False) for c in pending]
    by_key = {f.key: c for f, c in zip(futures, pending)}
    for f in as_completed(futures):
        yield by_key[f.key], f.result()
        f.release()


def _bar(total: int, name: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, unit="pt", desc=name, disable=not enabled or total == 0, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.05)
