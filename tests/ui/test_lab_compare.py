"""Side by side in a real (headless) Chromium: a compare link shows two particle clouds with
shared axes that move apart, one Pause / Play drives both, and the card starts a live-knob compare
(one batch), refuses a bad value with a message and goes back to the single view."""
from __future__ import annotations

import shutil
import urllib.parse

import pytest

pytestmark = [pytest.mark.ui,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")]
pytest.importorskip("pytest_playwright")

from test_lab_ui import last_id, newest_worker, shows, wait_until  # noqa: E402

CLOUDS = """() => { const d = window.Bokeh && Bokeh.documents[0]; if (!d) return null;
  return [0, 1, 2, 3].map(i => { const m = d.get_model_by_name('compare-particles-' + i);
    return m ? [Array.from(m.data.x), Array.from(m.data.y)] : null }) }"""
SHARED = """() => { const d = Bokeh.documents[0], a = d.get_model_by_name('compare-fig-0'),
  b = d.get_model_by_name('compare-fig-1'); return a.x_range === b.x_range && a.y_range === b.y_range }"""
TITLES = "() => [0, 1].map(i => Bokeh.documents[0].get_model_by_name('compare-fig-' + i).title.text)"


def clouds(page):
    return page.evaluate(CLOUDS) or [None] * 4


def two_clouds(page):
    """Both panels' particles, once both are non-empty."""
    c = clouds(page)
    return c[:2] if c[0] and c[1] and c[0][0] and c[1][0] else None


def test_a_compare_link_shows_two_clouds_driven_by_one_transport(page, lab_url):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    before = last_id()
    page.goto(lab_url + "?compare=disc.activation:relu,sigmoid")
    first = wait_until(lambda: two_clouds(page), 60, 0.1, "two particle clouds")
    worker = wait_until(lambda: newest_worker(before), 60, 0.05, "the session's worker")
    assert len(first[0][0]) == len(first[1][0]) == worker.cfg["particles"]
    assert page.evaluate(TITLES) == ["disc.activation = relu", "disc.activation = sigmoid"]
    assert page.evaluate(SHARED)
    moved = wait_until(lambda: (c := two_clouds(page)) and c[0] != c[1] and c[0] != first[0] and c[1] != first[1]
                       and c, 60, 0.1, "the two clouds moving apart")
    assert moved[0] != moved[1]
    page.get_by_role("button", name="Pause").click(no_wait_after=True)   # the event is waited on below
    wait_until(lambda: not worker.running, 60, 0.05, "paused")
    held = wait_until(lambda: _settled(page), 60, 0.1, "both panels still")
    page.wait_for_timeout(500)
    assert two_clouds(page) == held                                     # pause holds both
    page.get_by_role("button", name="Play").click(no_wait_after=True)   # the event is waited on below
    wait_until(lambda: (c := two_clouds(page)) and c[0] != held[0] and c[1] != held[1], 60, 0.1,
               "both clouds moving again")
    assert errors == []


def _settled(page):
    a = two_clouds(page)
    page.wait_for_timeout(300)
    return a if a and two_clouds(page) == a else None


def test_the_card_starts_a_live_compare_as_one_batch_refuses_bad_values_and_leaves(page, lab_url):
    from app.lab import knobui
    from dynamics.knobs import KNOBS
    before = last_id()
    page.goto(lab_url)
    worker = wait_until(lambda: newest_worker(before), 60, 0.05, "the session's worker")
    page.locator(".cmp-key select").select_option(label=knobui.shown_label(KNOBS["kernel.ratio"], True))
    box = page.locator(".cmp-values input")
    wait_until(lambda: box.input_value() == "0.1, 0.9", 60, 0.1, "values proposed around r = 0.1")
    box.fill("0.1, 0.5, 0.9")
    box.press("Enter")
    page.locator(".cmp-go button").click(no_wait_after=True)   # the event is waited on below
    wait_until(lambda: worker._state is not None and worker._state.batch == 3, 60, 0.05,
               "three members in one batch")
    assert worker.hyper["kernel.ratio"] == pytest.approx(0.1)
    assert [float(r) for r in worker._state.hyper["kernel.ratio"]] == pytest.approx([0.1, 0.5, 0.9])
    wait_until(lambda: all(c and c[0] for c in clouds(page)[:3]), 60, 0.1, "three clouds")
    wait_until(lambda: shows(page, "live knob: the runs are members of one batch"), 60, 0.1, "how they run")
    search = "() => window.location.search"
    query = wait_until(lambda: urllib.parse.parse_qs(page.evaluate(search)[1:]).get("compare"), 60, 0.1,
                       "compare in the address bar")
    assert query == ["kernel.ratio:0.1,0.5,0.9"]
    state = worker._state
    box.fill("0.1, 7")
    box.press("Enter")
    page.locator(".cmp-go button").click(no_wait_after=True)   # the event is waited on below
    wait_until(lambda: shows(page, "compare: kernel.ratio: 7 is out of range; allowed numbers in [0, 1]"), 60, 0.1,
               "the message")
    assert worker._state.batch == 3 and worker._state.t >= state.t        # the compare runs on untouched
    page.locator(".cmp-panels .cmp-leave button").click(no_wait_after=True)   # the event is waited on below
    wait_until(lambda: worker._state.batch == 1, 60, 0.05, "the single run again")
    wait_until(lambda: "compare" not in urllib.parse.parse_qs(page.evaluate(search)[1:]), 60, 0.1,
               "compare gone from the address bar")
    assert not page.locator(".cmp-panels").is_visible()
