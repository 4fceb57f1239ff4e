"""The fuzz harness of the command line: every bad input gets exit code 2 and ONE line on
stderr, never a traceback.

Cases are generated from the knob table (`dynamics.knobs.KNOBS`): every knob × bad values of
its kind (wrong type, out of range, huge integers, nan/inf, empty, ...) through three routes,
`--set`, a JSON `--config` and a TOML sweep spec's [set] table, so a knob added later is fuzzed
without writing a case. Then every flag of `effgan run` with bad values, malformed `--set`,
contradictory options, oversized configs and hostile files (a FIFO, /dev/zero, a deep nest).
The CLI runs in-process (`app.cli.main`); a handful of cases also run as real processes.
A bad input that is accepted reaches a guard instead of a simulation and fails its case.

The session prints the number of cases per category and how many were answered.
"""
from __future__ import annotations

import collections
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dynamics.run
import app.cli_sweep
from app.cli import main
from dynamics.knobs import KNOBS, ConfigError, Knob, parse_assignment

HUGE = int("9" * 400)
NO_JSON = object()          # a bad value that has no JSON/TOML form in this route
CASES: collections.Counter = collections.Counter()
ANSWERED: collections.Counter = collections.Counter()


class Accepted(Exception):
    """A bad input got through every check: the run would have started."""


@pytest.fixture(autouse=True)
def guard(monkeypatch):
    """Instead of simulating: build and init (their checks count), then fail the case."""
    def simulate(cfg, members=None, **kw):
        from dynamics.engine import build
        build(cfg).init(members)
        raise Accepted(f"accepted: {cfg}")

    def execute(spec, args, resume=False):
        raise Accepted(f"sweep accepted: {spec.config}")
    monkeypatch.setattr(dynamics.run, "simulate", simulate)
    monkeypatch.setattr(app.cli_sweep, "execute", execute)


class Summary:
    """A plugin registered by the module: the counts go into pytest's terminal summary."""

    def pytest_terminal_summary(self, terminalreporter):
        total, ok = sum(CASES.values()), sum(ANSWERED.values())
        terminalreporter.write_line(f"bad input: {ok} of {total} cases answered with one line and exit 2")
        for cat, n in sorted(CASES.items()):
            terminalreporter.write_line(f"  {cat:<12} {ANSWERED[cat]:>4} of {n:>4}")


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    if not request.config.pluginmanager.has_plugin("effgan-bad-input"):
        request.config.pluginmanager.register(Summary(), "effgan-bad-input")


def bad_values(k: Knob) -> list[tuple[str, str | None, object]]:
    """(label, text for --set or None, value for JSON/TOML or NO_JSON) of k's kind."""
    out = [("empty", "", ""), ("list", None, [1]), ("table", None, {"a": 1}), ("null", None, None)]
    if k.kind in (int, float):
        lo, hi = k.bounds
        out += [("word", "many", "many"), ("nan", "nan", math.nan), ("inf", "inf", math.inf),
                ("-inf", "-inf", -math.inf), ("huge", "9" * 400, HUGE), ("-huge", "-" + "9" * 400, -HUGE),
                ("digits5000", "9" * 5000, NO_JSON), ("e400", "1e400", NO_JSON), ("bool", None, True),
                ("below", str(lo - (abs(lo) + 1)), lo - (abs(lo) + 1)), ("above", str(hi * 10 + 1), hi * 10 + 1)]
        if k.kind is int:
            out += [("fraction", "1.5", 1.5), ("hex", "0x10", NO_JSON), ("tiny-exp", "1e-3", 1e-3)]
    elif k.kind is bool:
        out += [("word", "maybe", "maybe"), ("number", "2", 2), ("long", "x" * 10_000, "x" * 10_000)]
    elif k.allowed() is not None:
        out += [("unknown", "nope", "nope"), ("number", None, 3), ("nul", "\x00", "\x00"),
                ("long", "x" * 10_000, "x" * 10_000), ("case", k.default.upper() + "X", k.default.upper() + "X")]
    else:                                           # a free string: a path
        out += [("number", None, 3), ("missing", "no-such-file.csv", "no-such-file.csv"),
                ("directory", ".", "."), ("device", "/dev/zero", "/dev/zero")]
        out = [c for c in out if c[0] != "empty" or k.name == "target.file"]
    return out


def enabling(k: Knob) -> dict:
    """The setting under which k has an effect (so its value is read, not refused as unused)."""
    return {} if k.applies is None else {k.applies[0]: k.applies[1][0]}


KNOB_CASES = [(k.name, *c) for k in KNOBS.values() for c in bad_values(k)]


def answered(capsys, argv, category: str, names: tuple[str, ...] = ()) -> str:
    """Run the CLI; assert exit 2, one line on stderr naming one of `names`; return the line."""
    CASES[category] += 1
    try:
        rc = main(argv)
    except SystemExit as e:                       # argparse
        rc = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (rc, err[:2000])
    assert not names or any(n in lines[0] for n in names), lines[0][:300]
    ANSWERED[category] += 1
    return lines[0]


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (int, str)):
        return json.dumps(v) if isinstance(v, str) else str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(a)} = {_toml(b)}" for a, b in v.items()) + "}"


