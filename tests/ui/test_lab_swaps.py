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


def test_a_change_with_nothing_to_act_on_offers_a_restart(page, lab_url):
    """kernel.width on a settled covering cloud: the page says the change cannot show and its
    button restarts the run with the new width."""
    _, worker = open_lab(page, lab_url + "?kernel.kind=rbf&speed=200")
    wait_until(lambda: worker._state.t > 3000, 120, 0.1, "a settled cloud")
    assert not page.locator(".restart-here").is_visible()
    handle = page.locator(".knob-kernel_width .noUi-handle")
    old = worker.hyper["kernel.width"]
    handle.focus()
    handle.press("End")                                  # the slider's top: default × 100
    wait_until(lambda: worker.hyper["kernel.width"] > 2 * old, 60, 0.05, "a wider kernel in the simulation")
    wait_until(lambda: shows(page, "no visible effect now"), 60, 0.1, "the page saying so")
    button = page.locator(".restart-here button")
    wait_until(lambda: button.is_visible(), 30, 0.1, "the restart button")
    width = worker.hyper["kernel.width"]
    button.click()
    wait_until(lambda: worker._state.t < 1000 and worker.hyper["kernel.width"] == width, 60, 0.05,
               "the run restarted with the new width")
    wait_until(lambda: not button.is_visible(), 30, 0.1, "the button gone")
