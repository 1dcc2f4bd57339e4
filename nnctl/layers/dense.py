"""Fully connected layers and element-wise activations. Every layer works on any leading axes.

Shapes: x (..., D) → y (..., D_out). Each backward adds into Param.grad and returns dx.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp, uniform
from nnctl.functional import sigmoid
from nnctl.layers.base import Layer, Param
from nnctl.layers.init import check_init, initial_weights


class Linear(Layer):
    """y = x @ W + b.   x: (..., D_in) → y: (..., D_out);  W: (D_in, D_out), b: (D_out,)."""

    def __init__(self, in_features: int, out_features: int, *, init: str | float = "he",
                 rng: np.random.Generator, dtype=np.float32):
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear sizes must be > 0, got {in_features} -> {out_features}")
        check_init(init)
        self.W = Param.init(initial_weights((in_features, out_features), in_features, out_features,
                                            init, rng, dtype), dtype)
        self.b = Param.init(np.zeros(out_features), dtype)

    def forward(self, x):
        self.x2d = x.reshape(-1, x.shape[-1])  # (M, D_in), M = product of leading axes
        y2d = self.x2d @ self.W.data
        y2d += self.b.data
        return y2d.reshape(*x.shape[:-1], y2d.shape[-1])

    def backward(self, dy):
        dy2d = dy.reshape(-1, dy.shape[-1])  # (M, D_out)
        self.W.grad += self.x2d.T @ dy2d
        self.b.grad += dy2d.sum(axis=0)
        return (dy2d @ self.W.data.T).reshape(*dy.shape[:-1], self.W.shape[0])


class ReLU(Layer):
    """y = max(x, 0);  dx = dy where x > 0, else 0."""

    def forward(self, x):
        self.positive = x > 0
        return get_xp(x).maximum(x, 0, dtype=x.dtype)

    def backward(self, dy):
        return dy * self.positive


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x));  dx = dy * y * (1 - y)."""

    def forward(self, x):
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class Tanh(Layer):
    """y = tanh(x);  dx = dy * (1 - y²)."""

    def forward(self, x):
        self.y = get_xp(x).tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y * self.y)


def check_rate(name: str, p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")
    return float(p)


def keep_scale(rng, p: float, shape, like):
    """A mask of `shape`: 1 / (1 - p) with probability 1 - p, else 0; in like's dtype and place."""
    keep = uniform(rng, shape, like.dtype, like=like)
    return (keep >= p).astype(like.dtype) * like.dtype.type(1.0 / (1.0 - p))


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): in training each unit is zeroed with
    probability p and the survivors are scaled by 1/(1-p), so the expected activation is
    unchanged and evaluation is the identity (no rescaling at test time).

    The mask is made where x lives (backend.uniform): on the CPU drawn from `self.rng`, an
    injected np.random.Generator; on a GPU drawn there, seeded by one integer from
    `self.rng`. Either way that generator's state, which checkpoints save, fixes the masks.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator, dtype=np.float32):
        self.p = check_rate("dropout", p)
        self.rng = rng
        self.dtype = dtype

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.scale = None
            return x
        self.scale = keep_scale(self.rng, self.p, x.shape, like=x)  # a new mask for every element
        return x * self.scale

    def backward(self, dy):
        return dy if self.scale is None else dy * self.scale


class Flatten(Layer):
    """(N, ...) → (N, prod(...)): the bridge from image tensors to Linear layers."""

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.shape)
