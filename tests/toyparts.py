"""A tiny data set and model, registered under test-only names.

`toy_blobs` is three Gaussian clusters in 4-D, `toy_softmax` is softmax regression
written directly on Params: small enough that a whole `nnctl train` takes well under a
second, so the Trainer, run directories and CLI can be tested on real runs. Subprocess
tests import this module before running the CLI (see `run_cli_subprocess` in conftest).
"""

from __future__ import annotations

import numpy as np

from nnctl.data.base import DATASETS, Dataset
from nnctl.functional import log_softmax, softmax
from nnctl.layers.base import Param
from nnctl.models.base import MODELS, LossOutput, Model


@DATASETS.register("toy_blobs")
class ToyBlobs(Dataset):
    unit = "points"

    def __init__(self, batch_size: int = 16, size: int = 96, noise: float = 0.5, *, dtype, rng=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        gen = np.random.default_rng(123)
        centers = gen.standard_normal((3, 4)) * 3
        self.arrays = {}
        for i, split in enumerate(self.splits):
            y = gen.integers(0, 3, size=size)
            x = centers[y] + noise * gen.standard_normal((size, 4))
            self.arrays[split] = (x.astype(dtype), y)

    def extras(self):
        return {"num_features": 4, "num_classes": 3}

    def num_batches(self, split, batch_size=None):
        return -(-len(self.arrays[split][1]) // (batch_size or self.batch_size))

    def batches(self, split, *, rng=None, batch_size=None):
        x, y = self.arrays[split]
        order = rng.permutation(len(y)) if rng is not None else np.arange(len(y))
        size = batch_size or self.batch_size
        for start in range(0, len(y), size):
            idx = order[start:start + size]
            yield x[idx], y[idx]


@MODELS.register("toy_softmax")
class ToySoftmax(Model):
    metric = "accuracy"

    def __init__(self, scale: float = 0.1, dropout: float = 0.0, *, num_features, num_classes, rng,
                 dtype=np.float32):
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.W = Param.init(rng.standard_normal((num_features, num_classes)) * scale, dtype)
        self.b = Param.init(np.zeros(num_classes), dtype)
        self.dropout = dropout
        self.rng = rng  # input dropout draws from it: resume must restore its state

    def loss(self, batch, state=None):
        x, y = batch
        if self.training and self.dropout:
            x = x * (self.rng.random(x.shape) >= self.dropout) / (1 - self.dropout)
        logits = x @ self.W.data + self.b.data
        logp = log_softmax(logits)
        self.cache = (x, y, logits)
        picked = logp[np.arange(len(y)), y]
        return LossOutput(float(-picked.sum()), len(y), int((logits.argmax(1) == y).sum())), None

    def backward(self):
        x, y, logits = self.cache
        d = softmax(logits)
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        self.W.grad += x.T @ d
        self.b.grad += d.sum(0)

    @classmethod
    def gradcheck_case(cls, config, rng):
        x = rng.standard_normal((5, 4))
        return config, {"num_features": 4, "num_classes": 3}, (x, rng.integers(0, 3, size=5))
