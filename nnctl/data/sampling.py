"""Word sampling for word2vec: negative samples from unigram^0.75, and frequent-word sub-sampling.

Negative sampling (Mikolov et al. 2013, "Distributed Representations of Words and Phrases
and their Compositionality", section 2.2) draws k "noise" words per training example from

    P_n(w) = count(w)^0.75 / sum_v count(v)^0.75

The 0.75 power flattens the distribution: rare words are drawn more often than their
frequency, very common ones ("the") less often.

The sampler keeps the cumulative distribution F (V,) and draws by inverse transform:
u ~ U[0, 1), w = searchsorted(F, u). One vectorised call draws any number of words; the
cost is O(n log V) with no Python loop per draw.
"""

from __future__ import annotations

import numpy as np


class UnigramSampler:
    """Draws word ids with probability proportional to count^power.

    counts: (V,) non-negative word counts; words with count 0 (such as `<eos>`, which
    never appears as a training word) are never drawn.
    """

    def __init__(self, counts, power: float = 0.75):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 1 or counts.size == 0:
            raise ValueError(f"counts must be a non-empty 1-D array, got shape {counts.shape}")
        if np.any(counts < 0) or not np.any(counts > 0):
            raise ValueError("counts must be >= 0 with at least one word counted")
        weights = counts ** power
        self.probs = weights / weights.sum()
        self.cdf = np.cumsum(self.probs)
        self.cdf[-1] = 1.0  # rounding must not leave a gap that searchsorted maps past the end
        self.power = float(power)

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        """Word ids of the given shape, drawn independently (with replacement). int64."""
        u = rng.random(shape)
        # side="right": a word with probability 0 has F equal to its predecessor's, and
        # u == F[i] must go past it to the next word that has mass.
        return np.searchsorted(self.cdf, u, side="right").astype(np.int64, copy=False)


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """Per-word probability of keeping each occurrence under frequent-word sub-sampling.

    With f(w) = count(w) / total and threshold t = `sample`, each occurrence of w is kept with

        p_keep(w) = min(1, (sqrt(f / t) + 1) * t / f)

    which is the formula of word2vec.c and gensim (a smoothed form of the paper's
    1 - sqrt(t / f)). Words rarer than about t are always kept. sample = 0 keeps everything.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    total = counts.sum()
    threshold = sample * total
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(counts / threshold) + 1) * threshold / counts
    keep[counts == 0] = 1.0
    return np.minimum(keep, 1.0)
