"""Guided lessons: a small table of steps, each a preset with a few knobs set, what to watch,
a question and its answer.

Every answer is a claim about the run the step sets up; `checks` states it as numbers a
headless run (`dynamics.run.simulate`, `steps` long, the step's own seed) must meet, and
`tests/test_lessons.py` runs them, so a lesson never teaches what the simulation does not do.
The numbers in the texts (γ_c, the spectrum's two levels) come from `dynamics.theory`.
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Any, Mapping

import numpy as np

from dynamics import presets, theory
from dynamics.knobs import ConfigError, resolve, show

OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


@dataclasses.dataclass(frozen=True)
class Check:
    """`metric` (a final value of `dynamics.run.History` or one of `DERIVED`) `op` `value`."""
    metric: str
    op: str
    value: float


@dataclasses.dataclass(frozen=True)
class Step:
    text: str
    preset: str
    knobs: Mapping[str, Any]           # set on top of the preset
    watch: str
    question: str
    answer: str
    checks: tuple[Check, ...]
    steps: int = 4000                  # the headless run that checks the answer
    speed: int | None = None           # the lab's steps per frame, where the default runs past what to watch

    def config(self) -> dict[str, Any]:
        return resolve(presets.load(self.preset), self.knobs)


@dataclasses.dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    steps: tuple[Step, ...]


def _overshoots(h) -> np.ndarray:
    """(B,) how often the centre of mass's distance to the target turns from falling to rising
    (above 1 % of the start): an under-damped centre swings past the target and back."""
    d = h.series["com_distance"]
    big = d[:, 1:-1] > 0.01 * d[:, :1]
    turn = (d[:, 1:-1] < d[:, :-2]) & (d[:, 1:-1] < d[:, 2:])
    return (turn & big).sum(1)


DERIVED = {"overshoots": _overshoots}

# ---------------------------------------------------------------- the numbers the texts quote
DAMP = {"disc.kind": "linear", "particles": 10, "kernel.ratio": 0.5, "lr.disc": 0.05, "lr.gen": 0.05,
        "init.std": 0.01}
GAMMA_C = theory.gamma_c(resolve(presets.load("damping"), DAMP))
RIGID = 0.95
SLOW = 2            # steps per frame of the damping lesson: its oscillation lasts ~300 steps, 5 s to watch
COLLECTIVE, RELATIVE = theory.kernel_levels(resolve(presets.load("ring8"), {"kernel.ratio": RIGID}))


def _g(x: float) -> float:
    """Three significant digits, as the texts print them (above 1000: the whole number)."""
    return float(f"{x:.3g}") if abs(x) < 1000 else round(x)


LESSONS: dict[str, Lesson] = {les.name: les for les in [
    Lesson("independent", "Independent particles cover every mode", (
        Step("With coupling r = g2/g1 = 0 the kernel Θ is diagonal: each particle moves up the "
             "discriminator's gradient on its own, whatever the others do.",
             "ring8", {"kernel.ratio": 0.0},
             "the particles leave the centre in every direction and settle on the eight modes",
             "How many of the 8 modes hold particles after 4,000 steps?",
             "All 8: nothing ties a particle to the others, so each one climbs to the mode nearest to it.",
             (Check("modes_covered", "==", 8),)),
        Step("Now the ring has 16 modes, twice as many, and still 64 independent particles.",
             "ring8", {"kernel.ratio": 0.0, "target.modes": 16},
             "the mode coverage curve (top left below) climbing to 1",
             "Do the independent particles still find every mode?",
             "Yes, all 16 (coverage 1, mode entropy near 1): with r = 0 coverage needs only enough particles.",
             (Check("modes_covered", "==", 16), Check("mode_entropy", ">=", 0.9)), 3000),
    )),
    Lesson("coupling", "Coupling makes the cloud rigid: it collapses and hops", (
        Step("Start from independent particles (r = 0): they spread over all 8 modes. The kernel "
             "spectrum (bottom) has one level: every direction of the cloud moves at the same rate.",
             "ring8", {"kernel.ratio": 0.0},
             "the kernel spectrum: a single level g1 = 1",
             "How many modes are covered?",
             "All 8.",
             (Check("modes_covered", "==", 8),)),
        Step(f"Now couple the particles strongly: r = {RIGID}. Θ = (g1 − g2) I + g2 11ᵀ has two levels: "
             f"the collective one g1 + (N − 1) g2 = {_g(COLLECTIVE)} moves the centre of mass, the "
             f"relative one g1 − g2 = {_g(RELATIVE)} changes the cloud's shape.",
             "ring8", {"kernel.ratio": RIGID},
             "the cloud staying a compact blob that jumps from mode to mode; the spectrum's two levels; "
             "the collective speed far above the relative one",
             f"The collective level is {_g(COLLECTIVE / RELATIVE)} times the relative one. What does "
             "that do to the coverage?",
             "The cloud moves as one rigid blob: it cannot split, so it sits on one mode at a time "
             "(coverage 1/8, spread far below the mode spacing) and hops between modes as the "
             "critic turns against it; by step 4,000 its centre has visited 8 modes.",
             (Check("modes_covered", "<=", 1), Check("spread_rel", "<=", 0.3), Check("modes_visited", ">=", 3))),
    )),
    Lesson("frequency", "The discriminator type moves the boundary", (
        Step("Weak coupling r = 0.1 with a ReLU discriminator.",
             "sigmoid", {"disc.activation": "relu"},
             "the particles splitting over the modes",
             "How many modes are covered?",
             "All 8: a ReLU critic resolves the ring's fine structure quickly.",
             (Check("modes_covered", "==", 8),)),
        Step("The same set-up with a smooth sigmoid discriminator. Gradient training fits the "
             "low frequencies of D first (the frequency principle), and a smooth activation learns "
             "the high ones, the scale of the mode spacing, far more slowly.",
             "sigmoid", {},
             "the background D: broad and smooth; the cloud moving as a block towards it",
             "Same coupling, same learning rates: does the cloud still cover every mode?",
             "No: the sigmoid critic sees mostly where the cloud as a whole should go, the collective "
             "motion wins and the cloud settles on 2 of the 8 modes. The collapse boundary sits at "
             "a lower coupling for a smooth critic.",
             (Check("modes_covered", "<=", 4),)),
        Step("Give the sigmoid critic a three times larger learning rate η_D = 0.03.",
             "sigmoid", {"lr.disc": 0.03},
             "the coverage curve",
             "Does a faster critic bring the modes back?",
             "Yes, all 8: the boundary moves up with η_D, so a faster critic resolves the modes before "
             "the cloud runs off as a block.",
             (Check("modes_covered", "==", 8),)),
    )),
    Lesson("damping", "Critical damping of the regulariser", (
        Step(f"A linear critic D = ψ·x and one target point: the centre of mass is a damped "
             f"oscillator, ë + η_D γ ė + η_D η_G λ̄ e = 0, critically damped at "
             f"γ_c = 2√(η_G λ̄/η_D) = {_g(GAMMA_C)}. Here γ = γ_c/4: under-damped.",
             "damping", {**DAMP, "reg.strength": _g(GAMMA_C / 4)},
             "the cloud overshooting the target and swinging back; the losses ringing",
             "Does the cloud go straight to the target?",
             "No: it swings past the target and back before it settles (about 300 steps to get "
             "within 5 %).",
             (Check("overshoots", ">=", 2), Check("convergence_step", ">=", 200)), 2000, SLOW),
        Step(f"Now γ = γ_c = {_g(GAMMA_C)}: critical damping.",
             "damping", {**DAMP, "reg.strength": _g(GAMMA_C)},
             "how quickly the cloud sits on the target",
             "Faster or slower than at γ_c/4?",
             "Faster: no overshoot, the target is reached in about 140 steps, the quickest any γ "
             "gets there.",
             (Check("overshoots", "<=", 1), Check("convergence_step", "<=", 200)), 2000, SLOW),
        Step(f"And γ = 4 γ_c = {_g(4 * GAMMA_C)}: over-damped.",
             "damping", {**DAMP, "reg.strength": _g(4 * GAMMA_C)},
             "the cloud creeping towards the target",
             "Is more regularisation always better?",
             "No: the critic is so penalised that it hardly pushes; the cloud creeps in without "
             "overshooting and needs about 650 steps. Convergence time is U-shaped in γ, lowest at γ_c.",
             (Check("overshoots", "==", 0), Check("convergence_step", ">=", 400)), 2000, SLOW),
    )),
    Lesson("transport", "Conditional transport: covering or seeking modes", (
        Step("Conditional transport (a companion result) has no critic: each particle is sent "
             "along transport plans, with the loss ρ·forward + (1 − ρ)·backward. Here ρ = 0.5.",
             "ct", {"ct.rho": 0.5},
             "the two costs (forward: covering, backward: seeking) below the time series",
             "Does the balance ρ = 0.5 cover the ring, and sharply?",
             "Yes: all 8 modes, and every particle sits inside a mode.",
             (Check("modes_covered", "==", 8), Check("high_quality_fraction", ">=", 0.9)), 600),
        Step("ρ = 0: only the backward cost, which asks every particle to find data near it.",
             "ct", {"ct.rho": 0.0},
             "the particles gathering on a few modes",
             "How many modes are covered now?",
             "Only a few (3 here): each particle is content on whichever mode it reaches first, so "
             "the backward cost seeks modes rather than covering them.",
             (Check("modes_covered", "<=", 4),), 600),
        Step("ρ = 1: only the forward cost, which asks every data point to find particles near it.",
             "ct", {"ct.rho": 1.0},
             "particles left between the modes",
             "All modes covered: is the fit good?",
             "Every mode is covered, but much of the mass is smeared between them: only about a quarter "
             "of the particles sit inside a mode.",
             (Check("modes_covered", "==", 8), Check("high_quality_fraction", "<=", 0.5)), 600),
    )),
]}


def get(name: str) -> Lesson:
    if name not in LESSONS:
        shown = show(name) if name == "" else repr(show(name))        # show('') is already quoted
        raise ConfigError(f"lesson: {shown} is not a lesson; allowed {', '.join(LESSONS)}")
    return LESSONS[name]


def step_of(name: str, number: Any) -> Step:
    """Step `number` (1-based, as the URL writes it) of lesson `name`; ConfigError naming the field."""
    lesson = get(name)
    try:
        i = int(str(number))
    except ValueError:
        i = 0
    if not 1 <= i <= len(lesson.steps):
        raise ConfigError(f"step: {show(number)} is out of range; allowed 1 to {len(lesson.steps)} "
                          f"for the lesson {name}")
    return lesson.steps[i - 1]


def measure(history) -> dict[str, np.ndarray]:
    """The final values a check may name."""
    return {**history.final, **{k: fn(history) for k, fn in DERIVED.items()}}


def failures(step: Step, history) -> list[str]:
    """The checks the run `history` of `step` fails, each as 'metric = value, wanted op v'."""
    got = measure(history)
    out = []
    for c in step.checks:
        v = np.asarray(got[c.metric])
        if not np.all(OPS[c.op](v, c.value)):
            out.append(f"{c.metric} = {v.tolist()}, wanted {c.op} {c.value:g}")
    return out


def run(step: Step):
    """The headless run that checks a step's answer."""
    from dynamics.run import simulate
    return simulate({**step.config(), "steps": step.steps})