SET_CASES = [c for c in KNOB_CASES if c[2] is not None]
JSON_CASES = [c for c in KNOB_CASES if c[3] is not NO_JSON]


@pytest.mark.parametrize("key,label,text,value", SET_CASES, ids=[f"set-{c[0]}-{c[1]}" for c in SET_CASES])
def test_set(capsys, key, label, text, value):
    extra = [a for kv in enabling(KNOBS[key]).items() for a in ("--set", f"{kv[0]}={kv[1]}")]
    answered(capsys, ["run", *extra, "--set", f"{key}={text}"], "set", (key, "--set"))


@pytest.mark.parametrize("key,label,text,value", JSON_CASES, ids=[f"json-{c[0]}-{c[1]}" for c in JSON_CASES])
def test_json_config(capsys, tmp_path, key, label, text, value):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({**enabling(KNOBS[key]), key: value}))
    answered(capsys, ["run", "--config", str(f)], "json", (key,))


TOML_CASES = [c for c in KNOB_CASES if c[3] is not NO_JSON and c[3] is not None
              and c[2] not in ("no-such-file.csv", ".", "/dev/zero", "")]      # a path is read when it runs


@pytest.mark.parametrize("key,label,text,value", TOML_CASES, ids=[f"toml-{c[0]}-{c[1]}" for c in TOML_CASES])
def test_toml_spec(capsys, tmp_path, key, label, text, value):
    f = tmp_path / "s.toml"
    table = {**enabling(KNOBS[key]), key: value}
    f.write_text('[set]\n' + "".join(f"{json.dumps(a)} = {_toml(b)}\n" for a, b in table.items())
                 + '[axes]\n"lr.gen" = [0.1]\n')
    answered(capsys, ["sweep", str(f), "--out", str(tmp_path / "out")], "toml", (key,))


FLAG_CASES = [(flag, v) for flag, values in {
    "--seed": ["abc", "-1", str(2**31), "9" * 400, "", "1.5", "nan", "0x1"],
    "--steps": ["abc", "-1", "100000001", "9" * 400, "", "nan", "1e400"],
    "--device": ["tpu", "", "CPU", "x" * 5000],
    "--seeds": ["1,,2", "", ",", "a", "1,x", "9" * 400, "-1", "1;2", "1.5", "1,", " , ", "1," * 100_001],
    "--preset": ["", "nope", "../ring8", "ring8.json", "\x00", "x" * 5000],
    "--out": ["x.txt", "/nonexistent-dir/x.nc", "."],
}.items() for v in values]


@pytest.mark.parametrize("flag,value", FLAG_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(FLAG_CASES)])
def test_flag(capsys, flag, value):
    answered(capsys, ["run", "--steps", "1", flag, value] if flag != "--steps" else ["run", flag, value],
             "flags", (flag, flag.strip("-") + ":", "seed:", "steps:", "device:"))


MALFORMED_SET = ["=1", " =", "=", "", "noequals", "particles", "particles==3", " particles = ", "a.b=1",
                 "\x00=1", "x" * 10_000 + "=1", "particles=1=2", "PARTICLES=3"]


@pytest.mark.parametrize("text", MALFORMED_SET, ids=[f"malformed-{i}" for i in range(len(MALFORMED_SET))])
def test_malformed_set(capsys, text):
    key = text.partition("=")[0].strip()            # a known key may be named alone; anything else names --set
    answered(capsys, ["run", "--set", text], "malformed", ("--set",) + ((key + ":",) if key in KNOBS else ()))


CONTRADICTIONS = {
    "seed-flag-vs-set": (["--seed", "3", "--set", "seed=4"], "--seed"),
    "steps-flag-vs-set": (["--steps", "3", "--set", "steps=4"], "--steps"),
    "set-twice": (["--set", "kernel.ratio=0.1", "--set", "kernel.ratio=0.2"], "kernel.ratio"),
    "seeds-and-seed": (["--seeds", "1,2", "--seed", "3"], "--seeds"),
    "target-file-without-kind": (["--set", "target.file=x.csv"], "target.file"),
    "unused-knob": (["--set", "ct.rho=0.3"], "ct.rho"),
    "grid-not-square": (["--set", "target.kind=grid", "--set", "target.modes=5"], "target.modes"),
    "pair-init": (["--set", "init.kind=pair"], "init.kind"),
    "budget-particles": (["--set", "particles=10000000"], "particles"),
    "budget-width": (["--set", "disc.width=100000", "--set", "disc.depth=3"], "disc.width"),
    "budget-target": (["--set", "target.modes=10000", "--set", "target.dim=100000"], "target.modes"),
    "budget-seeds": (["--set", "particles=1000000", "--seeds", ",".join(map(str, range(1, 200)))], "particles"),
}


@pytest.mark.parametrize("name", CONTRADICTIONS)
def test_contradiction_or_size(capsys, name):
    args, named = CONTRADICTIONS[name]
    answered(capsys, ["run", *args], "combination", (named,))


