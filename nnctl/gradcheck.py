"""Central-difference gradient checking, used by the tests and by `nnctl gradcheck`.

The analytic gradient of f(x) = sum(layer(x) * dout) for a *random* upstream gradient
`dout` (an all-ones dout can hide errors that cancel) is compared, element by element,
with (f(x + eps) - f(x - eps)) / (2 eps). Work in float64: in float32 the rounding error
of f is larger than the difference being measured.

Layers that draw random numbers (dropout, negative sampling) get a freshly seeded
generator before every evaluation, so f(x + eps) and f(x - eps) see the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nnctl.layers.base import Layer

# Below this magnitude a gradient is compared absolutely: a gradient that is zero up to
# rounding (a dead ReLU unit) would otherwise show a "relative" error of 1.
REL_ERROR_FLOOR = 1e-3


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """|a - n| / max(|a| + |n|, floor), elementwise."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), REL_ERROR_FLOOR)


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6,
                   flat_indices: np.ndarray | None = None) -> np.ndarray:
    """d f() / d x by central differences, nudging x in place one element at a time.

    With `flat_indices`, only those elements (of x.reshape(-1)) are nudged and a 1-D array
    of their derivatives is returned; otherwise the whole gradient, shaped like x.
    """
    flat_x = x.reshape(-1)  # a view: nudging it nudges x
    indices = np.arange(flat_x.size) if flat_indices is None else flat_indices
    grad = np.zeros(len(indices), dtype=np.float64)
    for j, i in enumerate(indices):
        original = flat_x[i]
        flat_x[i] = original + eps
        f_plus = f()
        flat_x[i] = original - eps
        f_minus = f()
        flat_x[i] = original
        grad[j] = (f_plus - f_minus) / (2 * eps)
    return grad.reshape(x.shape) if flat_indices is None else grad


@dataclass
class GradResult:
    name: str
    shape: tuple[int, ...]
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float


@dataclass
class GradReport:
    results: list[GradResult] = field(default_factory=list)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.results), default=0.0)

    def worst(self) -> str:
        if not self.results:
            return "nothing was checked"
        r = max(self.results, key=lambda r: r.max_rel_error)
        return (f"{r.name}{list(r.worst_index)}: analytic {r.analytic:.10g} vs numeric "
                f"{r.numeric:.10g} (relative error {r.max_rel_error:.3g})")


def compare(name: str, analytic: np.ndarray, numeric: np.ndarray) -> GradResult:
    errors = relative_error(analytic, numeric)
    index = np.unravel_index(int(np.argmax(errors)), errors.shape) if errors.size else ()
    return GradResult(
        name=name,
        shape=tuple(np.shape(analytic)),
        max_rel_error=float(errors.max()) if errors.size else 0.0,
        worst_index=tuple(int(i) for i in index),
        analytic=float(np.asarray(analytic)[index]) if errors.size else 0.0,
        numeric=float(np.asarray(numeric)[index]) if errors.size else 0.0,
    )


def reseed(layer: Layer, seed: int) -> None:
    """Give every layer that owns an `rng` the same fresh generator state."""
    for _, sub in layer.named_layers():
        if isinstance(getattr(sub, "rng", None), np.random.Generator):
            sub.rng = np.random.default_rng(seed)


def check_layer(layer: Layer, *inputs, eps: float = 1e-6, seed: int = 0,
                check_inputs: bool = True) -> GradReport:
    """Check d(sum(out * dout)) with respect to every float input and every parameter.

    `inputs` are passed to `layer.forward`; integer inputs (word ids, class labels) are
    passed through but not differentiated. The layer's backward must return the input
    gradient (a tuple when forward takes several float inputs).
    """
    rng = np.random.default_rng(seed + 1)
    reseed(layer, seed)
    out = layer.forward(*inputs)
    dout = rng.standard_normal(np.shape(out))
    if np.ndim(out) == 0:
        dout = float(dout)

    def f() -> float:
        reseed(layer, seed)
        return float(np.sum(layer.forward(*inputs) * dout))

    layer.zero_grad()
    reseed(layer, seed)
    layer.forward(*inputs)
    dinputs = layer.backward(dout)
    if not isinstance(dinputs, tuple):
        dinputs = (dinputs,)

    report = GradReport()
    float_inputs = [x for x in inputs if isinstance(x, np.ndarray) and x.dtype.kind == "f"]
    if check_inputs:
        for i, (x, dx) in enumerate(zip(float_inputs, dinputs)):
            report.results.append(compare(f"input{i}", dx, numerical_grad(f, x, eps)))
    for name, p in layer.named_params().items():
        analytic = p.grad.copy()
        report.results.append(compare(name, analytic, numerical_grad(f, p.data, eps)))
    return report


def check_model(model, batch, eps: float = 1e-6, seed: int = 0, max_elements: int | None = None,
                jitter: float = 0.05) -> GradReport:
    """Check d(mean loss)/d(param) of a whole model on one batch, for every parameter.

    `max_elements` checks only that many randomly chosen elements per parameter (all when
    None): a central difference costs two forward passes per element.

    Every parameter is first moved by `jitter` times a standard normal. Freshly built
    models sit on kinks: a zero bias after a layer whose output is all zero puts a ReLU
    input at exactly 0, where the analytic derivative is 0 and the central difference
    is half a slope. A random nearby point is differentiable almost surely.
    """
    noise = np.random.default_rng(seed + 3)
    for p in model.params():
        p.data += jitter * noise.standard_normal(p.data.shape)
    def f() -> float:
        reseed(model, seed)
        out, _ = model.loss(batch, None)
        return float(out.loss_sum) / out.count

    model.zero_grad()
    f()
    model.backward()
    pick = np.random.default_rng(seed + 2)
    report = GradReport()
    for name, p in model.named_params().items():
        analytic = p.grad.copy()
        if max_elements is None or p.data.size <= max_elements:
            report.results.append(compare(name, analytic, numerical_grad(f, p.data, eps)))
            continue
        chosen = pick.choice(p.data.size, size=max_elements, replace=False)
        numeric = numerical_grad(f, p.data, eps, flat_indices=chosen)
        result = compare(name, analytic.reshape(-1)[chosen], numeric)
        result.shape = tuple(p.data.shape)
        result.worst_index = tuple(int(x) for x in np.unravel_index(int(chosen[result.worst_index[0]]), p.data.shape))
        report.results.append(result)
    return report
