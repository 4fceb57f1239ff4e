"""One session's simulation, stepped in a daemon thread off the event loop.

The thread alone touches the Simulation and its State; the session talks to it through a
small command queue (load, reset, set_hyper, step) and reads back only the *latest* frame
(a single-slot mailbox: frames the page had no time for are dropped, never queued).
It runs `speed` steps (fewer when they take longer than a frame interval), publishes a frame,
and waits so that at most `fps` frames a second are made: `speed` sets how fast simulated time
runs, independently of the frame rate, up to what the engine can do; at `TOP_SPEED` (the
slider's top) it steps for the whole frame interval and never waits: the engine's own rate.
The companion meters (`app.lab.meters`) that apply to the build are measured here too, each at
its own cadence.
A load with ``keep=True`` goes on from the running state (`carry`): the new build takes over
the particles, the critic's weights, its optimiser state, the step and the random key, and the
step of the change is kept in `marks` for the time series.
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import itertools
import logging
import threading
import time
import weakref
from typing import Callable

import torch

from dynamics import rng
from dynamics.engine import Simulation, State
from dynamics.knobs import KNOBS, one_line

from . import frames
from .meters import METERS, applicable
from .recorder import Recorder

log = logging.getLogger(__name__)
LIVE: "weakref.WeakSet[Worker]" = weakref.WeakSet()     # started and not yet stopped
THREAD_PREFIX = "effgan-worker"
FIELD_EVERY = 0.25        # s between refreshes of the discriminator field
SPECTRUM_EVERY = 0.3      # s between recomputations of a changed kernel spectrum
METER_SHARE = 0.1         # a companion meter may take at most this fraction of the thread's time
# A settled cloud: its particles moved on average less than SETTLED mode spacings over the last
# SETTLE_STEPS steps. Measured on ring8 (N = 64, rbf or two_number): covering clouds whose critic
# is balanced sit at 0.02-0.05 (jitter within the modes), moving or hopping ones at 0.2-2.5. There
# the forces average to zero, so a change of how they are shared (kernel, η_G) has nothing to act
# on: kernel.width 0.5 -> 3.7 or kernel.ratio 0 -> 0.95 left all 8 modes covered for 3,000 steps.
SETTLE_STEPS, SETTLED = 200, 0.06
SHARING = ("kernel.", "lr.gen")
TOP_SPEED = 200           # the speed slider's top: as many steps as a frame interval holds
_ids = itertools.count(1)
UNBOUNDED = 1 << 62       # steps asked for at top speed: the frame interval ends the batch


class Restart(Exception):
    """A change that cannot go on from the running state; the message says why, in a few words."""


def _shapes(tree) -> dict:
    return {k: _shapes(v) if isinstance(v, dict) else (tuple(v.shape), v.dtype) for k, v in tree.items()}


def carry(sim: Simulation, s: State | None, old_cfg: dict | None) -> State:
    """A state of the new build `sim` that goes on from `s` (a state of the build of `old_cfg`):
    its particles, critic weights, optimiser state, step and key; the kernel's state too unless
    a kernel knob changed, in which case the new kernel starts from the current particles. Raises
    `Restart` when the shapes disagree. (An engine helper would hold this; the engine is not the
    lab's to change, so it lives here, on `State.replace`.)"""
    if s is None or old_cfg is None:
        raise Restart("nothing runs yet")
    if not bool(s.alive.all()):
        raise Restart("the run had diverged")
    fresh = sim.init()
    if fresh.x.shape != s.x.shape:
        raise Restart("particles changed")
    if _shapes(fresh.disc) != _shapes(s.disc):
        raise Restart("the critic's shape changed")
    if _shapes(fresh.opt) != _shapes(s.opt):
        raise Restart("the optimiser's state changed")
    kernel_knobs = [k for k in sim.cfg if k.startswith("kernel.") and KNOBS[k].role != "hyper"]
    kstate = s.kernel
    if any(sim.cfg[k] != old_cfg[k] for k in kernel_knobs) or _shapes(fresh.kernel) != _shapes(s.kernel):
        x, kstate = sim.kernel.init(s.x, rng.generators([sim.cfg["seed"]]), fresh.hyper)
        if not torch.equal(x, s.x):
            raise Restart(f"the {sim.cfg['kernel.kind']} kernel makes its own particles")
        if "pairs" in s.kernel:                       # pseudo-supervision's fixed pairs go on
            kstate = {**kstate, "pairs": s.kernel["pairs"]}
    return fresh.replace(x=s.x, disc=s.disc, opt=s.opt, kernel=kstate, key=s.key, t=s.t,
                         loss_d=s.loss_d, loss_g=s.loss_g)


class Worker:
    def __init__(self, fps: float = 30.0, speed: int = 10):
        self.running = True
        self.attached = True               # False while no browser is connected: no stepping
        self.speed = speed
        self.arrows = False
        self.interval = 1.0 / fps
        self.steps_done = 0               # steps taken by this worker, all runs (benchmarks)
        self.hyper: dict[str, float] = {}  # live knobs as applied to the state
        self.cfg: dict | None = None       # config of the simulation running now
        self.error = ""                    # last unexpected failure, for the page
        self.device = ""                   # where the simulation runs
        self.record = Recorder()
        self.building = False              # a load is waiting or being built
        self.failed: tuple[int, str] | None = None
        self.restarted: tuple[int, str] | None = None   # a keeping load that had to restart, and why
        self.marks: tuple[int, tuple[int, ...]] = (0, ())   # (epoch, steps of the changes that kept the run)
        self.inert: tuple[int, float] | None = None   # (step, movement): a sharing change on a settled cloud
        self._anchors: collections.deque = collections.deque(maxlen=SETTLE_STEPS // 50 + 2)   # (t, x) every 50 steps
        self.loaded = 0
        self._tickets = 0
        self._cmds: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._latest: frames.Frame | None = None
        self._sim: Simulation | None = None
        self._state = None
        self._scene = None
        self._grid = None
        self._epoch = 0
        self._builds = itertools.count(1)  # scene ids: a change that keeps the run gets a new scene
        self._pending = 0
        self._diverged = -1
        self._spec_dirty = self._field_dirty = False
        self._spec_time = self._field_time = 0.0
        self._meters: tuple[str, ...] = ()      # companion meters of this build (`app.lab.meters`)
        self._meter_due: dict[str, float] = {}
        self._meter_dirty: set[str] = set()
        self.meter_cost: dict[str, float] = {}  # s per evaluation, last measured
        self.meter_time: collections.Counter = collections.Counter()   # s spent per meter, all runs
        # called in the thread with (sim, state) as each frame is made: views of more than member 0
        self.on_frame: Callable[[Simulation, State], None] | None = None
        self.id = next(_ids)
        self.thread = threading.Thread(target=self._loop, name=f"{THREAD_PREFIX}-{self.id}", daemon=True)

    # ------------------------------------------------------------ called from the session
    def start(self) -> "Worker":
        LIVE.add(self)
        self.thread.start()
        return self

    def load(self, sim: Simulation | Callable[[], Simulation], keep: bool = False) -> int:
        """Run a new simulation from its initial state (members from sim.cfg); a callable is
        called here, in the thread, so that building never blocks the server's event loop.
        keep: go on from the running state instead (`carry`); where it cannot, the run starts
        afresh and `restarted` is (ticket, why).

        Returns a ticket. When building or initialising fails the running simulation goes on
        and `failed` is (ticket, one-line reason); `loaded` is the ticket of the last success."""
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
            self.building = True
        self._post("load", (ticket, sim, keep))
        return ticket

    def reset(self, hyper: dict | None = None) -> None:
        """Restart the current simulation, keeping the live knobs `hyper`."""
        self._post("reset", hyper or {})

    def set_hyper(self, changes: dict) -> None:
        self._post("hyper", dict(changes))

    def step(self, n: int = 1) -> None:
        self._post("step", n)

    def take(self) -> frames.Frame | None:
        with self._lock:
            f, self._latest = self._latest, None
        return f

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        LIVE.discard(self)

    @property
    def scene(self) -> frames.Scene | None:
        return self._scene

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def released(self) -> bool:
        """True once the thread has dropped the simulation, its state and its frames (it does so
        as it ends), so that a closed session keeps no tensors alive."""
        return all(v is None for v in (self._sim, self._state, self._grid, self._latest, self._scene))

    def _post(self, *cmd) -> None:
        with self._lock:
            self._cmds.append(cmd)
        self._wake.set()

    # ------------------------------------------------------------ the thread
    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                n = 0
                try:
                    changed = self._apply_commands()
                    go = self.running and self.attached and self._healthy()
                    n = self._pending or ((self.speed if self.speed < TOP_SPEED else UNBOUNDED) if go else 0)
                    x_prev = self._advance(n) if n else None
                    if n or changed:
                        self._publish(x_prev)
                except Exception as e:  # noqa: BLE001 - the session must outlive any failure
                    log.exception("simulation worker failed")
                    self.error = one_line(e)
                    self.running, self._pending, n = False, 0, 0
                wait = self.interval - (time.perf_counter() - t0) if n else 0.05
                if wait > 0 and self._wake.wait(wait):
                    self._wake.clear()
        finally:
            self._sim = self._state = self._grid = self._latest = self._scene = None
            self._cmds.clear()
            self.record = Recorder()        # snapshots of a closed session are not kept
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _healthy(self) -> bool:
        return self._state is not None and self._diverged < 0

    def _apply_commands(self) -> bool:
        with self._lock:
            cmds, self._cmds = list(self._cmds), collections.deque()
        loads = [i for i, (name, _) in enumerate(cmds) if name == "load"]
        if loads:
            cmds = cmds[loads[-1]:]          # only the newest of several queued loads is built
        for name, arg in cmds:
            if name == "load":
                self._load(*arg)
            elif name == "reset" and self._sim is not None:
                self._start(self._sim.init([arg]) if arg else self._sim.init(), arg)
            elif name == "hyper" and self._state is not None:
                self._state = self._sim.set_hyper(self._state, arg)
                self._spec_dirty = True
                self._note_hyper()
                self.record.note_knobs(self._state.t, arg)
                self._check_inert(arg)
            elif name == "step":
                self._pending += arg
        return bool(cmds)

    def _load(self, ticket: int, sim, keep: bool = False) -> None:
        why = ""
        try:
            if not isinstance(sim, Simulation):
                sim = sim()
            state = None
            if keep:
                try:
                    state = carry(sim, self._state, self.cfg)
                except Restart as e:
                    why = str(e)
            kept = state is not None
            state = state if kept else sim.init()
        except Exception as e:  # noqa: BLE001 - a failed build keeps the running simulation
            log.warning("building a simulation failed; the running one goes on", exc_info=True)
            self.failed = (ticket, one_line(e))
            return
        finally:
            with self._lock:
                self.building = self._tickets != ticket
        old_cfg, self._sim, self._scene = self.cfg, sim, None
        self._meters, self._meter_due = applicable(sim.cfg), {}
        if kept:
            self._go_on(state, {k: v for k, v in sim.cfg.items() if v != old_cfg.get(k)})
        else:
            self._start(state)
        self.restarted = (ticket, why) if why else None
        self.loaded = ticket

    def _start(self, state, hyper: dict | None = None) -> None:
        sim = self._sim
        self._epoch += 1
        self.marks = (self._epoch, ())
        self._take_over(state)
        self.record.clear()
        self.record.start({**sim.cfg, **(hyper or {})})        # a reset keeps the live knobs
        self.record.add_snapshot(state.t, state.x[0].detach().float().cpu().numpy())

    def _go_on(self, state, changes: dict) -> None:
        """The new build goes on from the running state: same epoch (the series go on), a mark."""
        self._take_over(state)
        self.record.note_knobs(state.t, changes)
        self.marks = (self._epoch, self.marks[1] + (state.t,))
        self._check_inert(changes)

    def settled(self) -> float | None:
        """Mean movement of the particles over the last ≥ SETTLE_STEPS steps, in mode spacings
        (None before there are that many)."""
        s = self._state
        old = [(t, x) for t, x in self._anchors if s.t - t >= SETTLE_STEPS]
        if not old or old[-1][1].shape != s.x[0].shape:
            return None
        moved = (s.x[0] - old[-1][1]).norm(dim=-1).mean() / self._sim.target.scale
        return float(moved)

    def _check_inert(self, changes: dict) -> None:
        """Note a change of how the forces are shared that lands on a settled cloud (`SETTLED`)."""
        moved = self.settled() if any(k.startswith(SHARING) for k in changes) else None
        self.inert = (self._state.t, moved) if moved is not None and moved < SETTLED else None

    def _take_over(self, state) -> None:
        sim = self._sim
        if self._state is None or state.t < self._state.t:
            self._anchors.clear()                           # a new run: no movement known yet
        self._state, self._pending, self._diverged = state, 0, -1
        if self._scene is None:
            self._scene = frames.make_scene(sim, next(self._builds))
            self._grid = frames.field_points(self._scene, sim.device, sim.dtype) if self._scene.valued else None
        self._spec_dirty = self._field_dirty = True
        self._meter_dirty = set(self._meters)
        self.cfg, self.device = sim.cfg, str(sim.device)
        self._note_hyper()

    def _note_hyper(self) -> None:
        self.hyper = {k: float(v[0]) for k, v in self._state.hyper.items()}

    def _advance(self, n: int):
        sim, s, rec = self._sim, self._state, self.record
        x_prev = s.x
        end = time.perf_counter() + self.interval
        for i in range(n):
            if i and (self._cmds or time.perf_counter() > end):
                break       # a knob moved, or a frame is due: the engine is slower than speed × fps
            x_prev = s.x
            s = sim.step(s)
            self.steps_done += 1
            if self._pending:
                self._pending -= 1
            if s.t % 50 == 0:
                self._anchors.append((s.t, s.x[0].detach().clone()))
            if rec.wants_snapshot(s.t):
                rec.add_snapshot(s.t, s.x[0].detach().float().cpu().numpy())
        self._state = s
        self._field_dirty = True
        self._meter_dirty = set(self._meters)
        return x_prev

    def _measure(self, now: float, paused: bool) -> dict[str, float] | None:
        """The companion meters that are due, as {'t': step, metric: value}, or None.

        Each runs at most every `Meter.every` seconds, stretched to cost / METER_SHARE so a
        costly one never takes more than that share of the stepping time; paused, a changed
        state is measured at once. A meter that fails is dropped for this build."""
        out: dict[str, float] = {}
        for name in [m for m in self._meters if m in self._meter_dirty]:
            if not paused and now < self._meter_due.get(name, 0.0):
                continue
            t0 = time.perf_counter()
            try:
                out.update(METERS[name].compute(self._sim, self._state))
            except Exception:  # noqa: BLE001 - a meter is a view-only extra, never fatal
                log.warning("meter %s failed; dropped for this run", name, exc_info=True)
                self._meters = tuple(m for m in self._meters if m != name)
                continue
            cost = time.perf_counter() - t0
            self.meter_cost[name] = cost
            self.meter_time[name] += cost
            self._meter_due[name] = now + max(METERS[name].every, cost / METER_SHARE)
            self._meter_dirty.discard(name)
        return {"t": float(self._state.t), **out} if out else None

    def _publish(self, x_prev) -> None:
        if self._state is None:
            return
        now = time.perf_counter()
        paused = not self.running
        want_field = self._field_dirty and (paused or now - self._field_time >= FIELD_EVERY)
        want_spec = self._spec_dirty and (paused or now - self._spec_time >= SPECTRUM_EVERY)
        f = frames.make_frame(self._sim, self._state, self._scene, self._epoch, x_prev,
                              field_grid=self._grid if want_field else None, arrows=self.arrows,
                              with_spectrum=want_spec, meters=self._measure(now, paused))
        if want_field:
            self._field_dirty, self._field_time = False, now
        if want_spec:
            self._spec_dirty, self._spec_time = False, now
        if self.on_frame is not None:
            self.on_frame(self._sim, self._state)
        self._diverged = f.diverged_step
        self.record.diverged_step = f.diverged_step
        self.record.add_row(f.t, {**f.metrics, **{k: v for k, v in (f.meters or {}).items() if k != "t"}})
        with self._lock:
            self._latest = keep_slow_parts(self._latest, f)


SLOW_PARTS = ("field", "spectrum", "meters")     # made at their own cadence, not every frame


def keep_slow_parts(prev: frames.Frame | None, f: frames.Frame) -> frames.Frame:
    """f with the slow parts of `prev`, a frame the page never took, where f has none; of the
    same run only (epoch): after a restart an old run's meter row (its own, later step) would
    join the new run's series, and its field would show a critic that is gone."""
    if prev is None or prev.epoch != f.epoch:
        return f
    return dataclasses.replace(f, **{k: getattr(prev, k) for k in SLOW_PARTS
                                     if getattr(f, k) is None and getattr(prev, k) is not None})


@atexit.register
def _stop_all() -> None:
    """Stop every worker before the interpreter tears torch down under a running thread."""
    for w in list(LIVE):
        w.stop(timeout=2.0)
