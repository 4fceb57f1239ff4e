"""Side by side (`app.lab.compare`), headless: the request's parsing and checks, the proposed
values, members of a live-knob compare as one batch equal to their solo runs, structural members
stepped in lockstep, and the Lab's compare state (URL, messages, the running state kept)."""
from __future__ import annotations

import time

import pytest
import torch

pytest.importorskip("panel")

from dynamics import presets  # noqa: E402
from dynamics.engine import build  # noqa: E402
from dynamics.knobs import KNOBS, ConfigError, resolve  # noqa: E402
from app.lab import compare, lessons  # noqa: E402
from app.lab.state import Lab  # noqa: E402

CFG = resolve(presets.load(presets.DEFAULT), {"particles": 32})
LIMIT = 256 << 20


def wait_until(fn, timeout=60.0, interval=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if v := fn():
            return v
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# ---------------------------------------------------------------- the request
def test_a_request_parses_and_round_trips():
    req = compare.parse("disc.activation:relu,sigmoid")
    assert req == compare.Request("disc.activation", ("relu", "sigmoid")) and not req.live
    req = compare.parse(" kernel.ratio : 0.1, 0.5 ,0.9")
    assert req.values == (0.1, 0.5, 0.9) and req.live
    assert compare.text(req) == "kernel.ratio:0.1,0.5,0.9"
    assert compare.parse(compare.text(req)) == req


@pytest.mark.parametrize("raw, says", [
    ("disc.activation:relu", "1 value of disc.activation; allowed 2 to 4"),
    ("disc.activation:relu,sigmoid,tanh,silu,leaky_relu", "5 values of disc.activation; allowed 2 to 4"),
    ("disc.activation:relu,relu", "repeat; allowed distinct values"),
    ("disc.activation:relu,cosine", "disc.activation: cosine is not allowed; allowed one of relu"),
    ("kernel.ratio:0.1,1.5", "kernel.ratio: 1.5 is out of range; allowed numbers in [0, 1]"),
    ("particles:64,50000", "particles: 50000 is over the lab's limit"),
    ("seed:1,2", "'seed' cannot be compared; allowed particles"),
    ("nope:1,2", "'nope' cannot be compared"),
    ("disc.widths:8,16", "'disc.widths' cannot be compared"),
    ("relu,sigmoid", "is not KEY:VALUE,VALUE"),
    ("target.kind:ring,file", "target.kind = file cannot be compared"),
    ("disc.activation:" + "x," * 400, "characters is too long; allowed at most 300"),
])
def test_a_bad_request_is_one_line_naming_compare(raw, says):
    with pytest.raises(ConfigError) as e:
        compare.parse(raw)
    msg = str(e.value)
    assert msg.startswith("compare: ") and says in msg and "\n" not in msg


def test_proposals_start_from_the_current_value_and_parse_back():
    assert compare.propose("disc.activation", "sigmoid")[0] == "sigmoid"
    assert len(compare.propose("disc.activation", "relu")) == compare.VALUES[1]
    assert compare.propose("kernel.ratio", 0.0) == (0.0, 0.1, 0.9)
    assert compare.propose("lr.disc", 0.01) == (0.001, 0.01, 0.1)
    assert compare.propose("particles", 64) == (32, 64, 128)
    assert "file" not in compare.propose("target.kind", "ring")
    for key in compare.COMPARABLE:          # every comparable knob, at its default: a valid request
        vals = compare.propose(key, KNOBS[key].default)
        assert compare.VALUES[0] <= len(vals) <= compare.VALUES[1], key
        assert compare.parse(compare.text(compare.Request(key, vals))).values == vals, key


def test_a_knob_without_effect_or_too_much_memory_is_refused():
    with pytest.raises(ConfigError, match="compare: kernel.width has no effect with kernel.kind = two_number"):
        compare.Group(compare.parse("kernel.width:0.5,2"), CFG, LIMIT)
    with pytest.raises(ConfigError, match="compare: 2 runs of particles need about .* allowed fewer values"):
        compare.Group(compare.parse("particles:20000,19000"), CFG, 1 << 20)
    with pytest.raises(ConfigError, match="compare: target.modes = 5: target.modes: 5 is not a square"):
        compare.Group(compare.parse("target.modes:4,5"), resolve(CFG, {"target.kind": "grid", "target.modes": 4}),
                      LIMIT)


# ---------------------------------------------------------------- members
def _run(sim, steps, state=None):
    s = sim.init() if state is None else state
    for _ in range(steps):
        s = sim.step(s)
    return s


def test_a_live_knob_compare_is_one_batch_whose_members_equal_their_solo_runs():
    group = compare.Group(compare.parse("kernel.ratio:0.1,0.9"), CFG, LIMIT)
    s = _run(group.build(), 40)
    assert s.batch == 2 and len(group.sims) == 1                       # one simulation, one batch
    for b, r in enumerate((0.1, 0.9)):
        alone = _run(build(resolve(CFG, {"kernel.ratio": r})), 40)
        torch.testing.assert_close(s.x[b], alone.x[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(s.x[0], s.x[1])                          # the knob made a difference
    s = group.sim.set_hyper(s, {"lr.disc": 0.02, "kernel.ratio": 0.5})  # the compared knob stays per member
    assert s.hyper["kernel.ratio"].tolist() == pytest.approx([0.1, 0.9])
    assert s.hyper["lr.disc"].tolist() == pytest.approx([0.02, 0.02])
    again = group.sim.init([{"lr.disc": 0.02, "kernel.ratio": 0.5}])   # a reset keeps the live knobs
    assert again.hyper["kernel.ratio"].tolist() == pytest.approx([0.1, 0.9])
    group.snap(group.sim, s)
    view = group.latest()
    assert [sh.label for sh in view.shots] == ["kernel.ratio = 0.1", "kernel.ratio = 0.9"]
    assert all(0 <= sh.covered <= sh.modes == 8 for sh in view.shots) and view.t == 40


def test_a_structural_compare_steps_one_simulation_per_value_in_lockstep():
    group = compare.Group(compare.parse("disc.activation:relu,sigmoid"), CFG, LIMIT)
    s = _run(group.build(), 30)
    assert len(group.sims) == 2 and s.batch == 1
    group.snap(group.sim, s)
    view = group.latest()
    alone = _run(build(resolve(CFG, {"disc.activation": "sigmoid"})), 30)
    assert torch.equal(group._others[0].x, alone.x) and group._others[0].t == s.t == 30
    assert (view.shots[1].xy == alone.x[0].numpy()).all()
    assert not (view.shots[0].xy == view.shots[1].xy).all()
    group.snap(build(CFG), s)                                          # another build's frame: ignored
    assert group.latest() is view


# ---------------------------------------------------------------- the lab
def test_the_lab_runs_a_compare_from_a_link_and_leaves_it():
    lab = Lab()
    lab.apply_query({"compare": "disc.activation:relu,sigmoid", "particles": "32"})
    assert lab.compare == "disc.activation:relu,sigmoid" and lab.query()["compare"] == lab.compare
    lab.start()
    try:
        view = wait_until(lambda: (lab.take_frame(), lab.group.latest())[1])
        assert [s.label for s in view.shots] == ["disc.activation = relu", "disc.activation = sigmoid"]
        lab.disc_activation = "tanh"                       # the compared knob: refused, runs kept
        assert lab.disc_activation == "relu" and "being compared" in lab.message
        ticket = lab._ticket
        assert not lab.start_compare("disc.activation:relu,nope")
        assert "compare: disc.activation: nope is not allowed" in lab.message and lab._ticket == ticket
        assert lab.compare == "disc.activation:relu,sigmoid"
        group = lab.group
        lab.stop_compare()
        assert lab.compare == "" and "compare" not in lab.query() and lab.group is None
        wait_until(lambda: (lab.take_frame(), lab.worker._sim is not group.sim)[1])     # the single run again
    finally:
        lab.close()


def test_a_bad_compare_in_a_link_is_a_message_and_the_rest_applies():
    lab = Lab()
    errors = lab.apply_query({"compare": "kernel.width:1,2", "lr.disc": "0.02"})
    assert lab.compare == "" and lab.lr_disc == 0.02
    assert errors == ["compare: kernel.width has no effect with kernel.kind = two_number; allowed with "
                      "kernel.kind = rbf"]
    assert "ignored in the link: compare: kernel.width" in lab.message
    lab.close()


def _latest(lab, pred=lambda v: True):
    """The group's newest snapshot once pred holds (frames drained, so loads get noted)."""
    return wait_until(lambda: (lab.take_frame(), (v := lab.group and lab.group.latest()) and pred(v) and v)[1])


def test_knob_changes_during_a_compare_reach_every_member():
    lab = Lab(particles=32)
    lab.start()
    try:
        assert lab.start_compare("kernel.ratio:0.1,0.9") and "members of one batch" in lab.message
        _latest(lab)
        lab.lr_disc = 0.02                                    # live: every member, the compared knob kept
        wait_until(lambda: lab.worker.hyper["lr.disc"] == pytest.approx(0.02))
        assert lab.worker._state.hyper["kernel.ratio"].tolist() == pytest.approx([0.1, 0.9])
        group = lab.group
        lab.disc_activation = "tanh"                          # structural: the group is built again around it
        assert lab.message.startswith("restarts the compared runs") and lab.group is not group
        wait_until(lambda: (lab.take_frame(), lab.worker.cfg["disc.activation"] == "tanh")[1])
        assert lab.worker._state.batch == 2 and lab.compare == "kernel.ratio:0.1,0.9"
        lab.kernel_kind = "rbf"                               # kernel.ratio would mean nothing: refused
        assert lab.kernel_kind == "two_number" and "compare: kernel.ratio has no effect" in lab.message
        lab.open_lesson(next(iter(lessons.LESSONS)), 1)
        assert lab.compare == "" and lab.group is None        # a lesson's step is a single run
        assert lab.start_compare("disc.activation:relu,sigmoid")
        lab.preset = "collapse"
        assert lab.compare == "" and lab.group is None        # so is a preset
    finally:
        lab.close()


def test_a_compare_that_fails_to_build_keeps_the_running_simulation(monkeypatch):
    lab = Lab(particles=32)
    lab.start()
    try:
        wait_until(lambda: (lab.take_frame(), lab.worker.cfg is not None)[1])

        def broken(self):
            raise RuntimeError("no memory left")
        monkeypatch.setattr(compare.Group, "build", broken)
        assert lab.start_compare("disc.activation:relu,sigmoid")
        wait_until(lambda: (lab.take_frame(), "no memory left" in lab.message)[1])
        assert lab.compare == "" and lab.group is None and lab.worker._state.batch == 1
    finally:
        lab.close()


def test_a_caption_says_its_coverage_and_the_particles_out_of_view():
    import numpy as np
    from app.lab.compareui import coverage_text
    xy = np.array([[0, 0], [5, 0], [0, -4]], np.float32)
    shot = compare.Shot("kernel.ratio = 0.9", xy, 3, 8, -1)
    assert coverage_text(shot, 1200, (-3, 3, -3, 3)) == "modes covered 3 / 8 · step 1,200 · 2 outside the view (zoom out)"
    assert coverage_text(shot, 5, (-6, 6, -6, 6)) == "modes covered 3 / 8 · step 5"
    gone = compare.Shot("kernel.ratio = 0.9", xy, 3, 8, 417)
    assert coverage_text(gone, 500, (-3, 3, -3, 3)) == "diverged at step 417 (frozen there)"


def test_a_linked_compare_that_fails_to_build_starts_the_single_preset(monkeypatch):
    def broken(self):
        raise RuntimeError("no memory left")
    monkeypatch.setattr(compare.Group, "build", broken)
    lab = Lab()
    lab.apply_query({"compare": "disc.activation:relu,sigmoid", "particles": "32"})
    lab.start()
    try:
        wait_until(lambda: (lab.take_frame(), "started the preset" in lab.message)[1])
        assert "no memory left" in lab.message and lab.compare == ""
        wait_until(lambda: (lab.take_frame(), lab.worker._state is not None and lab.worker._state.batch == 1)[1])
    finally:
        lab.close()
