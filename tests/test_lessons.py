"""Guided lessons (`app.lab.lessons`): every step resolves and sets its knobs in the lab, the URL
carries lesson and step both ways, bad ones are one-line messages, and every answer's claim holds
on a headless run of the step's own settings."""
from __future__ import annotations

import pytest

pytest.importorskip("panel")

from app.lab import knobui, lessons  # noqa: E402
from app.lab.state import ATTR, KEY, Lab  # noqa: E402
from dynamics import presets, theory  # noqa: E402
from dynamics.knobs import KNOBS, ConfigError, resolve  # noqa: E402

STEPS = [(les.name, i) for les in lessons.LESSONS.values() for i in range(1, len(les.steps) + 1)]


def test_there_are_five_lessons_each_a_sequence_of_complete_steps():
    assert len(lessons.LESSONS) >= 5
    for les in lessons.LESSONS.values():
        assert les.steps and les.title
        for st in les.steps:
            assert st.text and st.watch and st.question and st.answer and st.checks
            assert all(c.op in lessons.OPS for c in st.checks)


@pytest.mark.parametrize("name, i", STEPS)
def test_each_step_resolves_within_the_lab_bounds(name, i):
    st = lessons.step_of(name, i)
    cfg = st.config()
    assert st.preset in presets.names()
    for k, v in st.knobs.items():
        assert k in ATTR, f"{k} is not a knob the lab shows"
        assert knobui.coerce(KNOBS[k], v) == cfg[k]
    from dynamics.run import simulate                     # the checks name real final values
    names = set(simulate({**cfg, "steps": 2, "record.every": 1}).final) | set(lessons.DERIVED)
    assert {c.metric for c in st.checks} <= names


@pytest.mark.parametrize("name, i", STEPS)
def test_a_step_sets_its_knobs_in_the_lab(name, i):
    lab = Lab()
    assert lab.open_lesson(name, i)
    cfg = lessons.step_of(name, i).config()
    assert lab.preset == lessons.step_of(name, i).preset
    assert {k: getattr(lab, a) for a, k in KEY.items()} == {k: cfg[k] for k in KEY.values()}
    assert (lab.lesson, lab.lesson_step) == (name, i) and lab.message.startswith("lesson ")
    assert lab.speed == (lessons.step_of(name, i).speed or Lab.param.speed.default)


def test_next_and_back_walk_the_steps_and_stop_at_the_ends():
    lab = Lab()
    lab.open_lesson("coupling", 1)
    assert lab.kernel_ratio == 0.0 and not lab.lesson_move(-1)
    assert lab.lesson_move(+1) and lab.lesson_step == 2 and lab.kernel_ratio == lessons.RIGID
    assert not lab.lesson_move(+1) and lab.lesson_step == 2
    assert lab.lesson_move(-1) and lab.lesson_step == 1 and lab.kernel_ratio == 0.0
    lab.open_lesson("damping", 1)
    assert lab.speed == lessons.SLOW and lab.lesson_move(+1) and lab.speed == lessons.SLOW
    lab.open_lesson("transport", 1)
    assert lab.speed == Lab.param.speed.default
    lab.close_lesson()
    assert lab.lesson == "" and "lesson" not in lab.query()


@pytest.mark.parametrize("name, i", [("frequency", 2), ("damping", 3), ("transport", 1)])
def test_the_url_carries_lesson_and_step_both_ways(name, i):
    lab = Lab()
    lab.open_lesson(name, i)
    q = lab.query()
    assert (q["lesson"], q["step"]) == (name, str(i))
    other = Lab()
    assert other.apply_query(q) == []
    assert (other.lesson, other.lesson_step) == (name, i)
    assert other.knob_values() == lab.knob_values() and other.preset == lab.preset
    plain = Lab()
    plain.apply_query({"lesson": name, "step": str(i)})          # a hand-written link: the step's own speed
    assert plain.speed == lab.speed and plain.knob_values() == lab.knob_values()
    # a knob the user changed on top of the step survives the link too
    lab.seed = 5
    again = Lab()
    again.apply_query(lab.query())
    assert again.seed == 5 and again.lesson_step == i


@pytest.mark.parametrize("query, says", [
    ({"lesson": "nope"}, "lesson: 'nope' is not a lesson; allowed independent"),
    ({"lesson": "coupling", "step": "9"}, "step: 9 is out of range; allowed 1 to 2 for the lesson coupling"),
    ({"lesson": "coupling", "step": "two"}, "step: two is out of range; allowed 1 to 2"),
    ({"step": "1"}, "lesson: '' is not a lesson"),
])
def test_a_bad_lesson_or_step_is_a_one_line_message(query, says):
    lab = Lab()
    errors = lab.apply_query({"preset": "ring8", **query})
    assert len(errors) == 1 and says in errors[0] and "\n" not in lab.message
    assert lab.lesson == "" and lab.preset == "ring8"
    assert not lab.open_lesson(query.get("lesson", ""), query.get("step", 1))
    assert lab.message_kind == "danger" and lab.lesson == ""


def test_the_texts_quote_the_theory():
    st = lessons.step_of("damping", 2)
    assert f"{lessons.GAMMA_C:.3g}" in st.text
    assert lessons.GAMMA_C == pytest.approx(theory.gamma_c(st.config()), rel=1e-2)
    assert st.config()["reg.strength"] == pytest.approx(theory.gamma_c(st.config()), rel=1e-2)
    coupled = lessons.step_of("coupling", 2)
    hi, lo = theory.kernel_levels(coupled.config())
    assert f"{hi:.3g}" in coupled.text and f"{lo:.3g}" in coupled.text


def test_the_spectrum_shows_the_two_levels_the_coupling_lesson_names():
    from dynamics.engine import build
    cfg = lessons.step_of("coupling", 2).config()
    sim = build(cfg)
    s = sim.init()
    levels, mult = sim.kernel.spectrum(s.kernel, s.hyper)
    got = sorted(zip(levels[0].tolist(), mult[0].tolist()))
    hi, lo = theory.kernel_levels(cfg)
    assert got[0][0] == pytest.approx(lo, rel=1e-5) and got[-1][0] == pytest.approx(hi, rel=1e-5)
    assert got[-1][1] == 1 and got[0][1] == cfg["particles"] - 1


@pytest.mark.parametrize("name, i", STEPS)
def test_each_answer_holds_on_a_headless_run(name, i):
    st = lessons.step_of(name, i)
    assert lessons.failures(st, lessons.run(st)) == []


def test_a_check_that_does_not_hold_is_reported():
    st = lessons.step_of("independent", 1)
    wrong = lessons.Step(**{**st.__dict__, "checks": (lessons.Check("modes_covered", "<=", 3),), "steps": 300})
    assert lessons.failures(wrong, lessons.run(wrong))[0].startswith("modes_covered = [")


def test_teach_mode_shows_plain_words_beside_every_key_it_shows():
    shown = [k for k in knobui.SHOWN if not k.advanced]
    for k in shown:
        assert knobui.shown_label(k, True).endswith(f" · {k.name}") and k.name in knobui.PLAIN
        assert knobui.shown_label(k, False) == knobui.label(k)
    assert set(knobui.PLAIN) <= set(KNOBS)
