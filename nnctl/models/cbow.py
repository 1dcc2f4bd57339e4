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
from nnctl.data.text import EOS, Vocab
from nnctl.data.windows import ContextBatch
from nnctl.layers.negative_sampling import EmbeddingMean, NegativeSamplingLoss
from nnctl.models.base import MODELS, LossOutput, Model


@MODELS.register("cbow")
class CBOW(Model):
    """vector_size D; `negatives` noise words per example from unigram^noise_power.

    W_in starts uniform in ±0.5/D and W_out at zero, as in word2vec.c; `output_init` > 0
    starts W_out uniform in ±output_init/D instead (the gradient check uses it: with
    W_out = 0 the gradient reaching W_in is exactly zero and checks nothing).

    Data: a context-window data set (`ptb_cbow`, `text_cbow`) decides the window and
    sub-sampling and supplies `vocab_size`; the noise distribution comes from the word
    counts the vocabulary carries (saved with the run, so a reloaded model draws alike).
    """

    metric = "loss"
    devices = ("cpu",)  # negative-sampling layers use SciPy sparse products

    def __init__(self, vector_size: int = 100, negatives: int = 5, noise_power: float = 0.75,
                 output_init: float = 0.0, *, vocab_size: int, vocab: Vocab, rng: np.random.Generator, dtype=np.float32):
        if vector_size <= 0:
            raise ValueError(f"vector_size must be > 0, got {vector_size}")
        if negatives <= 0:
            raise ValueError(f"negatives must be > 0, got {negatives}")
        if output_init < 0:
            raise ValueError(f"output_init must be >= 0 (0: output vectors start at zero, as word2vec), got {output_init}")
        if not 0 <= noise_power <= 1:
            raise ValueError(f"noise_power must be in [0, 1] (word2vec uses 0.75), got {noise_power}")
        if vocab is None or len(vocab) != vocab_size:
            raise ValueError(f"cbow needs the data set's vocabulary of {vocab_size} words with their counts")
        counts = np.array(vocab.counts, dtype=np.float64)
        if EOS in vocab:
            counts[vocab.index[EOS]] = 0  # a line end is never a training word, so never noise
        if not np.any(counts > 0):
            raise ValueError("the vocabulary carries no word counts, so there is no noise distribution; "
                             "rebuild it from the corpus (vocab.txt holds word<TAB>count)")
        sampler = UnigramSampler(counts, power=noise_power)
        self.context = EmbeddingMean(vocab_size, vector_size, rng=rng, dtype=dtype)
        self.output = NegativeSamplingLoss(vocab_size, vector_size, negatives, sampler, rng=rng,
                                           init_scale=output_init, dtype=dtype)

    def loss(self, batch, state=None):
        h = self.context.forward(batch.context, batch.mask)  # (N, D)
        self.output.forward(h, batch.target)
        per_example = self.output.per_example
        return LossOutput(loss_sum=float(per_example.sum()), count=int(per_example.shape[0])), None

    def backward(self) -> None:
        dh = self.output.backward(1.0)  # gradient of the batch's mean loss
        self.context.backward(dh)

    @classmethod
    def gradcheck_case(cls, config, rng):
        """Vector size 4, 3 noise words, random W_out, 9 words, 5 examples of 4 context slots."""
        V = 9
        vocab = Vocab([f"w{i}" for i in range(V)], list(range(V, 0, -1)))
        context = rng.integers(0, V, size=(5, 4))
        mask = rng.random((5, 4)) < 0.7
        mask[:, 0] = True  # every example keeps at least one context word
        small = {**config, "vector_size": 4, "negatives": 3, "output_init": 2.0}
        return small, {"vocab_size": V, "vocab": vocab}, ContextBatch(context, mask, rng.integers(0, V, size=5))

    def word_vectors(self) -> np.ndarray:
        """(V, D): the input embeddings, the vectors word2vec publishes."""
        return self.context.W.data