def _files(tmp_path) -> dict[str, object]:
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(2 << 20)                          # 2 MiB, sparse
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    contents = {"missing": None, "directory": ".", "empty": "", "not-json": "{", "list": "[1]", "number": "1",
                "null": "null", "unknown-key": '{"kernal.ratio": 0.1}', "nested-list": "[" * 100_000,
                "nested-object": '{"a":' * 50_000, "nested-inside-limit": '{"particles": ' + "[" * 60 + "]" * 60 + "}",
                "digits5000": '{"particles": ' + "9" * 5000 + "}", "non-utf8": b"\xff\xfe{}",
                "nul-key": '{"\\u0000": 1}', "long-key": json.dumps({"x" * 100_000: 1})}
    out: dict[str, object] = {"big": big, "fifo": fifo, "dev-zero": zero}
    for name, text in contents.items():
        if text is None:
            out[name] = tmp_path / "nope.json"
        elif text == ".":
            out[name] = tmp_path
        else:
            p = tmp_path / f"{name}.json"
            p.write_bytes(text if isinstance(text, bytes) else text.encode())
            out[name] = p
    return out


FILE_NAMES = ["missing", "directory", "empty", "not-json", "list", "number", "null", "unknown-key", "nested-list",
              "nested-object", "nested-inside-limit", "digits5000", "non-utf8", "nul-key", "long-key", "big", "fifo",
              "dev-zero"]


@pytest.mark.parametrize("name", FILE_NAMES)
def test_config_file(capsys, tmp_path, name):
    path = _files(tmp_path)[name]
    answered(capsys, ["run", "--config", str(path)], "config-file", ("--config", path.name, "particles"))


@pytest.mark.parametrize("name", [n for n in FILE_NAMES if n not in ("unknown-key", "nested-inside-limit",
                                                                     "digits5000", "nul-key", "long-key", "empty")])
def test_spec_file(capsys, tmp_path, name):
    path = _files(tmp_path)[name]
    if name in ("nested-list", "nested-object"):
        path.write_text("a = " + "[" * 100_000)
    answered(capsys, ["sweep", str(path), "--out", str(tmp_path / "out")], "spec-file", ("SPEC", "spec field"))


OTHER = {"unknown-command": ["frobnicate"], "unknown-flag": ["run", "--bogus"], "missing-value": ["run", "--seed"],
         "set-without-value": ["run", "--set"], "ambiguous": ["run", "--se", "1"]}


@pytest.mark.parametrize("name", OTHER)
def test_other_usage_errors(capsys, name):
    answered(capsys, OTHER[name], "usage")


# ---------------------------------------------------------------- properties (hypothesis)
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=60),
                      st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(KNOBS)), ANY_VALUE)
def test_any_value_is_accepted_or_refused_in_one_line(key, value):
    try:
        KNOBS[key].coerce(value)
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(key) and len(msg) < 600, msg


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_assignment_is_accepted_or_refused_in_one_line(text):
    try:
        parse_assignment(text)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(("--set", tuple(KNOBS)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([RuntimeError, MemoryError, OSError, ValueError]), st.text(max_size=400))
def test_any_failure_is_quoted_in_one_line(kind, text):
    """knobs.one_line, what the lab shows for a failure: `Type: first line`, at most 200
    characters of it, the bare type for an empty message; a ConfigError as it is."""
    from dynamics.knobs import first_line, one_line
    msg, line = one_line(kind(text)), first_line(kind(text))
    assert not any(c in msg for c in "\n\r") and len(line) <= 200 and msg.startswith(kind.__name__)
    assert msg == (f"{kind.__name__}: {line}" if line else kind.__name__) and line in text
    assert one_line(ConfigError("disc.width: 0 is out of range; allowed 1 to 100000")).startswith("disc.width: 0")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(KNOBS)), st.text(alphabet="0123456789.e-+naifx ,", max_size=12))
def test_cli_set_with_random_text_runs_or_exits_2(capsys, key, text):
    try:
        rc = main(["run", *[a for kv in enabling(KNOBS[key]).items() for a in ("--set", f"{kv[0]}={kv[1]}")],
                   "--set", f"{key}={text}"])
    except Accepted:
        return
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


# ---------------------------------------------------------------- real processes
@pytest.mark.parametrize("args", [["run", "--set", "particles=" + "9" * 400], ["run", "--set", "=1"],
                                  ["run", "--seed", "abc"], ["run", "--seeds", "1,,2"],
                                  ["run", "--set", "disc.width=100000", "--set", "disc.depth=3"]],
                         ids=["huge-int", "no-key", "seed-abc", "seeds-empty-item", "budget"])
@pytest.mark.slow
def test_as_a_real_process(args):
    p = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr


@pytest.mark.slow
def test_a_fifo_config_does_not_hang_a_real_process(tmp_path):
    fifo = tmp_path / "c.json"
    os.mkfifo(fifo)
    p = subprocess.run([sys.executable, "-m", "app.cli", "run", "--config", str(fifo)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "is a FIFO" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
