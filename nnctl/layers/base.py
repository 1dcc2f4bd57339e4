"""The layer protocol every piece of nnctl follows.

* `forward(*inputs)` computes the output and saves on `self` what backward needs.
* `backward(dout)` ADDS the parameter gradients into `Param.grad` and returns the
  gradient with respect to the input(s). Because gradients accumulate, a parameter used
  twice (CBOW's shared embedding, the LM's tied output matrix) simply gets the sum of
  both uses; the trainer calls `zero_grad()` before each backward.
* Parameters are found by walking attributes in insertion order, so each has a stable
  dotted name ("layers.0.W") that keys checkpoints, optimizer state and error messages.
  A parameter reachable twice (tied weights) is listed once, under its first name.
* `.training` is set by `train()` / `eval()`; dropout and batch norm read it.
* Inside `with model.weights_fixed():` (evaluation, sampling) no weight changes, so a
  layer may keep what it derives from its weights from one forward to the next (`kept`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np


@dataclass(eq=False)  # eq=False: identity semantics, so a Param can key a dict
class Param:
    """A trainable array and its gradient.

    A *sparse* Param (a big embedding table of which each batch touches a few rows) gets
    its gradient only through `add_rows`, which records the rows it touched; optimizers
    then update, and `zero_grad` clears, only those rows instead of the whole table.
    """

    data: Any  # ndarray, float32 by default (float64 in gradient checks)
    grad: Any  # same shape; backward adds into it
    sparse: bool = False
    touched_rows: Any = None  # sparse Params: unique row ids with a gradient since zero_grad

    @classmethod
    def init(cls, value, dtype=np.float32, sparse: bool = False) -> "Param":
        data = np.array(value, dtype=dtype, order="C", copy=True)  # never shares the caller's memory
        return cls(data, np.zeros_like(data), sparse=sparse,
                   touched_rows=np.zeros(0, dtype=np.int64) if sparse else None)

    def add_rows(self, rows, values) -> None:
        """grad[rows] += values, repeated rows accumulating; remembers the rows for sparse updates."""
        from nnctl.backend import get_xp, scatter_add

        distinct = scatter_add(self.grad, rows, values)
        if self.sparse:
            if len(self.touched_rows) == 0:  # the common case: one add_rows per step
                self.touched_rows = distinct
            else:
                self.touched_rows = get_xp(self.grad).union1d(self.touched_rows, distinct)

    def zero_grad(self) -> None:
        if self.sparse:
            self.grad[self.touched_rows] = 0
            self.touched_rows = self.touched_rows[:0]
        else:
            self.grad[...] = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape


class Layer:
    """Base class: parameter discovery, train/eval mode, zero_grad.

    Subclasses list non-trainable arrays that must be saved with the model (batch
    norm's running statistics) in `buffer_names`.
    """

    training: bool = True
    buffer_names: tuple[str, ...] = ()
    _kept: dict | None = None  # inside weights_fixed(): what `kept` made, by key

    def forward(self, *inputs):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def __call__(self, *inputs):
        return self.forward(*inputs)

    # -- discovery -------------------------------------------------------------------
    def _children(self) -> Iterator[tuple[str, Any]]:
        """(name, value) for attributes that are Params, Layers, or lists/tuples of Layers."""
        for name, value in vars(self).items():
            if isinstance(value, (Param, Layer)):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, (Param, Layer)):
                        yield f"{name}.{i}", item

    def named_params(self, prefix: str = "", _seen: set[int] | None = None) -> dict[str, Param]:
        seen = set() if _seen is None else _seen
        out: dict[str, Param] = {}
        for name, value in self._children():
            full = f"{prefix}{name}"
            if isinstance(value, Param):
                if id(value) not in seen:
                    seen.add(id(value))
                    out[full] = value
            else:
                out.update(value.named_params(full + ".", seen))
        return out

    def params(self) -> list[Param]:
        return list(self.named_params().values())

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, "Layer"]]:
        yield prefix.rstrip("."), self
        for name, value in self._children():
            if isinstance(value, Layer):
                yield from value.named_layers(f"{prefix}{name}.")

    def named_buffers(self) -> dict[str, Any]:
        """Non-trainable arrays to checkpoint, e.g. {"bn.running_mean": array}."""
        out = {}
        for layer_name, layer in self.named_layers():
            for buffer in layer.buffer_names:
                key = f"{layer_name}.{buffer}" if layer_name else buffer
                out[key] = getattr(layer, buffer)
        return out

    def to(self, device: str) -> "Layer":
        """Move every Param (data, grad, touched rows) and buffer to "cpu" or "gpu", in place.

        Build the optimizer after this: its state arrays are made like the Params' data.
        A tied Param is one object, so it is moved once and stays shared.
        """
        from nnctl.backend import to_device

        for p in self.params():
            p.data, p.grad = to_device(p.data, device), to_device(p.grad, device)
            if p.touched_rows is not None:
                p.touched_rows = to_device(p.touched_rows, device)
        for _, layer in self.named_layers():
            for buffer in layer.buffer_names:
                setattr(layer, buffer, to_device(getattr(layer, buffer), device))
        return self

    def num_params(self) -> int:
        return sum(p.data.size for p in self.params())

    # -- mode and gradients ----------------------------------------------------------
    def zero_grad(self) -> None:
        for p in self.params():
            p.zero_grad()

    def train(self, mode: bool = True) -> "Layer":
        for _, layer in self.named_layers():
            layer.training = mode
        return self

    def eval(self) -> "Layer":
        return self.train(False)

    # -- what is derived from the weights --------------------------------------------
    @contextmanager
    def weights_fixed(self):
        """A promise that no weight of this layer or its sublayers changes inside the block.

        Inside it, `kept` keeps what a layer derives from its weights from one forward to
        the next: the recurrent layers' per-step copy of Wh (layers/step_product.py), made
        once per window otherwise, and so once per word when sampling. What was kept is
        dropped when the block ends, so weights that change afterwards are seen.
        """
        layers = [layer for _, layer in self.named_layers()]
        before = [layer._kept for layer in layers]
        for layer in layers:
            layer._kept = {}
        try:
            yield self
        finally:
            for layer, kept in zip(layers, before):
                layer._kept = kept

    def kept(self, key, make: Callable[[], Any]):
        """make(); inside `weights_fixed`, made once per key and then kept until the block ends."""
        if self._kept is None:
            return make()
        if key not in self._kept:
            self._kept[key] = make()
        return self._kept[key]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}{tuple(p.shape)}" for n, p in self.named_params().items())
        return f"{type(self).__name__}({shapes})"


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse. x → layers[0] → ... → layers[-1]."""

    def __init__(self, layers: list[Layer]):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout
