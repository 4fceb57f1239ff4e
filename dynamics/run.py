"""Run a simulation for a number of steps, recording metrics and particle snapshots.

``simulate(cfg, members, on_record)`` is the one loop the CLI, the sweeps and the tests use.
Everything it records stays on the device until the end (no host sync per step on a GPU).
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import aot
from . import observables as obs
from .engine import Simulation, State, build, compile_or_eager

CONV_THRESHOLD = 0.05      # mean particle-to-mode distance, in units of the target's scale
STATE_NAMES = obs.names(when=("step",), source=("state",))     # read off the engine's State
PACE_STEPS, PACE_S = 10, 0.5     # the pace of a run is timed over this many steps or seconds
LONG_S = 10.0              # a run projected to take longer than this says so (and how long)


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h" if s < 172800 else f"{s / 86400:.1f} days"


class Progress:
    """Tells the user how long a run takes, on `stream` (stderr): `progress(done)` after init
    (done = 0) and after every step. A first step slower than long_s says so while it runs (a
    timer thread: a dense N = 20,000 kernel can take a minute a step); once a second step is
    done (the first may have compiled: it is timed apart), a run projected past long_s gets
    one line with the estimate and, on a terminal, a tqdm bar, off a terminal a line at every
    tenth."""

    def __init__(self, total: int, label: str, stream=None, long_s: float | None = None):
        self.total, self.label = total, label
        self.stream = stream if stream is not None else sys.stderr
        self.long_s = LONG_S if long_s is None else long_s
        self.done, self.t0, self.long, self.bar, self.timer = 0, 0.0, False, None, None
        self.first: tuple[int, float] | None = None          # (steps, time) at the first call after init
        self.told = False
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _say(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self.stream, flush=True)

    def _slow_start(self) -> None:
        if self.done == 0:
            self._say(f"the first of {self.total:,} steps is taking over {_duration(self.long_s)}; an estimate of "
                      "the run follows once it is done (Ctrl-C stops)")

    def _pace(self, done: int, now: float) -> float:
        """Seconds a step since the first step (which may have compiled)."""
        n1, t1 = self.first
        return (now - t1) / (done - n1) if done > n1 else (t1 - self.t0) / n1

    def __call__(self, done: int) -> None:
        if done == 0:
            self.t0 = time.perf_counter()
            if self.total > 0 and self.timer is None:
                self.timer = threading.Timer(self.long_s, self._slow_start)
                self.timer.daemon = True
                self.timer.start()
            return
        prev, self.done, now = self.done, done, time.perf_counter()
        if prev == 0:
            self.timer and self.timer.cancel()
            self.first = (done, now)
        if not self.told:
            n1, t1 = self.first                                # pace: over PACE steps or s after the first
            if done < self.total and (done - n1 < PACE_STEPS and now - t1 < PACE_S):
                return
            self.told = True
            per = self._pace(done, now)
            total_s = now - self.t0 + per * (self.total - done)
            self.long = total_s > self.long_s
            if self.long:
                self._say(f"about {_duration(total_s)} for {self.total:,} steps ({per:.3g} s a step; Ctrl-C stops)")
                if self.tty:
                    from tqdm import tqdm
                    self.bar = tqdm(total=self.total, initial=done, file=self.stream, unit="step",
                                    desc=self.label, dynamic_ncols=True)
            return
        if self.bar is not None:
            self.bar.update(done - prev)
        elif self.long and done * 10 // self.total > prev * 10 // self.total:
            self._say(f"{done:,} of {self.total:,} steps, about {_duration(self._pace(done, now) * (self.total - done))} left")

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.bar is not None:
            self.bar.close()


@dataclasses.dataclass
class History:
    """steps `(T,)`; series: name -> `(B, T)`; snapshots `(B, S, N, d)` at snap_steps `(S,)`;
    final: name -> `(B,)`; all numpy."""
    cfg: dict
    members: list[dict]
    steps: np.ndarray
    series: dict[str, np.ndarray]
    snap_steps: np.ndarray
    snapshots: np.ndarray
    final: dict[str, np.ndarray]
    state: State | None = None


def _measurer(sim: Simulation, hops: obs.HopCounter, x0: torch.Tensor, compiled) -> Callable:
    """measure(x, x_prev, has_prev, state values `(S, B)`) -> `(K, B)` the step observables of one record,
    in the order `names` (NaN unless has_prev for those that need the step before), the hop
    counter updated. The row stays on the device, and under `compile` it is one fused kernel:
    recording every 10 steps must not cost as much as the (fused) steps do. compile = auto: the
    step's rule, a pure form (hop state in and out) as an ahead-of-time package."""
    target = sim.target

    def measure(x, x_prev, has_prev, from_state, counter=hops):
        m = obs.cheap(x, target, x_prev)
        counter.update(m["com_distance"], m.pop("com_mode"))
        dist, _ = obs.nearest(x, target)
        m["mean_error"] = dist.mean(1) / target.scale
        m.update(zip(STATE_NAMES, from_state))
        m["hops"] = counter.hops.to(x.dtype)
        for k in PREV:                          # NaN at step 0: no step before (one graph for both)
            m[k] = torch.where(has_prev, m[k], float("nan"))
        return torch.stack([m[k] for k in names])

    names = [k for k in obs.cheap(x0, target, x0) if k != "com_mode"] + ["mean_error", *STATE_NAMES, "hops"]
    PREV = [k for k in names if obs.OBSERVABLES[k].prev]
    if compiled == "auto" and sim.target.sampler is None:      # as the step: Python samplers stay eager
        return _ahead_of_time(measure, sim, hops), names
    return (compile_or_eager(measure, "the recording") if compiled is True else measure), names


