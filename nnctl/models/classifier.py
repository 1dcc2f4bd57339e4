"""What the image classifiers (mlp, cnn) share: a layer stack, softmax cross-entropy, accuracy."""

from __future__ import annotations

import numpy as np

from nnctl.layers import Dropout, Layer, ReLU, Sequential, Sigmoid, SoftmaxCrossEntropy, Tanh
from nnctl.models.base import LossOutput, Model

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def pick_init(init: str | float, activation: str) -> str | float:
    """"auto": He for ReLU, Xavier for the saturating sigmoid / tanh; a name or a fixed std as it is."""
    if init == "auto":
        return "he" if activation == "relu" else "xavier"
    return init


def check_dropout(p: float, where: str = "dropout") -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{where} must be in [0, 1), got {p}")


class Classifier(Model):
    """images (N, ...) → `self.net` → logits (N, num_classes) → mean cross-entropy.

    Subclasses build `self.net` (a Sequential) in their constructor.
    """

    metric = "accuracy"
    net: Sequential

    def _finish(self, layers: list[Layer]) -> None:
        self.net = Sequential(layers)
        self.criterion = SoftmaxCrossEntropy()

    def forward(self, x):
        """Logits (N, num_classes) for images x."""
        return self.net.forward(x)

    def loss(self, batch, state=None):
        x, y = batch
        mean = self.criterion.forward(self.net.forward(x), y)
        count = self.criterion.count
        return LossOutput(loss_sum=mean * count, count=count, correct=self.criterion.correct()), None

    def backward(self) -> None:
        self.net.backward(self.criterion.backward(1.0))

    @classmethod
    def gradcheck_case(cls, config, rng):
        """`nnctl gradcheck`: the configured model shrunk (`shrink`) on 4 random images
        of the smallest size from 6x6 up that its layers fit, 3 classes."""
        from nnctl.errors import ConfigError
        from nnctl.registry import construct

        small = cls.shrink({k: v for k, v in config.items() if k != "type"})
        for size in range(6, 65):
            extras = {"input_shape": (size, size, 1), "num_classes": 3}
            try:
                construct(cls, small, "model", {**extras, "rng": np.random.default_rng(0), "dtype": np.float64})
                break
            except ConfigError:  # too small for the kernels and pools: try a larger image
                continue
        batch = (rng.standard_normal((4, size, size, 1)), rng.integers(0, 3, 4))
        return {"type": config["type"], **small}, extras, batch

    @classmethod
    def shrink(cls, config: dict) -> dict:
        """The config with every width cut to a few units, so central differences are cheap."""
        raise NotImplementedError

    def predict(self, x):
        """Class ids (N,)."""
        return self.forward(x).argmax(axis=-1)


def dropout_layer(p: float, rng, dtype) -> list[Layer]:
    return [Dropout(p, rng=rng, dtype=dtype)] if p > 0 else []
