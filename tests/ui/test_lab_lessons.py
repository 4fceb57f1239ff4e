"""Guided lessons in a real (headless) Chromium: every step of every lesson sets its knobs in the
running simulation, Next / Back walk the steps, the answer shows on a click, the address bar
carries lesson and step, and teach mode labels the keys in plain words."""
from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.ui,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")]
pytest.importorskip("pytest_playwright")

from test_lab_ui import open_lab, shows, wait_until  # noqa: E402

from app.lab import lessons  # noqa: E402

HREF = "() => window.location.href"


def _runs(worker, st) -> bool:
    cfg = st.config()
    return worker.cfg is not None and all(worker.cfg[k] == cfg[k] for k in st.knobs) \
        and worker.cfg["target.kind"] == cfg["target.kind"] and worker.cfg["seed"] == cfg["seed"]


def test_each_lesson_step_sets_its_knobs_and_next_back_walk_them(page, lab_url):
    errors, worker = open_lab(page, lab_url)
    for n, les in enumerate(lessons.LESSONS.values(), 1):
        page.locator(".lesson-select select").select_option(label=f"{n}. {les.title}")
        for i, st in enumerate(les.steps, 1):
            if i > 1:
                page.locator(".lesson-next button").click()
            wait_until(lambda: _runs(worker, st), 60, 0.05, f"{les.name} step {i}'s knobs in the simulation")
            wait_until(lambda: f"step {i} of {len(les.steps)}" in page.locator(".lesson-head p").inner_text(), 30, 0.1,
                       "the step's card")
            wait_until(lambda: f"lesson={les.name}&step={i}" in page.evaluate(HREF), 30, 0.1, "the address bar")
        assert page.locator(".lesson-next button").is_disabled()
        page.locator(".lesson-back button").click()
        wait_until(lambda: _runs(worker, les.steps[-2]), 60, 0.05, "back one step")
    assert errors == []


def test_a_lesson_link_opens_its_step_and_the_answer_shows_on_a_click(page, lab_url):
    _, worker = open_lab(page, lab_url + "?lesson=coupling&step=2")
    st = lessons.step_of("coupling", 2)
    wait_until(lambda: _runs(worker, st), 60, 0.05, "the linked step running")
    assert not page.locator(".lesson-answer").is_visible()
    page.locator(".lesson-show button").click()
    wait_until(lambda: page.locator(".lesson-answer").is_visible(), 30, 0.1, "the answer")
    assert "rigid blob" in page.locator(".lesson-answer p").inner_text()
    label = page.locator(".knob-kernel_ratio .bk-slider-title").inner_text()
    assert label.startswith("coupling between particles · kernel.ratio")            # teach mode's plain words
    page.screenshot(path=str(_shot_path()), full_page=False)


def test_a_bad_lesson_link_is_a_message_and_the_lab_runs(page, lab_url):
    _, worker = open_lab(page, lab_url + "?lesson=nope&step=3")
    wait_until(lambda: shows(page, "is not a lesson"), 30, 0.1, "the one-line message")
    n = worker.steps_done
    wait_until(lambda: worker.steps_done > n + 10, 30, 0.05, "still running")
    assert not page.locator(".lesson-card").is_visible()


def _shot_path():
    """Where the lesson screenshot goes: EFFGAN_SHOT if set (the issue's note), else nowhere kept."""
    import os
    import tempfile
    return os.environ.get("EFFGAN_SHOT") or os.path.join(tempfile.gettempdir(), "effgan_lesson_test.png")
