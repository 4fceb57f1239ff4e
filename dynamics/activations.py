"""Discriminator activations with their first and second derivatives.

The closed-form gradient-penalty gradients need σ, σ' and σ'' (`dynamics.critics.mlp`);
`curved` is False where σ'' vanishes almost everywhere, which skips a term.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as Fn

from .registry import Registry

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Activation:
    f: Callable[[Tensor], Tensor]
    derivs: Callable[[Tensor], tuple[Tensor, Tensor, Tensor | None]]   # u -> (σ, σ', σ'' or None)
    curved: bool


ACTIVATIONS: Registry[Activation] = Registry("disc.activation")

LEAK = 0.2


# sign() of the output is several times faster than (u > 0).to(dtype) on the CPU
def _relu(u):
    s = torch.relu(u)
    return s, torch.sign(s), None


def _leaky(u):
    s = Fn.leaky_relu(u, LEAK)
    return s, torch.sign(s) * (0.5 * (1 - LEAK)) + 0.5 * (1 + LEAK), None


def _tanh(u):
    t = torch.tanh(u)
    d1 = 1 - t * t
    return t, d1, -2 * t * d1


def _sigmoid(u):
    s = torch.sigmoid(u)
    d1 = s * (1 - s)
    return s, d1, d1 * (1 - 2 * s)


def _silu(u):
    s = torch.sigmoid(u)
    f = u * s
    d1 = s + f * (1 - s)                 # σ(u)(1 + u(1-σ(u)))
    d2 = s * (1 - s) * (2 + u * (1 - 2 * s))
    return f, d1, d2


ACTIVATIONS.add("relu", Activation(torch.relu, _relu, False))
ACTIVATIONS.add("leaky_relu", Activation(lambda u: Fn.leaky_relu(u, LEAK), _leaky, False))
ACTIVATIONS.add("tanh", Activation(torch.tanh, _tanh, True))
ACTIVATIONS.add("sigmoid", Activation(torch.sigmoid, _sigmoid, True))
ACTIVATIONS.add("silu", Activation(Fn.silu, _silu, True))
