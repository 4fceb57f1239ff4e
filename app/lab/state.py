"""`Lab`: the one Parameterized object behind a session of the live lab.

It holds every knob (generated from `dynamics.knobs`), the preset, the transport and the
teach mode, and owns the session's `Worker`. It routes each knob change: live knobs (role
'hyper') go to `Simulation.set_hyper` without a reset; structural ones rebuild the
simulation from the current knobs. `message` says which ("applied live: ..." or "reset:
..."), or what was wrong; a rejected change is reverted and the run goes on untouched.
No Panel here: the page (`app.lab.page`) builds widgets and views around it, and tests drive
it headless.
"""
from __future__ import annotations

import contextlib
from typing import Any, Mapping

import numpy as np
import param

from dynamics import presets
from dynamics.engine import build
from dynamics.knobs import KNOBS, ConfigError, Knob, hyper_keys, resolve
from dynamics.targets import check_points, load_points, points_target

from . import knobui
from .frames import Frame
from .worker import Worker

KEY = {knobui.attr(k.name): k.name for k in knobui.SHOWN}      # param name -> knob name
ATTR = {v: k for k, v in KEY.items()}
MAX_POINTS = 20_000          # drawn or uploaded target points
TEACH = Knob("teach", bool, True, "teach mode")      # parses the URL's teach=... like any knob

Knobs = param.parameterized_class("Knobs", knobui.parameters())


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return format(v, ".6g") if isinstance(v, float) else str(v)


class Lab(Knobs):
    preset = param.Selector(objects=presets.names(), default=presets.DEFAULT, doc="named starting point")
    running = param.Boolean(default=True, doc="play / pause")
    speed = param.Integer(default=10, bounds=(1, 200), label="speed (steps per frame)",
                          doc="particle updates between two frames: how fast simulated time runs")
    t = param.Integer(default=0, doc="steps taken in this run")
    teach = param.Boolean(default=True, label="teach mode", doc="hide the advanced knobs")
    arrows = param.Boolean(default=False, label="show generator forces", doc="arrows F_j on the particles")
    message = param.String(default="", doc="what the last change did, or what was wrong with it")
    message_kind = param.Selector(objects=["info", "success", "warning", "danger"], default="info")
    diverged = param.String(default="", doc="non-empty while the run has diverged")

    def __init__(self, fps: float = 30.0, **params):
        super().__init__(**{k: v for k, v in params.items() if k not in KEY})
        self.param.update(**{**self._preset_values(self.preset), **{k: v for k, v in params.items() if k in KEY}})
        self.worker = Worker(fps=fps, speed=self.speed)
        self.custom: tuple[np.ndarray, str] | None = None     # drawn / uploaded target points
        self._quiet = False
        self._started = False
        self._shown_error = ""
        self.param.watch(self._on_knobs, list(KEY))

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "Lab":
        """Build the first simulation (falling back to the preset on a bad combination) and run."""
        if self._started:
            return self
        for _ in range(len(KEY)):
            try:
                self.worker.load(self._build())
                break
            except ConfigError as e:
                self._say(str(e), "danger")
                if not self._revert_key(str(e)):
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

    def _build(self):
        cfg = self.config()
        target = points_target(self.custom[0], cfg) if cfg["target.kind"] == "file" else None
        return build(cfg, target=target)

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
        said = ", ".join(f"{knobui.label(KNOBS[k])} = {_fmt(v)}" for k, v in changes.items())
        if all(KNOBS[k].role == "hyper" for k in changes):
            self.worker.set_hyper(changes)
            self._say(f"applied live: {said}", "success")
            return
        try:
            sim = self._build()
        except ConfigError as e:
            self._set_quietly(**{e.name: e.old for e in events})
            self._say(f"{e} (kept the running simulation)", "danger")
            return
        self._load(sim)
        self._say(f"reset: {said} changes the structure, so the run restarted", "warning")

    def _load(self, sim) -> None:
        self.worker.load(sim)
        self.param.update(t=0, diverged="")

    @param.depends("preset", watch=True)
    def _on_preset(self) -> None:
        if self._quiet:
            return
        values = self._preset_values(self.preset)
        self._set_quietly(**values)
        if self._started:
            self.custom = None
            self._load(self._build())
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

    # ------------------------------------------------------------ transport
    def step_once(self) -> None:
        """Pause and take exactly one step."""
        self.running = False
        self.worker.step(1)

    def reset(self) -> None:
        """Restart the run from its initial state; live knobs keep their current values."""
        self.worker.reset(self.hyper())
        self.param.update(t=0, diverged="")
        self._say("reset: same knobs, same seed, back to step 0", "info")

    def take_frame(self) -> Frame | None:
        """The newest frame, if any, with the counter and the divergence banner updated."""
        if self.worker.error and self.worker.error != self._shown_error:
            self._shown_error = self.worker.error
            self.param.update(running=False)
            self._say(f"the simulation stopped: {self.worker.error}; change a knob or reset", "danger")
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
            sim = build(cfg, target=points_target(arr, cfg))
        except ConfigError as e:
            self._say(f"{e} (kept the running simulation)", "danger")
            return False
        self.custom = (arr, label)
        self._set_quietly(target_kind="file")
        self._load(sim)
        self._say(f"reset: the target is now your {label}", "warning")
        return True

    def upload(self, filename: str, data: bytes) -> bool:
        """A CSV (one point per row, header allowed) or .npy file as the target."""
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
                q[name] = _fmt(v)
        if self.teach != self.param.teach.default:
            q["teach"] = _fmt(self.teach)
        if self.speed != self.param.speed.default:
            q["speed"] = str(self.speed)
        return q

    def apply_query(self, query: Mapping[str, Any]) -> list[str]:
        """Set the state from URL parameters; each bad one is skipped with a message."""
        errors = []
        q = {k: (v[-1] if isinstance(v, (list, tuple)) else v) for k, v in query.items()}
        q = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in q.items()}
        values: dict[str, Any] = {}
        if "preset" in q:
            if q["preset"] in presets.names():
                values["preset"] = q["preset"]
            else:
                errors.append(f"preset: unknown preset {q['preset']!r}; allowed {', '.join(presets.names())}")
        values.update(self._preset_values(values.get("preset", self.preset)))
        for k, v in q.items():
            try:
                if k in ATTR:
                    values[ATTR[k]] = KNOBS[k].coerce(v)
                elif k == "teach":
                    values["teach"] = TEACH.coerce(v)
                elif k == "speed":
                    values["speed"] = _check_speed(v)
                elif k != "preset":
                    errors.append(f"{k}: unknown parameter; allowed preset, teach, speed, {', '.join(ATTR)}")
            except ConfigError as e:
                errors.append(str(e))
        if values.get("target_kind") == "file":
            values.pop("target_kind")
            errors.append("target.kind: file needs your own points, which a link cannot carry")
        self._set_quietly(**values)
        if self._started:
            self._load(self._build())
        if errors:
            self._say("ignored in the link: " + "; ".join(errors), "danger")
        return errors


def _check_speed(v: Any) -> int:
    try:
        n = int(str(v))
    except ValueError:
        n = -1
    lo, hi = Lab.param.speed.bounds
    if not lo <= n <= hi:
        raise ConfigError(f"speed: {v} is out of range; allowed integers in [{lo}, {hi}]")
    return n
