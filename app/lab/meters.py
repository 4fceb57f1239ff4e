"""Live meters of the companion papers for the lab: which apply to a run, and their values.

* ``ct``      (paper C) forward and backward conditional-transport costs of the particles
  against the real batch the next step uses (disc.kind = ct): the covering and the seeking
  half of the loss the particles descend.
* ``approx``  (paper B) restricted approximability of the current critic: its IPM on a fresh
  batch over the exact W1 of the same samples, and the train/test IPM gap. Every critic with a
  value function D(x) (all but ct).
* ``paper_a`` (paper A) F1, F2 and max-sliced W1 distances of the particles to the data, each
  over its null (the same estimator between two independent real batches): the critics of
  paper A (f1_neuron, f2_features) and its sphere_pair target.

They run on the worker thread (`app.lab.worker`) at their own cadence; each returns plain floats
of member 0. Real batches come from the target's counter streams, so a meter never perturbs
the run: `Simulation.real_batch` gives the batches the engine's steps draw, the test and null
batches use counter ranges of their own (`dynamics.rng.COUNTERS`, disjoint from the steps').
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from dynamics.papers.ct import ct_costs
from dynamics.papers.live import approximability, f1_f2_meter
from dynamics.engine import Simulation, State
from dynamics.knobs import ASCENT, VALUED
from dynamics.rng import COUNTERS
from dynamics.targets import ON_SPHERE

METER_N = 256            # particles / real points a sampled meter uses: exact W1 ≈ 15 ms at 256
TEST_COUNTER = COUNTERS["meter_test"].start     # fresh real batches of the meters
NULL_COUNTER = COUNTERS["meter_null"].start
PAPER_A_CRITICS = tuple(k for k in VALUED if k not in ASCENT)   # a value D, not trained by ascent: f1, f2


@dataclasses.dataclass(frozen=True)
class Meter:
    """applies(cfg) -> bool; compute(sim, state) -> {metric: float}; every: base seconds
    between two evaluations (the worker stretches it for costly meters)."""
    name: str
    applies: Callable[[dict], bool]
    compute: Callable[[Simulation, State], dict[str, float]]
    every: float


def fresh_batch(sim: Simulation, s: State, n: int, base: int = TEST_COUNTER) -> torch.Tensor:
    """(B, n, d) real points no step ever draws (a held-out batch for step s.t)."""
    return sim.target.sample(s.key, base + s.t, n)


def _gen(sim: Simulation, s: State) -> torch.Generator:
    return torch.Generator().manual_seed(sim.cfg["seed"] * 1_000_003 + s.t)


def _first(v: torch.Tensor) -> float:
    return float(v[0])


def ct_meter(sim: Simulation, s: State) -> dict[str, float]:
    """Forward (covering), backward (seeking) and ρ-weighted CT loss at the current particles;
    the loss equals the loss_g the next step reports."""
    h = s.hyper
    c = ct_costs(sim.real_batch(s, 0), s.x, h["ct.beta"], h["ct.rho"])
    return {"ct_forward": _first(c["forward"]), "ct_backward": _first(c["backward"]), "ct_loss": _first(c["loss"])}


def approx_meter(sim: Simulation, s: State) -> dict[str, float]:
    """IPM of the critic on a fresh batch over exact W1 (the same samples), and the train−test
    IPM gap; on the first METER_N particles. Nothing before the critic's first update."""
    if s.t < 1:
        return {}
    x = s.x[:, :METER_N]
    m = approximability(x, sim.real_batch(s, -1)[:, :METER_N], fresh_batch(sim, s, x.shape[1]),
                        lambda pts: sim.disc.value(s.disc, pts), gen=_gen(sim, s), w1="exact")
    return {"ra_ratio": _first(m["ipm_over_w1"]), "ra_gap": _first(m["train_test_gap"]),
            "ra_ipm": _first(m["ipm_test"]), "ra_w1": _first(m["w1"])}


def paper_a_meter(sim: Simulation, s: State) -> dict[str, float]:
    """F1, F2, max-sliced and sliced W1 of the first METER_N particles against a fresh batch, with nulls."""
    x = s.x[:, :METER_N].detach()
    n = x.shape[1]
    m = f1_f2_meter(x, fresh_batch(sim, s, n), _gen(sim, s), real_null=fresh_batch(sim, s, n, NULL_COUNTER),
                    bias=sim.cfg["target.kind"] not in ON_SPHERE)
    keys = {"f1": "f1", "f2": "f2", "max_sliced_w1": "msw1", "sliced_w1": "sw1"}
    return {short + tag: _first(m[k + tag]) for k, short in keys.items() for tag in ("", "_null")}


METERS: dict[str, Meter] = {m.name: m for m in [
    Meter("ct", lambda cfg: cfg["disc.kind"] == "ct", ct_meter, 0.1),
    Meter("approx", lambda cfg: cfg["disc.kind"] in VALUED, approx_meter, 0.5),
    Meter("paper_a", lambda cfg: cfg["disc.kind"] in PAPER_A_CRITICS or cfg["target.kind"] in ON_SPHERE,
          paper_a_meter, 1.0),
]}


def applicable(cfg: dict) -> tuple[str, ...]:
    """Names of the meters that mean something for this config."""
    return tuple(name for name, m in METERS.items() if m.applies(cfg))
