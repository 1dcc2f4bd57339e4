"""A multi-layer perceptron for images: Flatten → (Linear → [BatchNorm] → act → [Dropout])× → Linear."""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnctl.layers import BatchNorm, Flatten, Layer, Linear
from nnctl.models.base import MODELS
from nnctl.models.classifier import ACTIVATIONS, Classifier, check_dropout, dropout_layer, pick_init


@MODELS.register("mlp")
class MLP(Classifier):
    """Fully connected classifier (DL from Scratch ch. 3-6): hidden sizes, activation, optional
    batch norm (Ioffe & Szegedy 2015) and inverted dropout (Srivastava et al. 2014).

    x: (N, *input_shape) → logits (N, num_classes).
    init "auto" picks He for ReLU and Xavier (std sqrt(1/fan_in)) for sigmoid / tanh; a number
    is a fixed standard deviation for every hidden layer (e.g. 0.01, as in DLFS ch. 6).
    """

    def __init__(self, hidden_sizes: list[int] = (256, 256),
                 activation: Literal["relu", "sigmoid", "tanh"] = "relu",
                 batch_norm: bool = False, dropout: float = 0.0,
                 init: Literal["he", "xavier", "glorot", "auto"] | float = "auto",
                 *, input_shape, num_classes: int, rng: np.random.Generator, dtype):
        for i, size in enumerate(hidden_sizes):
            if size <= 0:
                raise ValueError(f"hidden_sizes[{i}] must be > 0, got {size}")
        check_dropout(dropout)
        init = pick_init(init, activation)
        layers: list[Layer] = [Flatten()]
        width = int(np.prod(input_shape))
        for size in hidden_sizes:
            layers.append(Linear(width, size, init=init, rng=rng, dtype=dtype))
            if batch_norm:
                layers.append(BatchNorm(size, dtype=dtype))
            layers.append(ACTIVATIONS[activation]())
            layers += dropout_layer(dropout, rng, dtype)
            width = size
        # the output layer feeds a softmax, not an activation: Xavier scale keeps logits small
        layers.append(Linear(width, num_classes, init="xavier", rng=rng, dtype=dtype))
        self._finish(layers)

    @classmethod
    def shrink(cls, config: dict) -> dict:
        return {**config, "hidden_sizes": [min(size, 5) for size in config.get("hidden_sizes", [256, 256])]}