def _ahead_of_time(measure: Callable, sim: Simulation, hops: obs.HopCounter) -> Callable:
    """measure with the hop counter's state as inputs and outputs (a package holds no state)."""
    def pure(x, x_prev, has_prev, from_state, last, count, seen):
        counter = obs.HopCounter.of(hops.radius, last, count, seen)
        return measure(x, x_prev, has_prev, from_state, counter), counter.last, counter.hops, counter.seen
    run = aot.aot_or_eager(pure, sim.cfg, (sim.target.centers,), lambda *a: a, "recording")

    def call(x, x_prev, has_prev, from_state):
        row, hops.last, hops.hops, hops.seen = run(x, x_prev, has_prev, from_state, hops.last, hops.hops, hops.seen)
        return row
    return call


def record_steps(total: int, every: int) -> list[int]:
    ts = list(range(0, total + 1, every))
    if ts[-1] != total:
        ts.append(total)
    return ts


def simulate(cfg: dict[str, Any], members: Sequence[dict] | None = None, *, sim: Simulation | None = None,
             state: State | None = None, on_record: Callable[[int, dict], Any] | None = None,
             keep_state: bool = False, progress: Callable[[int], Any] | None = None) -> History:
    """Advance `cfg['steps']` steps; `members` are per-member overrides (seed, hyper knobs);
    progress(steps done), e.g. a `Progress`, after init and after every step."""
    sim = sim or build(cfg)
    cfg = sim.cfg
    s = state if state is not None else sim.init(members)
    members = list(members) if members is not None else [{}]
    total, every = cfg["steps"], cfg["record.every"]
    ts = record_steps(total, every)
    n_snap = min(cfg["record.snapshots"], len(ts))
    snap_idx = set(np.unique(np.linspace(0, len(ts) - 1, n_snap).round().astype(int)).tolist()) if n_snap else set()
    hops = obs.HopCounter(s.batch, sim.target.n_modes, max(0.3, sim.target.capture), sim.device)
    measure, names = _measurer(sim, hops, s.x, cfg["compile"])
    rows: list[torch.Tensor] = []               # one (K, B) row per record, read back once at the end
    flags = [torch.tensor(v, device=sim.device) for v in (False, True)]       # has_prev
    snaps, snap_steps = [], []

    def record(i: int, t: int, x_prev):
        # a distinct tensor at step 0: the compiled recorder guards on x_prev not being x
        rows.append(measure(s.x, torch.zeros_like(s.x) if x_prev is None else x_prev, flags[x_prev is not None],
                            torch.stack([getattr(s, k) for k in STATE_NAMES])).detach())   # one tensor: no aliases
        if i in snap_idx:
            snaps.append(s.x.detach().float())
            snap_steps.append(t)
        if on_record is not None:
            on_record(t, {k: rows[-1][j] for j, k in enumerate(names) if x_prev is not None or
                          not obs.OBSERVABLES[k].prev})

    step_now = 0
    x_prev = None
    if progress is not None:
        progress(0)
    with aot.allow_build():                     # a run of known length: compile = auto may build its package
        for i, t in enumerate(ts):
            while step_now < t:
                if step_now == t - 1:
                    x_prev = s.x
                s = sim.step(s)
                step_now += 1
                if progress is not None:
                    progress(step_now)
            record(i, t, x_prev if t > 0 else None)

    B = s.batch
    table = torch.stack(rows).cpu().numpy()      # (T, K, B): the one read-back of the run's metrics
    # the order of the first record (step 0 has no step before), then those that need one
    order = sorted(names, key=lambda k: obs.OBSERVABLES[k].prev)
    series = {k: np.ascontiguousarray(table[:, names.index(k)].T) for k in order
              if len(ts) > 1 or not obs.OBSERVABLES[k].prev}
    steps = np.asarray(ts)
    conv = obs.convergence_step(torch.as_tensor(series["mean_error"]), torch.as_tensor(steps), CONV_THRESHOLD)
    final = {k: v[:, -1] for k, v in series.items()}
    final.update(modes_total=np.full(B, sim.target.n_modes), modes_visited=hops.visited.cpu().numpy(),
                 diverged=(s.diverged_step >= 0).cpu().numpy(), diverged_step=s.diverged_step.cpu().numpy(),
                 convergence_step=conv.numpy())
    snapshots = torch.stack(snaps, 1).cpu().numpy() if snaps else np.zeros((B, 0) + tuple(s.x.shape[1:]), "f4")
    return History(cfg, members, steps, series, np.asarray(snap_steps), snapshots, final,
                   state=s if keep_state else None)
