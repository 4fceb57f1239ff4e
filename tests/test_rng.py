"""The one table of random streams and counter ranges (`dynamics.rng.STREAMS`, `COUNTERS`)."""
import ast
import itertools
from pathlib import Path

import pytest
import torch

from dynamics import rng
from dynamics.engine import build
from dynamics.knobs import KNOBS, resolve

ROOT = Path(__file__).resolve().parents[1]
DRAWS = {"bits", "uniform", "normal"}          # rng's counter-based draws: (key, counter, stream, ...)


def test_counter_ranges_are_pairwise_disjoint_and_stream_ids_distinct():
    for (a, ra), (b, rb) in itertools.combinations(rng.COUNTERS.items(), 2):
        assert ra.start < ra.stop and rb.start < rb.stop
        assert ra.stop <= rb.start or rb.stop <= ra.start, f"{a} and {b} overlap"
    assert len(set(rng.STREAMS.values())) == len(rng.STREAMS)


def test_the_ranges_hold_every_counter_a_valid_config_reaches():
    steps, updates, seed = KNOBS["steps"].bounds[1], KNOBS["disc.steps"].bounds[1], KNOBS["seed"].bounds[1]
    assert steps * updates + updates <= rng.COUNTERS["steps"].stop            # t·disc.steps + k
    assert rng.COUNTERS["fixed"].start + seed < rng.COUNTERS["fixed"].stop
    for name in ("meter_test", "meter_null"):                                # start + t
        c = rng.COUNTERS[name]
        assert c.start + steps < c.stop


def _draw_calls():
    """(file, line, call) of every rng draw outside rng.py, in dynamics/ and app/."""
    for path in sorted([*ROOT.glob("dynamics/**/*.py"), *ROOT.glob("app/**/*.py")]):
        if path.name == "rng.py" and path.parent.name == "dynamics":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DRAWS \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "rng":
                yield path.relative_to(ROOT), node.lineno, node


def test_every_stream_in_the_code_is_named_from_the_table():
    calls = list(_draw_calls())
    assert len(calls) >= 3                                   # targets (2) and the engine's mix
    for path, line, call in calls:
        stream = call.args[2] if len(call.args) > 2 else None
        assert stream is not None and not isinstance(stream, ast.Constant), \
            f"{path}:{line}: a stream id written as a number; name it in dynamics.rng.STREAMS"


@pytest.fixture
def recorded(monkeypatch):
    seen = []
    bits = rng.bits

    def spy(key, counter, stream, n):
        seen.append((int(counter), stream))
        return bits(key, counter, stream, n)
    monkeypatch.setattr(rng, "bits", spy)
    return seen


def _where(counter: int) -> list[str]:
    return [name for name, c in rng.COUNTERS.items() if c.start <= counter < c.stop]


def test_every_draw_at_run_time_uses_a_declared_stream_and_range(recorded):
    """A run with every kind of draw (real batches, wgan_gp mixes, pseudo-supervision pairs,
    a reference sample, a torch-sampled target, the lab meters' batches) draws only from the
    table."""
    from app.lab import meters
    sim = build(resolve({"particles": 8, "disc.width": 4, "disc.steps": 2, "reg.kind": "wgan_gp",
                         "ps.weight": 0.5}))
    s = sim.init()
    for _ in range(3):
        s = sim.step(s)
    sim.target.sample_fixed(5, seed=7)
    meters.fresh_batch(sim, s, 4)
    meters.fresh_batch(sim, s, 4, meters.NULL_COUNTER)
    sphere = build(resolve({"target.kind": "sphere_pair", "init.kind": "pair", "particles": 8, "disc.width": 4}))
    sphere.step(sphere.init())
    dropout = build(resolve({"disc.kind": "mlp_layers", "disc.widths": "4,4", "disc.dropout": 0.5, "particles": 8}))
    dropout.step(dropout.init())
    ranges = set()
    for counter, stream in recorded:
        where = _where(counter)
        assert len(where) == 1, f"counter {counter} (stream {stream}) lies in {where or 'no declared range'}"
        ranges.add(where[0])
    assert ranges == set(rng.COUNTERS)
    assert {stream for _, stream in recorded} == set(rng.STREAMS.values())


def test_the_table_keeps_the_draws_bitwise_the_same():
    """Values of the table are part of every saved result: the numbers of a draw at a counter
    of each range, recorded before the table existed."""
    key = rng.member_keys([1])
    got = [int(rng.bits(key, c.start, s, 1)[0, 0]) for c in rng.COUNTERS.values() for s in rng.STREAMS.values()]
    ref = [int(rng.bits(key, start, s, 1)[0, 0]) for start in (0, 2**40, 2**41, 2**43, 2**44) for s in (11, 13, 21, 23)]
    assert got == ref
    assert torch.equal(rng.uniform(key, 5, rng.STREAMS["mix"], (3,)), rng.uniform(key, 5, 21, (3,)))
