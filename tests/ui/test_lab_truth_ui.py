"""The lab in a real (headless) Chromium on a phone and a laptop, and while it starts."""
from __future__ import annotations

import shutil
import threading

import pytest

pytestmark = [pytest.mark.ui,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")]
pytest.importorskip("pytest_playwright")

from test_lab_ui import N_PARTICLES, open_lab, wait_until  # noqa: E402

SIZES = {"phone": (390, 844), "laptop": (1280, 720)}


def _inside(box, width: int, height: int) -> bool:
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and \
        box["x"] + box["width"] <= width + 0.5 and box["y"] + box["height"] <= height + 0.5


@pytest.mark.parametrize("size", SIZES)
def test_particles_and_transport_are_in_the_first_screen(browser, lab_url, tmp_path, size):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                                  is_mobile=size == "phone", has_touch=size == "phone")
    page = context.new_page()
    try:
        errors, _ = open_lab(page, lab_url)
        assert page.locator('meta[name="viewport"]').count() == 1
        plot = page.locator(".particle-plot").first
        wait_until(lambda: plot.bounding_box(), 10, 0.1, "the particle plot laid out")
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / f"lab-{size}.png"))
        box = plot.bounding_box()
        assert _inside(box, width, height), f"particle plot {box} outside the {width}×{height} screen"
        assert box["width"] >= min(0.85 * width, 400), f"particle plot {box} is too small to use"
        for name in ("Pause", "Step", "Reset"):
            button = page.get_by_role("button", name=name).first
            assert _inside(button.bounding_box(), width, height), f"{name} is below the fold"
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= width + 1, f"the page is {overflow} px wide on a {width} px screen"
        meter_text = page.get_by_text("How much of the true distance").first      # the meters' caption
        wait_until(lambda: meter_text.bounding_box(), 60, 0.2, "the meters' caption laid out")
        box = meter_text.bounding_box()
        assert box["x"] >= -1 and box["x"] + box["width"] <= width + 1, f"meter caption {box} cut off at {width} px"
        preset = page.get_by_text("preset").first
        if size == "phone":                       # the knobs sit behind the menu button, over the page
            assert not preset.is_visible()
            page.locator("#sidebar-toggle").click()
            wait_until(lambda: preset.is_visible(), 10, 0.1, "the sidebar opened from the menu button")
        else:
            assert preset.is_visible()
            page.locator(".toggle-arrows input").first.click()     # the force arrows draw without an error
            page.wait_for_timeout(1500)
        assert errors == []
    finally:
        context.close()


def test_a_loading_note_shows_until_the_first_frame(page, lab_url, monkeypatch):
    """The worker's thread is held back: the page must say it is starting, then show the
    particles and drop the note as soon as the first frame is there."""
    from app.lab import worker
    release = threading.Event()
    start = worker.Worker.start

    def held(self):
        threading.Thread(target=lambda: release.wait(60) and start(self), daemon=True).start()
        return self
    monkeypatch.setattr(worker.Worker, "start", held)
    page.goto(lab_url)
    note = page.locator(".lab-loading")
    wait_until(lambda: note.count() and note.first.is_visible(), 30, 0.1, "the loading note")
    assert page.get_by_text("starting the simulation").count() > 0
    assert not page.evaluate(N_PARTICLES)
    release.set()
    wait_until(lambda: page.evaluate(N_PARTICLES), 60, 0.1, "the first frame")
    wait_until(lambda: not note.count() or not note.first.is_visible(), 10, 0.1, "the note gone")
