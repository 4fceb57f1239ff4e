"""Fuzzing the lab's URL parameters, generated from the knob table: every knob the lab shows
gets every kind of bad value, set the way a link sets it (`Lab.apply_query`, as `app.page`
does with the request's arguments). Each must give one message line naming the knob and
leave the knob at its preset's value; nothing may raise. A knob added later is fuzzed here
without anyone writing a case."""
from __future__ import annotations

import math

import pytest

pytest.importorskip("panel")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from app.lab import knobui  # noqa: E402
from app.lab.state import ATTR, Lab  # noqa: E402
from dynamics import presets  # noqa: E402
from dynamics.knobs import KNOBS, ConfigError  # noqa: E402

SCRIPT = "<script>alert(1)</script>"
COMMON = {"script": SCRIPT, "img": '<img src=x onerror="alert(1)">', "empty": "", "non-utf8": b"\xff\xfe",
          "huge": "9" * 400, "-huge": "-" + "9" * 400, "too-long-int": "9" * 5000}


def bad_values(k) -> dict[str, object]:
    """Named bad values of one knob, from its declaration."""
    out = dict(COMMON)
    if k.allowed() is not None:
        out["not-a-choice"] = "no_such_" + k.name
    elif k.kind is bool:
        out["not-a-bool"] = "maybe"
    elif k.kind in (int, float):
        out |= {"wrong-type": "abc", "nan": "nan", "inf": "inf", "-inf": "-inf", "1e400": "1e400"}
        lo, hi = k.bounds
        if lo is not None:
            out["below"] = str(lo - 1)
        if hi is not None:
            out["above"] = str(int(hi) + 1 if k.kind is int else hi * 10 + 1)
        if k.lab is not None:
            out["over-lab-limit"] = str(int(k.lab[1]) + 1 if k.kind is int else k.lab[1] * 2)
        if k.kind is int:
            out["fraction"] = "1.5"
    return out


CASES = [(k.name, why, v) for k in knobui.SHOWN for why, v in bad_values(k).items()]

def assert_rejected(lab: Lab, errors: list[str], key: str) -> None:
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{key or '(an empty name)'}:"), errors
    assert "allowed" in errors[0] and "\n" not in errors[0], errors
    assert lab.message_kind == "danger" and lab.message.startswith("ignored in the link: ")
    assert "\n" not in lab.message


@pytest.mark.parametrize("key, why, value", CASES, ids=[f"{k}-{w}" for k, w, _ in CASES])
def test_every_knob_refuses_every_kind_of_bad_value_with_one_line(key, why, value):
    lab = Lab()
    before = getattr(lab, ATTR[key])
    errors = lab.apply_query({key: [value]})
    assert_rejected(lab, errors, key)
    assert getattr(lab, ATTR[key]) == before                      # the knob keeps its value


def test_the_other_url_parameters_and_unknown_keys_are_refused_alike():
    for key, value in [("preset", SCRIPT), ("preset", ""), ("teach", "maybe"), ("speed", "9" * 400),
                       ("speed", "0"), ("speed", b"\xff"), (SCRIPT, "1"), ("", "1"), ("kernel.", "1")]:
        lab = Lab()
        errors = lab.apply_query({key: [value]})
        assert_rejected(lab, errors, key)
        assert (lab.preset, lab.teach, lab.speed) == (presets.DEFAULT, True, 10)


def test_a_huge_unknown_key_or_value_is_quoted_short():
    """A 10,000-character key or value is cut in the message, which stays one short line."""
    for query in [{"k" * 10_000: ["1"]}, {"x" * 10_000: ["v" * 10_000]}]:
        lab = Lab()
        errors = lab.apply_query(query)
        assert len(errors) == 1 and "\n" not in errors[0] and len(errors[0]) < 1000, errors[0][:200]
        assert "(10000 characters)" in errors[0]


def test_a_link_full_of_bad_values_keeps_a_running_session_running():
    lab = Lab(particles=16).start()
    try:
        import time
        end = time.monotonic() + 60
        while lab.worker.steps_done < 3 and time.monotonic() < end:
            time.sleep(0.02)
        cfg = dict(lab.worker.cfg)
        errors = lab.apply_query({k: [bad_values(KNOBS[k])["huge"]] for k in ATTR})
        assert len(errors) == len(ATTR)
        n = lab.worker.steps_done
        while lab.worker.steps_done < n + 5 and time.monotonic() < end:
            time.sleep(0.02)
        lab.take_frame()
        assert lab.worker.steps_done >= n + 5 and lab.worker.error == ""
        assert {k: lab.worker.cfg[k] for k in ATTR} == {k: v for k, v in cfg.items() if k in ATTR} | {"particles": 64}
    finally:
        lab.close()


ANY = st.one_of(st.text(max_size=30), st.binary(max_size=12), st.integers().map(str),
                st.floats(allow_nan=True, allow_infinity=True).map(repr),
                st.integers(min_value=10**20, max_value=10**400).map(str))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(ATTR)), value=ANY)
def test_any_value_is_applied_exactly_or_refused_with_one_line(key, value):
    """Whatever a link holds: either the knob takes exactly the value its declaration (with the
    lab's bounds) parses, or the link's message names the knob and the knob stays put."""
    lab = Lab()
    before = getattr(lab, ATTR[key])
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    try:
        expect = knobui.coerce(KNOBS[key], text)
    except (ConfigError, ValueError, OverflowError):
        expect = None
    if expect is not None and isinstance(expect, float) and not math.isfinite(expect):
        expect = None
    errors = lab.apply_query({key: [value]})
    if expect is None:
        assert_rejected(lab, errors, key)
        assert getattr(lab, ATTR[key]) == before
    else:
        assert errors == [] and getattr(lab, ATTR[key]) == expect
