"""A critic swap in a real (headless) Chromium keeps the run: the particle positions the page
shows are the same before and after the activation changes, and the series carry a mark."""
from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.ui,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")]
pytest.importorskip("pytest_playwright")

from test_lab_ui import N_PARTICLES, open_lab, shows, wait_until  # noqa: E402

MARKS = "() => Array.from(Bokeh.documents[0].get_model_by_name('marks').data.t)"
SHOWN_XY = "() => { const m = Bokeh.documents[0].get_model_by_name('particles');" \
           " return [Array.from(m.data.x), Array.from(m.data.y)] }"


def test_an_activation_swap_keeps_the_particle_positions(page, lab_url):
    errors, worker = open_lab(page, lab_url)
    wait_until(lambda: worker.steps_done > 50, 60, 0.05, "the run under way")
    page.get_by_role("button", name="Pause").click()
    wait_until(lambda: not worker.running, 10, 0.05, "paused")
    t = wait_until(lambda: _still(worker), 10, 0.05, "the worker idle")
    before = wait_until(lambda: _settled(page), 30, 0.1, "the page showing the paused state")
    page.locator(".knob-disc_activation select").select_option("sigmoid")
    wait_until(lambda: worker.cfg["disc.activation"] == "sigmoid", 60, 0.05, "the swap in the simulation")
    wait_until(lambda: page.evaluate(MARKS) == [t], 60, 0.1, "a mark at the step of the swap")
    assert page.evaluate(SHOWN_XY) == before                          # the same positions, bitwise
    assert worker._state.t == t
    wait_until(lambda: shows(page, "kept the run"), 30, 0.1, "the 'kept the run' message")
    page.get_by_role("button", name="Step").click()
    wait_until(lambda: worker._state.t == t + 1, 30, 0.05, "one more step of the same run")
    wait_until(lambda: page.evaluate(N_PARTICLES) != before[0], 30, 0.1, "the particles moving on")
    assert errors == []


def _still(worker):
    """The step of a paused worker once it stays put (None while it still moves)."""
    import time
    t = worker._state.t
    time.sleep(0.2)
    return t if worker._state.t == t else None


def _settled(page):
    """The particles the page shows, once two reads a moment apart agree."""
    a = page.evaluate(SHOWN_XY)
    page.wait_for_timeout(300)
    return a if page.evaluate(SHOWN_XY) == a else None
