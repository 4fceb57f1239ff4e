"""The phase map in a real (headless) Chromium: it fills in, and a click on a cell moves the
live simulation there (the knob and the address bar follow)."""
from __future__ import annotations

import shutil
import urllib.parse

import pytest

pytestmark = [pytest.mark.ui, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")]
pytest.importorskip("pytest_playwright")

from test_lab_ui import open_lab, wait_until  # noqa: E402  (tests/ui is on sys.path under pytest)

CELLS = """() => { const m = Bokeh.documents[0].get_model_by_name('phasemap-cells');
  return m ? Array.from(m.data.state) : null }"""
TITLE = "() => Bokeh.documents[0].get_model_by_name('phasemap').title.text"
# the page position of cell (i, j): the heatmap's scales, from its Bokeh view
CELL_AT = """([i, j]) => { const fig = Bokeh.documents[0].get_model_by_name('phasemap');
  const v = Bokeh.index.find_one(fig); const box = v.canvas_view.el.getBoundingClientRect();
  return [box.left + v.frame.x_scale.compute(i), box.top + v.frame.y_scale.compute(j)] }"""


def fill(page, cls: str, value) -> None:
    box = page.locator(f".{cls} input")
    box.fill(str(value))
    box.press("Enter")


def test_the_map_fills_and_a_click_moves_the_simulation(page, lab_url):
    errors, worker = open_lab(page, lab_url)
    for cls, value in (("pm-x-points", 4), ("pm-y-points", 3), ("pm-seeds", 1), ("pm-steps", 100)):
        fill(page, cls, value)
    page.locator(".pm-compile input").uncheck()          # eager: no compiler wait in a test
    page.locator(".pm-go button").click()
    wait_until(lambda: (s := page.evaluate(CELLS)) and len(s) == 12 and all(v == "" for v in s), 120, 0.2,
               "every cell of the map computed")
    assert "done: 12 cells" in page.evaluate(TITLE)
    before = worker.hyper["kernel.ratio"], worker.hyper["lr.disc"]
    x, y = page.evaluate(CELL_AT, [3, 2])                 # kernel.ratio = 1, lr.disc = 0.1: the corner
    page.mouse.click(x, y)
    wait_until(lambda: worker.hyper["kernel.ratio"] == 1.0, 60, 0.1, "the live kernel.ratio moved to the cell")
    assert worker.hyper["lr.disc"] == pytest.approx(0.1) and before != (1.0, 0.1)
    search = "() => window.location.search"
    query = wait_until(lambda: urllib.parse.parse_qs(page.evaluate(search)[1:]).get("kernel.ratio"), 30, 0.1,
                       "kernel.ratio in the address bar")
    assert float(query[0]) == 1.0
    assert float(urllib.parse.parse_qs(page.evaluate(search)[1:])["lr.disc"][0]) == pytest.approx(0.1)
    assert errors == []
