"""`Lab`: the one Parameterized object behind a session of the live lab.

It holds every knob (generated from `dynamics.knobs`), the preset, the transport and the
teach mode, and owns the session's `Worker`. It routes each knob change: live knobs (role
'hyper') go to `Simulation.set_hyper` without a reset; the structural ones of `KEEPS` (the
critic's activation, the loss, the penalty kind, the kernel) rebuild the simulation and go on
from the running state (`worker.carry`: same particles, critic weights, step); the others
rebuild and restart. `message` says which ("applied live: ...", "kept the run: ..." or
"restarts: ..."), or what was wrong; a rejected change is reverted and the run goes on untouched.
No Panel here: the page (`app.lab.page`) builds widgets and views around it, and tests drive
it headless.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Mapping

import numpy as np
import param

from dynamics import presets
from dynamics.engine import build
from dynamics.knobs import KNOBS, ConfigError, Knob, hyper_keys, resolve, show
from dynamics.targets import check_points, load_points, points_target

from . import compare, knobui, lessons, linkdata
from .frames import Frame
from .worker import SETTLE_STEPS, TOP_SPEED, Worker

KEY = {knobui.attr(k.name): k.name for k in knobui.SHOWN}      # param name -> knob name
ATTR = {v: k for k, v in KEY.items()}
MAX_POINTS = 20_000          # drawn or uploaded target points
SESSION_BYTES = 256 << 20    # estimated peak memory of one session's simulation (`dynamics.budget`)
log = logging.getLogger(__name__)
TEACH = Knob("teach", bool, True, "teach mode")      # parses the URL's teach=... like any knob
# structural knobs whose change goes on from the running state (the shapes stay: `worker.carry`)
KEEPS = {"disc.activation", "loss", "reg.kind", "disc.steps", "update", "real", "compile",
         "kernel.kind", "kernel.latent_dim", "kernel.depth", "kernel.bias", "kernel.net_width"}
# why the other structural knobs restart the run (a knob not named here: "KEY changed")
RESTARTS = {"particles": "particles changed", "target.dim": "the dimension changed", "seed": "the seed changed",
            "disc.kind": "the critic changed", "disc.width": "the critic's shape changed",
            "disc.depth": "the critic's shape changed", "dtype": "the precision changed"}

Knobs = param.parameterized_class("Knobs", knobui.parameters())


class Lab(Knobs):
    preset = param.Selector(objects=presets.names(), default=presets.DEFAULT, doc="named starting point")
    running = param.Boolean(default=True, doc="play / pause")
    speed = param.Integer(default=10, bounds=(1, TOP_SPEED), label="speed (steps per frame)",
                          doc="particle updates between two frames: how fast simulated time runs")
    t = param.Integer(default=0, doc="steps taken in this run")
    teach = param.Boolean(default=True, label="teach mode", doc="hide the advanced knobs")
    arrows = param.Boolean(default=False, label="show generator forces", doc="arrows F_j on the particles")
    message = param.String(default="", doc="what the last change did, or what was wrong with it")
    message_kind = param.Selector(objects=["info", "success", "warning", "danger"], default="info")
    diverged = param.String(default="", doc="non-empty while the run has diverged")
    building = param.Boolean(default=False, doc="a simulation is being built (off the event loop)")
    still = param.Boolean(default=False, doc="the last change cannot act visibly on the present (settled) cloud")
    lesson = param.String(default="", doc="the guided lesson being followed ('' none: `app.lab.lessons`)")
    lesson_step = param.Integer(default=0, bounds=(0, None), doc="its step, from 1 (0: no lesson)")
    compare = param.String(default="", doc="side by side: 'KEY:V1,V2' (`app.lab.compare`); '' the single view")

    def __init__(self, fps: float = 30.0, **params):
        super().__init__(**{k: v for k, v in params.items() if k not in KEY})
        self.param.update(**{**self._preset_values(self.preset), **{k: v for k, v in params.items() if k in KEY}})
        self.worker = Worker(fps=fps, speed=self.speed)
        self.custom: tuple[np.ndarray, str] | None = None     # drawn / uploaded target points
        self._quiet = False
        self._started = False
        self._shown_error = ""
        self._ticket = 0                  # the newest load asked of the worker
        self._asked: dict[int, dict] = {}  # ticket -> the knobs and target of a load not yet done
        self._good: dict[str, Any] | None = None
        self._fresh = 0                   # the newest load that restarts the run
        self.group: compare.Group | None = None     # the side-by-side runs of `compare`
        self.worker.on_frame = self._snap
        self.param.watch(self._on_knobs, list(KEY))

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "Lab":
        """Build the first simulation (falling back to the preset on a bad combination) and run."""
        if self._started:
            return self
        for _ in range(len(KEY)):
            try:
                self._load(self._builder())
                break
            except ConfigError as e:
                self._say(str(e), "danger")
                if self.compare:
                    self.compare = ""                  # a compare that cannot run: the single view
                elif not self._revert_key(str(e)):
                    self.custom = None
                    self._set_quietly(**self._preset_values(self.preset))
        self.worker.running = self.running
        self.worker.arrows = self.arrows
        self.worker.start()
        self._started = True
        return self

    def close(self) -> None:
        """Stop the worker and drop the simulation (called when the session is destroyed, on the
        event loop: so it does not wait long for the thread, which finishes on its own)."""
        self.worker.stop(timeout=0.2)
        self._started = False

    # ------------------------------------------------------------ configuration
    def knob_values(self) -> dict[str, Any]:
        return {name: getattr(self, a) for a, name in KEY.items()}

    def hyper(self) -> dict[str, float]:
        return {k: getattr(self, ATTR[k]) for k in hyper_keys() if k in ATTR}

    def config(self) -> dict[str, Any]:
        """The full resolved config of the current knobs (raises ConfigError)."""
        cfg = self.knob_values()
        if cfg["target.kind"] == "file":
            if self.custom is None:
                raise ConfigError("target.kind: file needs your own points; draw them or upload a CSV first")
            cfg["target.file"] = self.custom[1]
        return resolve(cfg)

    def _builder(self, cfg: dict[str, Any] | None = None, custom: tuple[np.ndarray, str] | None = None,
                 request: "compare.Request | None" = None):
        """Check the config now (bounds, combinations, the session's memory cap) and return
        what builds it: the worker calls that in its own thread, off the event loop. While a
        compare runs (or for `request`), it builds the compare's group around the config."""
        cfg = self.config() if cfg is None else cfg
        check_cost(cfg)
        pts = (custom or self.custom or (None,))[0]
        make = lambda c: points_target(pts, c) if c["target.kind"] == "file" else None  # noqa: E731
        if request is None and self.compare:
            request = compare.parse(self.compare)
        if request is not None:
            group = compare.Group(request, cfg, SESSION_BYTES, make)
            self.group = group
            return group.build
        self.group = None
        return lambda: build(cfg, target=make(cfg))

    def _preset_values(self, name: str) -> dict[str, Any]:
        cfg = resolve(presets.load(name))
        return {ATTR[k]: v for k, v in cfg.items() if k in ATTR}

    @contextlib.contextmanager
    def _quietly(self):
        self._quiet, old = True, self._quiet
        try:
            yield
        finally:
            self._quiet = old

    def _set_quietly(self, **values) -> None:
        with self._quietly():
            self.param.update(**values)

    def _revert_key(self, error: str) -> bool:
        """Put the knob an error names back to the preset's value; False if that changes nothing."""
        key = error.split(":", 1)[0].strip()
        if key not in ATTR:
            return False
        a = ATTR[key]
        value = self._preset_values(self.preset)[a]
        if getattr(self, a) == value:
            return False
        self._set_quietly(**{a: value})
        return True

    def _say(self, text: str, kind: str = "info") -> None:
        self.param.update(message=text, message_kind=kind)

    # ------------------------------------------------------------ knob changes
    def _on_knobs(self, *events) -> None:
        if self._quiet or not self._started:
            return
        changes = {KEY[e.name]: e.new for e in events}
        self.still = False
        fixed = compare.parse(self.compare).key if self.compare else None
        if fixed in changes:
            self._set_quietly(**{e.name: e.old for e in events})
            self._say(f"{fixed} is being compared side by side; leave the compare to change it "
                      "(kept the running simulations)", "warning")
            return
        said = ", ".join(f"{knobui.label(KNOBS[k])} = {knobui.fmt(v)}" for k, v in changes.items())
        if all(KNOBS[k].role == "hyper" for k in changes):
            self.worker.set_hyper(changes)
            self._say(f"applied live: {said}", "success")
            return
        try:
            builder = self._builder()
        except ConfigError as e:
            self._set_quietly(**{e.name: e.old for e in events})
            self._say(f"{e} (kept the running simulation)", "danger")
            return
        restart = [k for k in changes if KNOBS[k].role != "hyper" and k not in KEEPS]
        if self.compare:
            self._load(builder)
            self._say(f"restarts the compared runs: {said}", "warning")
            return
        if restart:
            self._load(builder)
            self._say(f"restarts: {restart_reason(restart[0])} ({said}); the run starts again", "warning")
            return
        if not self._load(builder, keep=True):
            self._say(f"restarts: an earlier change not yet applied restarts the run ({said})", "warning")
            return
        self._say(f"kept the run: {said} applied at step {self.t:,}, particles and critic weights kept "
                  "(Reset restarts with it)", "success")

    def _load(self, builder, keep: bool = False) -> bool:
        """Ask the worker for a build; keep: go on from the running state, unless a restarting
        load not yet built would be skipped by it (the worker builds only the newest). Returns keep."""
        keep = keep and self._fresh <= self.worker.loaded and not self.compare   # a group always restarts
        self._ticket = self.worker.load(builder, keep)
        if not keep:
            self._fresh = self._ticket
        self._asked[self._ticket] = {"values": self.param.values(), "custom": self.custom, "group": self.group}
        self.param.update(**({} if keep else {"t": 0, "diverged": ""}), building=True)
        return keep

    def _check_load(self) -> None:
        """On the event loop: note a finished load; a failed one reverts the knobs to the
        simulation that still runs (or, at the start, to the preset) with a message."""
        w = self.worker
        if self.building and not w.building:
            self.building = False
        done = [t for t in self._asked if t <= w.loaded]
        if done:
            self._good = self._asked[max(done)]          # what the worker runs now
            for t in done:
                del self._asked[t]
        restarted = w.restarted
        if restarted is not None and restarted[0] == self._ticket and restarted[0] <= w.loaded:
            w.restarted = None
            self.param.update(t=0, diverged="")
            self._say(f"restarts: {restarted[1]}, so the change could not keep the run; it starts again", "warning")
        failed, w.failed = w.failed, None
        if failed is None or failed[0] != self._ticket:
            return
        self._asked.clear()
        if self._good is None:                # nothing runs yet: fall back to the preset
            self.custom, self.compare = None, ""
            self._set_quietly(**self._preset_values(self.preset))
            self._say(f"{failed[1]} (started the preset {self.preset} instead)", "danger")
            with contextlib.suppress(ConfigError):
                self._load(self._builder())
            return
        self.custom, self.group = self._good["custom"], self._good["group"]
        self._set_quietly(**{a: v for a, v in self._good["values"].items() if a in KEY or a in ("preset", "compare")})
        self._say(f"{failed[1]} (kept the running simulation)", "danger")

    @param.depends("preset", watch=True)
    def _on_preset(self) -> None:
        if self._quiet:
            return
        values = self._preset_values(self.preset)
        self._set_quietly(**values)
        self.compare = ""                           # a preset is a new starting point: the single view
        if self._started:
            self.custom = None
            self._load(self._builder())
        self._say(f"preset {self.preset}: {presets.describe(self.preset)}", "info")

    @param.depends("running", watch=True)
    def _on_running(self) -> None:
        self.worker.running = self.running

    @param.depends("speed", watch=True)
    def _on_speed(self) -> None:
        self.worker.speed = self.speed

    @param.depends("arrows", watch=True)
    def _on_arrows(self) -> None:
        self.worker.arrows = self.arrows

    # ------------------------------------------------------------ lessons
    def open_lesson(self, name: str, step: Any = 1) -> bool:
        """Set the knobs of a lesson's step (its preset, then its knobs) and restart; a bad name
        or step is a one-line message and the run goes on. A lesson's step is a single run."""
        comparing, self.compare = self.compare, ""
        try:
            st = lessons.step_of(name, step)
            values = self._lesson_values(st)
            builder = self._builder(self._config_of(values)) if self._started else None
        except ConfigError as e:
            self.compare = comparing
            self._say(f"{e} (kept the running simulation)", "danger")
            return False
        self.custom = None
        self._set_quietly(**values, lesson=name, lesson_step=int(step))
        self.speed = st.speed or self.param.speed.default
        if builder is not None:
            self._load(builder)
        n = len(lessons.get(name).steps)
        self._say(f"lesson {lessons.get(name).title}: step {int(step)} of {n} set its knobs and restarted", "info")
        return True

    def lesson_move(self, by: int) -> bool:
        """Next (+1) or back (−1) within the lesson; False at either end."""
        if not self.lesson or not 1 <= self.lesson_step + by <= len(lessons.get(self.lesson).steps):
            return False
        return self.open_lesson(self.lesson, self.lesson_step + by)

    def close_lesson(self) -> None:
        self.param.update(lesson="", lesson_step=0)
        self._say("lesson closed; the knobs stay as they are", "info")

    def _lesson_values(self, st: "lessons.Step") -> dict[str, Any]:
        values = {"preset": st.preset, **self._preset_values(st.preset)}
        for k, v in st.knobs.items():
            values[ATTR[k]] = knobui.coerce(KNOBS[k], v)
        return values

    def _config_of(self, values: dict[str, Any]) -> dict[str, Any]:
        return resolve({**self.knob_values(), **{KEY[a]: v for a, v in values.items() if a in KEY}})

    # ------------------------------------------------------------ side by side
    def start_compare(self, request: "str | compare.Request") -> bool:
        """Run the compare `request` (text as the URL carries it) from step 0; a bad one is a
        one-line message and the running simulation goes on."""
        try:
            req = request if isinstance(request, compare.Request) else compare.parse(request)
            builder = self._builder(request=req)
        except ConfigError as e:
            self._say(f"{e} (kept the running simulation)", "danger")
            return False
        self.compare = compare.text(req)
        self._load(builder)
        self._say(f"side by side from step 0: {', '.join(self.group.labels)}, same seed ({self.group.how})", "info")
        return True

    def stop_compare(self) -> None:
        """Back to the single view: the run restarts with the knobs as they are."""
        if not self.compare:
            return
        self.compare = ""
        try:
            self._load(self._builder())
        except ConfigError as e:
            self._say(f"{e} (kept the running simulations)", "danger")
            return
        self._say("back to the single view: the run starts again with the knobs as they are", "info")

    def _snap(self, sim, state) -> None:
        """In the worker's thread, with each frame: the compare's panels copy their members."""
        group = self.group
        if group is not None:
            group.snap(sim, state)

    # ------------------------------------------------------------ transport
    def step_once(self) -> None:
        """Pause and take exactly one step."""
        self.running = False
        self.worker.step(1)

    def reset(self) -> None:
        """Restart the run from its initial state; live knobs keep their current values."""
        self.worker.reset(self.hyper())
        self.param.update(t=0, diverged="", still=False)
        self._say("reset: same knobs, same seed, back to step 0", "info")

    def take_frame(self) -> Frame | None:
        """The newest frame, if any, with the counter and the divergence banner updated."""
        self._check_load()
        if self.worker.error and self.worker.error != self._shown_error:
            self._shown_error = self.worker.error
            self.param.update(running=False)
            self._say(f"the simulation stopped: {self.worker.error}; change a knob or reset", "danger")
        inert, self.worker.inert = self.worker.inert, None
        if inert is not None:
            self.still = True
            self._say(f"no visible effect now: the cloud has settled (its particles moved {inert[1]:.0%} of the mode "
                      f"spacing over the last {SETTLE_STEPS} steps), the critic is balanced and the forces average "
                      "to zero, so a change of how they are shared has nothing to act on; restart from here with "
                      "this setting to see it", "warning")
        f = self.worker.take()
        if f is None:
            return None
        if f.t != self.t:
            self.t = f.t
        if f.diverged_step >= 0 and not self.diverged:
            self.param.update(running=False, diverged=(
                f"The run diverged at step {f.diverged_step}: particles or critic blew up, so the simulation "
                "froze there. Lower the learning rates or strengthen the regulariser, then press Reset."))
        return f

    # ------------------------------------------------------------ your own target
    def use_points(self, pts, source: str = "drawn points") -> bool:
        """Make `pts` (n, d) the target and restart; a bad point set leaves the run alone."""
        try:
            arr = check_points(pts, source)
            if len(arr) > MAX_POINTS:
                raise ConfigError(f"target.file: {source} has {len(arr)} points; allowed at most {MAX_POINTS}")
            label = f"{source} ({len(arr)} points)"
            cfg = resolve({**self.knob_values(), "target.kind": "file", "target.file": label})
            builder = self._builder(cfg, (arr, label))
        except ConfigError as e:
            self._say(f"{e} (kept the running simulation)", "danger")
            return False
        self.custom = (arr, label)
        self._set_quietly(target_kind="file")
        self._load(builder)
        self._say(f"reset: the target is now your {label}", "warning")
        return True

    def upload(self, filename: str, data: bytes) -> bool:
        """A CSV (one point per row, header allowed) or .npy file as the target."""
        if not data:
            self._say(f"target.file: {filename} is empty; allowed a CSV or .npy file, one point per row "
                      "(kept the running simulation)", "danger")
            return False
        try:
            arr = load_points(filename or "upload.csv", data)
        except ConfigError as e:
            self._say(f"{e} (kept the running simulation)", "danger")
            return False
        return self.use_points(arr, filename)

    # ------------------------------------------------------------ the URL
    def query(self) -> dict[str, str]:
        """The state as URL parameters: the preset, then every knob that differs from it
        (the seed always), so a link is short and reproduces the run."""
        base = self._preset_values(self.preset)
        q = {"preset": self.preset}
        for a, name in KEY.items():
            v = getattr(self, a)
            if name == "seed" or (v != base[a] and not (name == "target.kind" and v == "file")):
                q[name] = knobui.fmt(v)
        if self.teach != self.param.teach.default:
            q["teach"] = knobui.fmt(self.teach)
        if self.speed != self.param.speed.default:
            q["speed"] = str(self.speed)
        if self.lesson:
            q.update(lesson=self.lesson, step=str(self.lesson_step))
        if self.compare:
            q[compare.KEY] = self.compare
        points = self._link_points()
        if points:
            q[linkdata.KEY] = points
        return q

    def _link_points(self) -> str | None:
        """Your own points as link text, when they are the target and small enough."""
        if self.target_kind != "file" or self.custom is None:
            return None
        if getattr(self, "_link_cache", (None,))[0] is not self.custom:     # encode once per point set
            self._link_cache = (self.custom, linkdata.encode(self.custom[0]))
        return self._link_cache[1]

    def link_note(self) -> str:
        """What the link leaves out ('' when it holds the whole set-up)."""
        if self.target_kind != "file" or self.custom is None or self._link_points():
            return ""
        return (f"Your own points ({self.custom[1]}) are too many for a link (at most "
                f"{linkdata.LINK_CHARS_MAX} characters of data): the link opens the preset's target "
                "instead. Download the run (netCDF) to keep them.")

    def apply_query(self, query: Mapping[str, Any]) -> list[str]:
        """Set the state from URL parameters; each bad one is skipped with a message."""
        errors = []
        q = {k: (v[-1] if isinstance(v, (list, tuple)) else v) for k, v in query.items()}
        # a link may carry any bytes: undecodable ones become U+FFFD and fail the knob's check
        q = {_text(k): _text(v) for k, v in q.items()}
        values: dict[str, Any] = {}
        points = None
        if "preset" in q:
            if q["preset"] in presets.names():
                values["preset"] = q["preset"]
            else:
                errors.append(f"preset: unknown preset {q['preset']!r}; allowed {', '.join(presets.names())}")
        values.update(self._preset_values(values.get("preset", self.preset)))
        if "lesson" in q or "step" in q:
            try:
                st = lessons.step_of(q.get("lesson", ""), q.get("step", "1"))
                values.update(self._lesson_values(st), lesson=q["lesson"], lesson_step=int(q.get("step", "1")),
                              speed=st.speed or self.param.speed.default)
            except ConfigError as e:
                errors.append(str(e))
        for k, v in q.items():
            try:
                if k in ATTR:
                    values[ATTR[k]] = knobui.coerce(KNOBS[k], v)
                elif k == "teach":
                    values["teach"] = TEACH.coerce(v)
                elif k == "speed":
                    values["speed"] = _check_speed(v)
                elif k == linkdata.KEY:
                    points = linkdata.decode(v)
                elif k == compare.KEY:
                    values["compare"] = compare.text(compare.parse(v))
                elif k not in ("preset", "lesson", "step"):
                    errors.append(f"{show(k) if k else '(an empty name)'}: unknown parameter; allowed preset, teach, speed, "
                                  f"points, lesson, step, compare, {', '.join(ATTR)}")
            except ConfigError as e:
                errors.append(" ".join(str(e).splitlines()))     # a value may hold line breaks
            except Exception:  # noqa: BLE001 - whatever a link holds, it is a message, not a crash
                log.warning("URL parameter %s not understood", k, exc_info=True)
                allowed = KNOBS[k].describe() if k in KNOBS else "see the knobs"
                errors.append(f"{show(k)}: {show(v)} is not allowed; allowed {allowed}")
        if points is not None:
            self.custom = (points, f"points from the link ({len(points)} points)")
            values["target_kind"] = "file"
        elif values.get("target_kind") == "file":
            values.pop("target_kind")
            errors.append("target.kind: file needs your own points, and this link carries none; "
                          "allowed a link made with them")
        if values.get("compare"):                 # checked against the link's knobs, before anything is set
            cfg = {**self.knob_values(), **{KEY[a]: v for a, v in values.items() if a in KEY}}
            try:
                mine = {"target.file": "your points"} if cfg["target.kind"] == "file" else {}
                compare.Group(compare.parse(values["compare"]), resolve(cfg, mine), SESSION_BYTES)
            except ConfigError as e:
                values.pop("compare")
                errors.append(str(e))
        before = self.param.values()
        self._set_quietly(**values)
        if self._started:
            try:
                self._load(self._builder())
            except ConfigError as e:
                self._set_quietly(**{a: before[a] for a in values})
                errors.append(f"{e} (kept the running simulation)")
        if errors:
            self._say("ignored in the link: " + "; ".join(errors), "danger")
        return errors


def restart_reason(key: str) -> str:
    if key in RESTARTS:
        return RESTARTS[key]
    if key.startswith("target."):
        return "the target changed"
    return "the starting cloud changed" if key.startswith("init.") else f"{key} changed"


def _text(v: Any) -> str:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


def check_cost(cfg: dict[str, Any]) -> None:
    """The session's memory cap: estimated before anything is allocated (`dynamics.budget`)."""
    from dynamics import budget
    try:
        budget.check(cfg, limit_bytes=SESSION_BYTES)
    except ConfigError as e:
        raise ConfigError(f"{e}; the lab allows one session {SESSION_BYTES >> 20} MiB") from None


def _check_speed(v: Any) -> int:
    try:
        n = int(str(v))
    except ValueError:
        n = -1
    lo, hi = Lab.param.speed.bounds
    if not lo <= n <= hi:
        raise ConfigError(f"speed: {v} is out of range; allowed integers in [{lo}, {hi}]")
    return n
