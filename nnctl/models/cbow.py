"""CBOW word2vec with negative sampling (Mikolov et al. 2013a "Efficient Estimation of Word
Representations in Vector Space"; 2013b "Distributed Representations of Words and Phrases").

    context words (N, C) ──mean of W_in rows──▶ h (N, D) ──· W_out[target | k noise]──▶ (N, 1+k)
                                                           ──sigmoid cross-entropy──▶ loss

The word vectors are the rows of W_in (V, D). Both tables are sparse Params: a batch
touches only the rows of the words it holds, and the optimizer (lazy SGD or Adam)
updates only those.
"""

from __future__ import annotations

import numpy as np

from nnctl.data.sampling import UnigramSampler
from nnctl.layers.negative_sampling import EmbeddingMean, NegativeSamplingLoss
from nnctl.models.base import MODELS, LossOutput, Model


@MODELS.register("cbow")
class CBOW(Model):
    """vector_size D; `negatives` noise words per example from unigram^noise_power.

    Data: a context-window data set (`ptb_cbow`, `text_cbow`) decides the window and
    sub-sampling and supplies `vocab_size` and `word_counts` (for the noise distribution).
    """

    metric = "loss"

    def __init__(self, vector_size: int = 100, negatives: int = 5, noise_power: float = 0.75,
                 *, vocab_size: int, word_counts, rng: np.random.Generator, dtype=np.float32):
        if vector_size <= 0:
            raise ValueError(f"vector_size must be > 0, got {vector_size}")
        if negatives <= 0:
            raise ValueError(f"negatives must be > 0, got {negatives}")
        if not 0 <= noise_power <= 1:
            raise ValueError(f"noise_power must be in [0, 1] (word2vec uses 0.75), got {noise_power}")
        sampler = UnigramSampler(word_counts, power=noise_power)
        self.context = EmbeddingMean(vocab_size, vector_size, rng=rng, dtype=dtype)
        self.output = NegativeSamplingLoss(vocab_size, vector_size, negatives, sampler, rng=rng, dtype=dtype)

    def loss(self, batch, state=None):
        h = self.context.forward(batch.context, batch.mask)  # (N, D)
        self.output.forward(h, batch.target)
        per_example = self.output.per_example
        return LossOutput(loss_sum=float(per_example.sum()), count=int(per_example.shape[0])), None

    def backward(self) -> None:
        dh = self.output.backward(1.0)  # gradient of the batch's mean loss
        self.context.backward(dh)

    def word_vectors(self) -> np.ndarray:
        """(V, D): the input embeddings, the vectors word2vec publishes."""
        return self.context.W.data
