"""Critics: one contract (`Critic`), one registry (`CRITICS`, the knob disc.kind), one module
per family. Each module registers itself when imported here:

* ``mlp``          `mlp`: the MLP critic (closed-form gradients for one hidden layer)
* ``linear``       `linear`: D(x) = ψ·x + c, the damped-oscillator model
* ``f1``           `f1_neuron`: the best unit ReLU neuron (the F1 IPM of the companion papers)
* ``f2``           `f2_features`: the arc-cosine kernel MMD witness (the F2 IPM)
* ``ct``           `ct`: conditional transport, a force without a critic value
* ``layers``       `mlp_layers`: a ReLU MLP with one width per layer, dropout, PyTorch's init (issue 15)

Gradient-ascent critics (mlp, linear) bring only their maths (`Ascent`); `by_ascent` adds the
objective J and the optimiser of `dynamics.objective`.
"""
from ..objective import Batch
from . import mlp, linear, f1, f2, ct, layers  # noqa: F401,I001  (each registers its critic; this order is disc.kind's)
from .contract import CRITICS, Ascent, Critic, Kind, by_ascent, kinds_with, register, value_force

__all__ = ["CRITICS", "Ascent", "Batch", "Critic", "Kind", "by_ascent", "kinds_with", "register", "value_force"]
