"""A convolutional classifier described by a list of blocks in the config.

Block language (one mapping per block; the kind key carries the main number):

    {conv: 32, kernel: 3, stride: 1, padding: 1, batch_norm: true}   # padding may be "same"
    {pool: 2, stride: 2}          # max pool (stride defaults to the pool size)
    {dense: 256, batch_norm: true}
    {dropout: 0.5}

Every conv and dense block is followed by the model's activation; batch_norm (per block,
default: the model-level `batch_norm`) goes between the layer and the activation, and a
conv followed by batch norm has no bias (beta plays its part). A final
Linear to the classes is always added, and Flatten wherever the first dense layer needs it.

Images are channels-last, (N, H, W, C) (see nnctl/layers/conv.py).

Two rewrites that change the speed, not the function:
* [conv block, pool block] is built as conv → pool → [BatchNorm] → act: max-pooling
  commutes with any non-decreasing activation (ReLU, sigmoid, tanh), so the activation
  may follow the pool and touches a quarter of the values. Batch norm does not commute
  with max (gamma may be negative), so moving it after the pool is a (standard) choice,
  not a rewrite: it normalises the pooled map, at a quarter of the cost.
* The first conv layer does not compute the gradient with respect to the image.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnctl.layers import BatchNorm, Conv2d, Flatten, Layer, Linear, MaxPool2d
from nnctl.layers.conv import output_size
from nnctl.models.base import MODELS
from nnctl.models.classifier import ACTIVATIONS, Classifier, check_dropout, dropout_layer, pick_init
from nnctl.registry import did_you_mean

BLOCK_KEYS = {
    "conv": ("conv", "kernel", "stride", "padding", "batch_norm"),
    "pool": ("pool", "stride"),
    "dense": ("dense", "batch_norm"),
    "dropout": ("dropout",),
}
ALL_KEYS = {key for keys in BLOCK_KEYS.values() for key in keys}

SIMPLE_CONV_NET = ({"conv": 30, "kernel": 5}, {"pool": 2}, {"dense": 100})  # DL from Scratch ch. 7


def _positive_int(value, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{what} must be an integer >= {least}, got {value!r}")
    return value


def parse_block(index: int, block) -> tuple[str, dict]:
    """(kind, options with defaults) for one block, or a ValueError naming blocks[index]."""
    where = f"blocks[{index}]"
    if not isinstance(block, dict) or not block:
        raise ValueError(f"{where}: expected a mapping like {{conv: 32, kernel: 3}}, got {block!r}")
    kinds = [key for key in block if key in BLOCK_KEYS]
    if len(kinds) > 1:
        raise ValueError(f"{where}: one block has one kind, got {', '.join(kinds)}; split it into blocks")
    if not kinds:
        unknown = [key for key in block if key not in ALL_KEYS] or list(block)
        raise ValueError(f"{where}: unknown block kind {unknown[0]!r}{did_you_mean(unknown[0], BLOCK_KEYS)}; "
                         f"choose one of: {', '.join(BLOCK_KEYS)}")
    kind = kinds[0]
    for key in block:
        if key not in BLOCK_KEYS[kind]:
            raise ValueError(f"{where}: unknown key {key!r} for a {kind} block{did_you_mean(key, BLOCK_KEYS[kind])}; "
                             f"valid keys: {', '.join(BLOCK_KEYS[kind])}")
    opts = dict(block)
    if kind == "conv":
        _positive_int(opts["conv"], f"{where}: conv channels")
        kernel = _positive_int(opts.setdefault("kernel", 3), f"{where}: kernel")
        _positive_int(opts.setdefault("stride", 1), f"{where}: stride")
        if opts.setdefault("padding", 0) == "same":
            opts["padding"] = kernel // 2
        _positive_int(opts["padding"], f"{where}: padding (or \"same\")", least=0)
    elif kind == "pool":
        _positive_int(opts["pool"], f"{where}: pool size")
        _positive_int(opts.setdefault("stride", opts["pool"]), f"{where}: stride")
    elif kind == "dense":
        _positive_int(opts["dense"], f"{where}: dense units")
    elif kind == "dropout":
        value = opts["dropout"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: dropout must be a number in [0, 1), got {value!r}")
        check_dropout(value, f"{where}: dropout")
    if "batch_norm" in opts and not isinstance(opts["batch_norm"], bool):
        raise ValueError(f"{where}: batch_norm must be true or false, got {opts['batch_norm']!r}")
    return kind, opts


@MODELS.register("cnn")
class CNN(Classifier):
    """Conv / pool / dense / dropout blocks, then Linear to the classes (LeCun et al. 1998;
    the default is "SimpleConvNet" of DL from Scratch ch. 7: conv 30@5x5, ReLU, pool 2,
    dense 100, ReLU, dense 10).

    x: (N, H, W, C) → logits (N, num_classes).
    """

    def __init__(self, blocks: list[dict] = SIMPLE_CONV_NET,
                 activation: Literal["relu", "sigmoid", "tanh"] = "relu",
                 batch_norm: bool = False,
                 init: Literal["he", "xavier", "glorot", "auto"] = "auto",
                 *, input_shape, num_classes: int, rng: np.random.Generator, dtype):
        if not blocks:
            raise ValueError("blocks must list at least one block, e.g. [{conv: 30, kernel: 5}, {pool: 2}]")
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs images (H, W, C), the data gives input_shape {tuple(input_shape)}")
        init = pick_init(init, activation)
        act = ACTIVATIONS[activation]
        layers: list[Layer] = []
        shape = tuple(int(s) for s in input_shape)  # (H, W, C) while spatial, (D,) after the first dense
        pending: list[Layer] = []  # a conv's [BatchNorm, activation], deferred past a following pool

        def flush():
            layers.extend(pending)
            pending.clear()

        for index, block in enumerate(blocks):
            kind, o = parse_block(index, block)
            where = f"blocks[{index}]"
            bn = o.get("batch_norm", batch_norm)
            if kind in ("conv", "pool") and len(shape) != 3:
                raise ValueError(f"{where}: a {kind} block cannot follow a dense block; put conv and pool blocks first")
            if kind == "conv":
                flush()
                H, W, C = shape
                k, s, p = o["kernel"], o["stride"], o["padding"]
                OH, OW = output_size(H, k, s, p), output_size(W, k, s, p)
                if OH < 1 or OW < 1:
                    raise ValueError(f"{where}: kernel {k} does not fit the {H}x{W} input (padding {p}); "
                                     f"use a smaller kernel or more padding")
                layers.append(Conv2d(C, o["conv"], k, s, p, bias=not bn, needs_input_grad=bool(layers),
                                     init=init, rng=rng, dtype=dtype))
                pending.extend([BatchNorm(o["conv"], dtype=dtype)] if bn else [])
                pending.append(act())
                shape = (OH, OW, o["conv"])
            elif kind == "pool":
                H, W, C = shape
                P, s = o["pool"], o["stride"]
                if P > H or P > W:
                    raise ValueError(f"{where}: pool {P} does not fit the {H}x{W} input; use a smaller pool")
                layers.append(MaxPool2d(P, s))  # before the deferred [BatchNorm,] activation
                shape = ((H - P) // s + 1, (W - P) // s + 1, C)
                flush()
            elif kind == "dense":
                flush()
                if len(shape) == 3:
                    layers.append(Flatten())
                    shape = (int(np.prod(shape)),)
                layers.append(Linear(shape[0], o["dense"], init=init, rng=rng, dtype=dtype))
                if bn:
                    layers.append(BatchNorm(o["dense"], dtype=dtype))
                layers.append(act())
                shape = (o["dense"],)
            else:  # dropout
                flush()
                layers += dropout_layer(float(o["dropout"]), rng, dtype)
        flush()
        if len(shape) == 3:
            layers.append(Flatten())
            shape = (int(np.prod(shape)),)
        layers.append(Linear(shape[0], num_classes, init="xavier", rng=rng, dtype=dtype))
        self._finish(layers)

    @classmethod
    def shrink(cls, config: dict) -> dict:
        def small(block):
            block = dict(block)
            for kind, limit in (("conv", 3), ("dense", 5)):
                if isinstance(block.get(kind), int) and not isinstance(block[kind], bool):
                    block[kind] = min(block[kind], limit)
            return block

        return {**config, "blocks": [small(b) if isinstance(b, dict) else b
                                     for b in config.get("blocks", SIMPLE_CONV_NET)]}
