"""Side by side: 2 to 4 simulations that differ in one knob, same seed, one transport.

A request is `KEY:V1,V2[,V3,V4]` (the URL's `compare=`), parsed and checked against the knob
table (`dynamics.knobs.KNOBS`, the lab's bounds of `knobui.coerce`). A `Group` builds it:
  * a live knob (role 'hyper'): ONE Simulation whose batch holds the members along the engine's
    leading axis (`sim.init(members=[{KEY: V1}, {KEY: V2}, ...])`);
  * a structural knob: one Simulation per member, stepped in lockstep.
Either way the worker runs one `Simulation` (`Group.sim`): its state is member 0's (or the
whole batch), so the worker's step loop, transport, frames and recorder work unchanged and
every member takes the same steps. `Group.snap`, called in the worker's thread as each frame
is made, copies what the panels show (particles, modes covered); the page reads `latest()`.
No Panel here.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable

import numpy as np

from dynamics import budget, observables
from dynamics.engine import Simulation, State, build
from dynamics.knobs import KNOBS, ConfigError, Knob, inapplicable, resolve, show

from . import frames, knobui

KEY = "compare"                # the URL parameter
VALUES = (2, 4)                # members of a compare
TEXT_MAX = 300                 # characters of a request (4 values of any knob fit in far fewer)
# knobs a compare cannot vary: the seed is what the members share; where they run, the fused
# step and a free-form text (layer widths hold commas) change nothing to see or cannot be listed
FIXED = {"seed", "device", "compile"}
COMPARABLE = [k.name for k in knobui.SHOWN
              if k.name not in FIXED and (k.kind is not str or k.allowed() is not None)]
EXAMPLE = "e.g. compare=disc.activation:relu,sigmoid"


@dataclasses.dataclass(frozen=True)
class Request:
    key: str
    values: tuple

    @property
    def live(self) -> bool:
        """Members of one batch (a live knob) rather than one simulation each."""
        return KNOBS[self.key].role == "hyper"


fmt = knobui.fmt               # a value as the URL carries it


def text(req: Request) -> str:
    """The request as the URL carries it."""
    return f"{req.key}:{','.join(fmt(v) for v in req.values)}"


def _bad(why: str) -> ConfigError:
    return ConfigError(f"{KEY}: {why}")


def parse(raw: Any) -> Request:
    """'KEY:V1,V2' -> Request; one-line ConfigError naming `compare` and what is allowed."""
    s = str(raw)
    if len(s) > TEXT_MAX:
        raise _bad(f"{len(s)} characters is too long; allowed at most {TEXT_MAX} ({EXAMPLE})")
    key, sep, rest = s.partition(":")
    key = key.strip()
    if not sep:
        raise _bad(f"{show(s)!r} is not KEY:VALUE,VALUE; allowed 2 to 4 values of one knob ({EXAMPLE})")
    if key not in COMPARABLE:
        raise _bad(f"{show(key)!r} cannot be compared; allowed {', '.join(COMPARABLE)}")
    parts = [p.strip() for p in rest.split(",")]
    if not VALUES[0] <= len(parts) <= VALUES[1]:
        raise _bad(f"{len(parts)} value{'s' * (len(parts) != 1)} of {key}; allowed {VALUES[0]} to {VALUES[1]} "
                   f"values ({EXAMPLE})")
    values = tuple(_value(KNOBS[key], p) for p in parts)
    if len(set(values)) != len(values):
        raise _bad(f"{key} values {', '.join(fmt(v) for v in values)} repeat; allowed distinct values")
    return Request(key, values)


def _value(k: Knob, v: str) -> Any:
    if k.name == "target.kind" and v == "file":
        raise _bad("target.kind = file cannot be compared (your own points are one target); allowed "
                   + ", ".join(c for c in k.allowed() if c != "file"))
    try:
        return knobui.coerce(k, v)
    except ConfigError as e:
        raise _bad(str(e)) from None


def propose(key: str, value: Any) -> tuple:
    """Values around the current one: a choice knob's other choices (the current first), both
    sides of a switch, a decade either side on a log knob, 10 % and 90 % of a short range, half
    and twice the value otherwise; each within the lab's bounds."""
    k = KNOBS[key]
    ch = k.allowed()
    if ch is not None:
        others = [c for c in ch if c != value and not (key == "target.kind" and c == "file")]
        return (value, *others[:VALUES[1] - 1])
    if k.kind is bool:
        return value, not value
    lo, hi = knobui.bounds(k) or (None, None)
    if k.log and value > 0:
        raw = [value / 10, value, value * 10]
    elif lo is not None and hi is not None and hi - lo <= knobui.SLIDER_SPAN:
        raw = [value] + [lo + f * (hi - lo) for f in (0.1, 0.9) if abs(lo + f * (hi - lo) - value) > 0.05 * (hi - lo)]
    else:
        raw = [value / 2, value, value * 2] if value else [value, 1]
    clip = [min(max(v, -np.inf if lo is None else lo), np.inf if hi is None else hi) for v in raw]
    vals = sorted({int(round(v)) if k.kind is int else knobui.nice(v) for v in clip})
    return tuple(vals) if len(vals) >= VALUES[0] else (value, hi if value != hi else lo)


def member_configs(req: Request, cfg: dict) -> list[dict]:
    """Each member's config, checked: the knob matters here and each value makes a valid run."""
    broken = inapplicable(req.key, cfg)
    if broken is not None:
        other, allowed = broken
        raise _bad(f"{req.key} has no effect with {other} = {cfg[other]}; allowed with {other} = "
                   f"{' or '.join(allowed)}")
    out = []
    for v in req.values:
        try:
            out.append(resolve(cfg, {req.key: v}))
        except ConfigError as e:
            raise _bad(f"{req.key} = {fmt(v)}: {e}") from None
    return out


def check_memory(req: Request, cfgs: list[dict], limit_bytes: int) -> None:
    """All members together within the session's memory cap (`dynamics.budget`)."""
    need = (budget.estimate_bytes(cfgs[0], len(cfgs)) if req.live
            else sum(budget.estimate_bytes(c) for c in cfgs))
    if need > limit_bytes:
        raise _bad(f"{len(cfgs)} runs of {req.key} need about {budget.fmt_bytes(need)}, more than the lab's "
                   f"{budget.fmt_bytes(limit_bytes)} per session; allowed fewer values or a smaller run")


@dataclasses.dataclass(frozen=True)
class Shot:
    """One member as its panel shows it at one frame."""
    label: str                    # 'disc.activation = sigmoid'
    xy: np.ndarray                # (n, 2) float32
    covered: int                  # modes with a particle in their capture radius (-1: no mode count)
    modes: int
    diverged_step: int            # -1 while healthy


@dataclasses.dataclass(frozen=True)
class View:
    t: int
    version: int                  # bumps per snapshot
    scenes: tuple                 # one frames.Scene per member (the same one for a batch)
    shots: tuple


class Group:
    """A checked request around a config; `build()` (in the worker's thread) makes `sim`."""

    def __init__(self, req: Request, cfg: dict, limit_bytes: int,
                 make_target: Callable[[dict], Any] | None = None):
        self.req, self.cfg = req, cfg
        self.cfgs = member_configs(req, cfg)
        check_memory(req, self.cfgs, limit_bytes)
        self.make_target = make_target or (lambda c: None)
        self.sim: Simulation | None = None
        self.sims: list[Simulation] = []
        self._others: list[State] = []          # structural: members 1.. (member 0 is the worker's state)
        self._scenes: tuple = ()
        self._view: View | None = None
        self._version = 0
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return [f"{self.req.key} = {fmt(v)}" for v in self.req.values]

    @property
    def how(self) -> str:
        if self.req.live:
            return (f"{self.req.key} is a live knob: the {len(self.req.values)} runs are members of one batch "
                    "along the engine's leading axis")
        return (f"{self.req.key} is structural: one simulation per value, stepped in lockstep in the "
                "session's worker thread")

    # ------------------------------------------------------------ in the worker's thread
    def build(self) -> Simulation:
        """The one Simulation the worker runs for the whole group."""
        key, values = self.req.key, self.req.values
        if self.req.live:
            base = build(self.cfg, target=self.make_target(self.cfg))
            self.sims = [base]

            def init(members=None):
                live = dict(members[0]) if members else {}
                return base.init([{**live, key: v} for v in values])

            def set_hyper(s, changes):      # the compared knob stays per member
                return base.set_hyper(s, {k: v for k, v in changes.items() if k != key})

            self.sim = dataclasses.replace(base, init=init, set_hyper=set_hyper)
            return self.sim
        self.sims = sims = [build(c, target=self.make_target(c)) for c in self.cfgs]

        def init_all(members=None):
            states = [s.init(members) if members else s.init() for s in sims]
            self._others = states[1:]
            return states[0]

        def step_all(s0):
            self._others = [sim.step(s) for sim, s in zip(sims[1:], self._others)]
            return sims[0].step(s0)

        def set_all(s0, changes):
            self._others = [sim.set_hyper(s, changes) for sim, s in zip(sims[1:], self._others)]
            return sims[0].set_hyper(s0, changes)

        self.sim = dataclasses.replace(sims[0], init=init_all, step=step_all, set_hyper=set_all)
        return self.sim

    def snap(self, sim: Simulation, state: State) -> None:
        """Copy what the panels show (the worker calls it with each frame it makes)."""
        if sim is not self.sim:
            return                                   # another build runs (a newer group, or none)
        if not self._scenes:
            self._scenes = tuple(frames.make_scene(s, 0) for s in self.sims)
        if self.req.live:
            states = [(self.sims[0], self._scenes[0], state, i) for i in range(state.batch)]
        else:
            states = [(s, sc, st, 0) for s, sc, st in zip(self.sims, self._scenes, [state, *self._others])]
        shots = []
        for label, (s, sc, st, i) in zip(self.labels, states):
            x = st.x[i:i + 1, :frames.SHOW_MAX].detach()
            counted = not sc.distances
            covered = int(observables.coverage(x, s.target)["modes_covered"][0]) if counted else -1
            xy = frames.project(x[0].double().cpu().numpy(), sc)      # d <= 2: the identity (d = 1 on the x axis)
            shots.append(Shot(label, xy, covered, sc.n_modes, int(st.diverged_step[i])))
        with self._lock:
            self._version += 1
            self._view = View(state.t, self._version, self._scenes, tuple(shots))

    def latest(self) -> View | None:
        with self._lock:
            return self._view


def shared_extent(scenes) -> tuple[float, float, float, float]:
    """One square extent holding every member's (the panels share their axes)."""
    e = np.asarray([sc.extent for sc in scenes], float)
    x0, x1, y0, y1 = e[:, 0].min(), e[:, 1].max(), e[:, 2].min(), e[:, 3].max()
    half = max(x1 - x0, y1 - y0) / 2
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    return mx - half, mx + half, my - half, my + half
