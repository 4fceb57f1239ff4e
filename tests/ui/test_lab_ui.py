"""The live lab in a real (headless) Chromium: loading, streaming, knobs, transport, links,
bad input and session clean-up."""
from __future__ import annotations

import shutil
import threading
import time

import pytest

pytestmark = [pytest.mark.ui,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")]
pytest.importorskip("pytest_playwright")


def wait_until(fn, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll fn() until truthy; returns its value."""
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(interval)


def shows(page, text: str) -> bool:
    """Visible text anywhere in the page, shadow DOM included (page.content() would miss it)."""
    return page.get_by_text(text).count() > 0


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("effgan-worker") and t.is_alive()]


N_PARTICLES = "() => { const d = window.Bokeh && Bokeh.documents[0]; const m = d && d.get_model_by_name('particles');" \
              " return m ? Array.from(m.data.x) : null }"


COUNT_FRAMES = "() => { window.__frames = 0; Bokeh.documents[0].get_model_by_name('particles')" \
               ".properties.data.change.connect(() => { window.__frames += 1 }) }"


def newest_worker(after: int = 0):
    from app.lab.worker import LIVE
    live = [w for w in list(LIVE) if w.alive and w.id > after and w.cfg is not None]
    return max(live, key=lambda w: w.id) if live else None


def last_id() -> int:
    from app.lab.worker import LIVE
    return max([w.id for w in list(LIVE)], default=0)


def open_lab(page, url: str):
    """Go to the lab; wait until particles arrive. Returns (console errors list, its worker)."""
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    before = last_id()
    page.goto(url)
    wait_until(lambda: (page.evaluate(N_PARTICLES) or []), 60, 0.1, "particles in the page")
    worker = wait_until(lambda: newest_worker(before), 60, 0.05, "a worker for the session")
    return errors, worker


def test_page_loads_without_console_errors_and_particles_move(page, lab_url):
    errors, worker = open_lab(page, lab_url)
    first = page.evaluate(N_PARTICLES)
    wait_until(lambda: page.evaluate(N_PARTICLES) != first, 10, 0.1, "particles moving")
    assert len(first) == worker.cfg["particles"]
    assert page.locator(".knob-reg_strength").count() == 1
    readout = "() => Bokeh.documents[0].get_model_by_name('coverage-readout').text"
    wait_until(lambda: "modes covered</b>" in page.evaluate(readout) and page.evaluate(readout).endswith("/ 8"),
               60, 0.1, "the modes-covered readout")
    page.wait_for_timeout(500)
    assert errors == []


def test_the_frame_tick_does_not_mark_the_page_busy(page, lab_url):
    """The render tick runs ~30 times a second: as a background callback it leaves Panel's busy
    state alone (its bookkeeping took about half of the tick's time on the event loop), while the
    frames still arrive."""
    import panel as pn
    open_lab(page, lab_url)
    page.evaluate(COUNT_FRAMES)
    changes = []
    watcher = pn.state.param.watch(lambda e: changes.append(e.new), "_busy_counter")
    try:
        wait_until(lambda: page.evaluate("() => window.__frames") >= 20, 60, 0.1, "20 frames in the page")
    finally:
        pn.state.param.unwatch(watcher)
    assert changes == []


def test_regulariser_slider_changes_the_running_simulation(page, lab_url):
    """Key press on the γ slider -> the worker's state carries the new γ, in the same run. It waits
    on that event (generously: a loaded machine delays the browser itself), never on a clock."""
    _, worker = open_lab(page, lab_url)
    handle = page.locator(".knob-reg_strength .noUi-handle")
    t_before = worker.steps_done
    old = worker.hyper["reg.strength"]
    handle.focus()
    handle.press("ArrowRight")
    wait_until(lambda: worker.hyper["reg.strength"] != old, 60, 0.02, "the new γ in the simulation")
    assert worker.hyper["reg.strength"] > old
    assert worker.steps_done > t_before and worker.running                          # same run, still going
    wait_until(lambda: shows(page, "applied live"), 60, 0.1, "the 'applied live' message")


def test_play_pause_step_reset(page, lab_url):
    _, worker = open_lab(page, lab_url)
    page.get_by_role("button", name="Pause").click()
    wait_until(lambda: not worker.running, 5, 0.05, "paused")
    n = wait_until(lambda: _steady(worker), 5, 0.05, "worker idle")
    page.wait_for_timeout(300)
    assert worker.steps_done == n
    page.get_by_role("button", name="Step").click()
    wait_until(lambda: worker.steps_done == n + 1, 5, 0.05, "one step")
    wait_until(lambda: _shown_step(page) not in ("", "0"), 5, 0.05, "the counter")
    page.get_by_role("button", name="Reset").click()
    wait_until(lambda: _shown_step(page) == "0", 5, 0.05, "the counter back at step 0")
    page.get_by_role("button", name="Play").click()
    wait_until(lambda: worker.running and worker.steps_done > n + 20, 10, 0.05, "running again")
    wait_until(lambda: int(_shown_step(page) or 0) > 0, 5, 0.05, "the counter moving")


def _steady(worker):
    n = worker.steps_done
    time.sleep(0.15)
    return n if worker.steps_done == n else None


def _shown_step(page) -> str:
    """The step counter as the page shows it."""
    return page.evaluate("() => Bokeh.documents[0].get_model_by_name('step-counter').text")\
        .split("</b>")[-1].strip().replace(",", "")


def test_a_shared_url_restores_the_knobs(page, lab_url, context):
    _, worker = open_lab(page, lab_url + "?preset=collapse&reg.strength=0.5&seed=7&particles=40")
    cfg, hyper = worker.cfg, worker.hyper
    assert (cfg["seed"], cfg["particles"], cfg["kernel.ratio"]) == (7, 40, 0.9)
    assert hyper["reg.strength"] == pytest.approx(0.5)
    assert page.locator(".knob-reg_strength .bk-slider-title").inner_text().endswith(": 0.5")
    page.locator(".knob-disc_activation select").select_option("tanh")
    href = "() => window.location.href"
    wait_until(lambda: "disc.activation=tanh" in page.evaluate(href), 10, 0.05, "the knob in the address bar")
    shared = page.evaluate(href)
    other = context.new_page()
    _, w2 = open_lab(other, shared)
    assert {k: w2.cfg[k] for k in ("seed", "particles", "kernel.ratio", "disc.activation", "reg.strength")} == \
        {"seed": 7, "particles": 40, "kernel.ratio": 0.9, "disc.activation": "tanh", "reg.strength": 0.5}
    other.close()


def test_the_address_bar_holds_the_full_setting_from_the_first_screen(page, lab_url):
    """Opened with a partial link, the page writes the whole setting it runs into the address
    bar at once, before any change: a link copied from the first screen reproduces it."""
    open_lab(page, lab_url + "?lesson=coupling&step=1")
    search = "() => window.location.search"
    wait_until(lambda: "preset=ring8" in page.evaluate(search), 60, 0.1, "the full query in the address bar")
    assert "lesson=coupling" in page.evaluate(search) and "step=1" in page.evaluate(search)


def test_bad_url_parameter_and_bad_upload_show_messages_and_keep_running(page, lab_url, tmp_path):
    _, worker = open_lab(page, lab_url + "?reg.strength=-4&particles=lots")
    wait_until(lambda: shows(page, "out of range"), 10, 0.1, "the URL error message")
    assert worker.cfg["particles"] == 64
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,oops\n")
    page.locator("input[type=file]").set_input_files(str(bad))
    wait_until(lambda: shows(page, "kept the running simulation"), 10, 0.1, "the upload error message")
    n = worker.steps_done
    wait_until(lambda: worker.steps_done > n + 10 and worker.cfg["target.kind"] == "ring", 10, 0.05, "still running")


def test_points_drawn_on_the_canvas_become_the_target(page, lab_url):
    _, worker = open_lab(page, lab_url)
    page.locator("button.card-header", has_text="Your own target").click()
    canvas = wait_until(lambda: page.locator(".draw-target canvas").count() and page.locator(".draw-target canvas")
                        .first, 10, 0.1, "the drawing canvas")
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box = canvas.bounding_box()
    for fx, fy in [(0.3, 0.3), (0.7, 0.3), (0.5, 0.75)]:
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.wait_for_timeout(400)                    # separate taps, not a double tap
    drawn = "() => Bokeh.documents[0].get_model_by_name('drawn').data.x.length"
    wait_until(lambda: page.evaluate(drawn) == 3, 10, 0.1, "three drawn points")
    page.get_by_role("button", name="Use drawn points").click()
    wait_until(lambda: worker.cfg["target.kind"] == "file" and worker.scene.n_modes == 3, 10, 0.05,
               "the drawn points as the target")
    wait_until(lambda: shows(page, "your drawn points"), 5, 0.1, "the reset message")


def test_ten_sessions_opened_and_closed_leave_no_worker(context, lab_url):
    """Two rounds of five tabs, each tab's simulation seen running, then every tab closed."""
    from app.lab.worker import LIVE
    for _ in range(2):
        before = last_id()
        pages = [context.new_page() for _ in range(5)]
        for p in pages:
            p.goto(lab_url, wait_until="commit")
        wait_until(lambda: len([w for w in list(LIVE) if w.id > before and w.steps_done > 0]) == 5, 120, 0.2,
                   "five sessions simulating")
        for p in pages:
            p.close()
    wait_until(lambda: not worker_threads(), 45, 0.2, "all simulation workers stopped")
    assert not [w for w in list(LIVE) if w.alive]


METER = "(name) => { const d = Bokeh.documents[0]; const f = d.get_model_by_name('meter-' + name);" \
        " const s = d.get_model_by_name('meters'); return [f.visible, Array.from(s.data.ct_forward).length] }"


def test_ct_costs_meter_shows_for_conditional_transport_only(page, lab_url):
    _, worker = open_lab(page, lab_url + "?disc.kind=ct")
    assert worker.cfg["disc.kind"] == "ct"
    wait_until(lambda: page.evaluate(METER, "ct")[1] > 0, 60, 0.1, "CT costs streaming into the page")
    assert page.evaluate(METER, "ct")[0] and not page.evaluate(METER, "approx")[0]
    wait_until(lambda: shows(page, "Conditional transport (Zheng & Zhou 2021)."), 60, 0.1, "the CT meter's text")
    page.locator(".knob-disc_kind select").select_option("mlp")
    wait_until(lambda: page.evaluate(METER, "approx")[0] and not page.evaluate(METER, "ct")[0], 60, 0.1,
               "the approximability meter instead")
