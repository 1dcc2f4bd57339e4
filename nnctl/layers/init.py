"""Initial weights whose scale keeps activations from vanishing or exploding with depth.

    he      std = sqrt(2 / fan_in)   for ReLU, which zeroes half its inputs (He et al. 2015)
    xavier  std = sqrt(1 / fan_in)   for sigmoid / tanh. This is the fan-in form used by
            "Deep Learning from Scratch" (and LeCun 1998); Glorot & Bengio (2010) average
            fan-in and fan-out, sqrt(2 / (fan_in + fan_out)); `glorot` selects that form.

A number instead of a name is a fixed standard deviation for every layer (the book's
`weight_init_std=0.01`, which shows why the scale must follow fan_in).

fan_in counts the inputs that feed one output unit: D_in for a Linear layer,
KH * KW * C_in for a convolution.
"""

from __future__ import annotations

import numpy as np

from nnctl.registry import did_you_mean


def he(fan_in: int, fan_out: int) -> float:
    return float(np.sqrt(2.0 / fan_in))


def xavier(fan_in: int, fan_out: int) -> float:
    return float(np.sqrt(1.0 / fan_in))


def glorot(fan_in: int, fan_out: int) -> float:
    return float(np.sqrt(2.0 / (fan_in + fan_out)))


INITIALISERS = {"he": he, "xavier": xavier, "glorot": glorot}


def check_init(name: str | float) -> str | float:
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        if not name > 0:
            raise ValueError(f"init must be > 0 (a fixed standard deviation), got {name}")
        return float(name)
    if name not in INITIALISERS:
        raise ValueError(f"init {name!r} is unknown{did_you_mean(name, INITIALISERS)}; "
                         f"choose one of: {', '.join(INITIALISERS)}")
    return name


def initial_weights(shape: tuple[int, ...], fan_in: int, fan_out: int, init: str | float,
                    rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Gaussian weights of the given shape with the standard deviation that `init` prescribes."""
    init = check_init(init)
    std = init if isinstance(init, float) else INITIALISERS[init](fan_in, fan_out)
    return (rng.standard_normal(shape) * std).astype(dtype)
