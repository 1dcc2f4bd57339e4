"""What every model offers the Trainer, and the registry that `model.type` picks from.

A model is a Layer that also knows its loss. One Trainer drives every model through:

    out, state = model.loss(batch, state)   # forward + loss; caches what backward needs
    model.backward()                        # gradient of the batch's *mean* loss into Param.grad

`state` is whatever a model carries from one batch to the next (the LSTM's (h, c));
image models take None and return None. The Trainer resets it to None at each epoch and
before every evaluation.

Models that are not trained by gradient descent (the count-based `ppmi_svd`) set
`trainable = False` and implement `fit(dataset)` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnctl.layers.base import Layer
from nnctl.registry import Registry

MODELS = Registry("model")


@dataclass
class LossOutput:
    """One batch's loss: the Trainer sums these to report mean loss, accuracy or perplexity."""

    loss_sum: float  # sum of per-item losses (items: images, tokens, context windows)
    count: int  # how many items
    correct: int | None = None  # classifiers: how many items were predicted right
    # When `correct` counts whole examples made of several items (seq2seq: answers right in
    # every character, while the loss is per character): how many examples, and how many
    # of the `count` items were right. Accuracy is then correct / examples.
    examples: int | None = None
    correct_tokens: int | None = None


class Model(Layer):
    # What the Trainer reports besides the loss: "accuracy", "perplexity" or "loss".
    metric: str = "loss"
    # What a reported value counts, where the metric's general meaning (metrics.py) says too little.
    metric_meanings: dict[str, str] = {}
    trainable: bool = True
    # Where the model can run. Layers built on SciPy sparse products (CBOW's) are host-only.
    devices: tuple[str, ...] = ("cpu", "gpu")

    def loss(self, batch: Any, state: Any = None) -> tuple[LossOutput, Any]:
        raise NotImplementedError

    def backward(self) -> None:
        raise NotImplementedError

    def fit(self, dataset) -> None:  # only for trainable = False
        raise NotImplementedError

    @classmethod
    def gradcheck_case(cls, config: dict[str, Any], rng) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """For `nnctl gradcheck`: (a shrunken copy of `config`, small data-derived extras, one batch).

        The model is then built in float64 at that small size, and every parameter is
        checked against central differences on the batch.
        """
        raise NotImplementedError(f"model '{getattr(cls, 'registered_name', cls.__name__)}' has no gradcheck case")
