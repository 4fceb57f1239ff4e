"""A bounded record of a live run (metric rows per frame, particle snapshots) for exports.

The worker thread writes, the event loop reads (downloads): every access holds the lock.
Long runs are thinned, not truncated: past the limits every other row / snapshot is dropped
and the snapshot interval doubles, so the record always spans the whole run. Live knob changes
are kept as (step, key, value) rows, and `cfg` follows them: it is the config running now,
`start_cfg` the one the run started from.
"""
from __future__ import annotations

import threading

import numpy as np

from dynamics.run import History

MAX_ROWS = 4000
MAX_SNAPSHOTS = 120
MAX_KNOB_CHANGES = 10_000     # a slider dragged for an hour: ~20 changes a second; older ones are dropped
SNAPSHOT_BYTES = 64 * 2**20


class Recorder:
    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self, snap_every: int = 10) -> None:
        with self._lock:
            self.steps: list[int] = []
            self.rows: list[dict[str, float]] = []
            self.snap_steps: list[int] = []
            self.snaps: list[np.ndarray] = []
            self.snap_every = snap_every
            self.cfg: dict | None = None
            self.start_cfg: dict | None = None
            self.knob_changes: list[tuple[int, str, float]] = []
            self.diverged_step = -1

    def start(self, cfg: dict) -> None:
        """The config a (re)started run begins with; call after `clear`."""
        with self._lock:
            self.cfg, self.start_cfg = dict(cfg), dict(cfg)

    def note_knobs(self, t: int, changes: dict[str, float]) -> None:
        """Live knob changes applied before step t + 1."""
        with self._lock:
            if self.cfg is None:
                return
            self.cfg.update(changes)
            self.knob_changes += [(int(t), k, v) for k, v in changes.items()]
            del self.knob_changes[:-MAX_KNOB_CHANGES]

    def knob_history(self) -> tuple[dict | None, list[tuple[int, str, float]]]:
        with self._lock:
            return (None if self.start_cfg is None else dict(self.start_cfg)), list(self.knob_changes)

    def add_row(self, t: int, metrics: dict[str, float]) -> None:
        with self._lock:
            if self.steps and t <= self.steps[-1]:
                return
            self.steps.append(t)
            self.rows.append(metrics)
            if len(self.steps) > MAX_ROWS:
                self.steps, self.rows = self.steps[::2], self.rows[::2]

    def wants_snapshot(self, t: int) -> bool:
        return not self.snap_steps or t - self.snap_steps[-1] >= self.snap_every

    def add_snapshot(self, t: int, x: np.ndarray) -> None:
        """x: (N, d) float32 positions of the (single) member."""
        with self._lock:
            self.snap_steps.append(t)
            self.snaps.append(x)
            limit = min(MAX_SNAPSHOTS, max(2, SNAPSHOT_BYTES // max(x.nbytes, 1)))
            if len(self.snaps) > limit:
                self.snap_steps, self.snaps = self.snap_steps[::2], self.snaps[::2]
                self.snap_every *= 2

    def snapshots(self) -> tuple[np.ndarray, list[np.ndarray]]:
        with self._lock:
            return np.asarray(self.snap_steps), list(self.snaps)

    def history(self) -> History:
        """The run so far in the engine's `History` layout (B = 1), ready for `to_dataset`."""
        with self._lock:
            if self.cfg is None or not self.rows:
                raise ValueError("nothing recorded yet")
            names = sorted({k for r in self.rows for k in r})
            series = {k: np.array([[r.get(k, np.nan) for r in self.rows]]) for k in names}
            final = {k: v[:, -1] for k, v in series.items()}
            final.update(diverged=np.array([self.diverged_step >= 0]), diverged_step=np.array([self.diverged_step]))
            snaps = np.stack(self.snaps)[None] if self.snaps else np.zeros((1, 0, 0, 0), np.float32)
            return History(dict(self.cfg), [{}], np.asarray(self.steps), series, np.asarray(self.snap_steps),
                           snaps, final)
