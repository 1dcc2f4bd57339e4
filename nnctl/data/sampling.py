"""Word sampling for word2vec: negative samples from unigram^0.75, and frequent-word sub-sampling.

Negative sampling (Mikolov et al. 2013, "Distributed Representations of Words and Phrases
and their Compositionality", section 2.2) draws k "noise" words per training example from

    P_n(w) = count(w)^0.75 / sum_v count(v)^0.75

The 0.75 power flattens the distribution: rare words are drawn more often than their
frequency, very common ones ("the") less often.
"""

from __future__ import annotations

import numpy as np


class UnigramSampler:
    """Draws word ids with probability proportional to count^power, exactly, in O(1) per draw.

    word2vec.c fills a table of 10^8 slots, word w taking ~P(w)·10^8 of them, and indexes
    it with a random integer: fast, but P(w) is rounded to the table's grain. Here a table
    of M slots gives word w floor(P(w)·M) slots, and the mass the rounding left over
    (at most V/M in total) is drawn from a cumulative table of the remainders:

        u ~ U[0, 1):   u·M < T (slots used)  →  table[floor(u·M)]
                       otherwise            →  searchsorted(remainder CDF, rescaled u)

    so P(draw = w) = floor(P(w)·M)/M + remainder(w) = P(w) exactly, and only a fraction
    <= V/M of the draws pays for a binary search. No Python loop per draw.

    counts: (V,) non-negative; a word with count 0 (`<eos>`) is never drawn.
    """

    def __init__(self, counts, power: float = 0.75, table_size: int = 1 << 21):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 1 or counts.size == 0:
            raise ValueError(f"counts must be a non-empty 1-D array, got shape {counts.shape}")
        if np.any(counts < 0) or not np.any(counts > 0):
            raise ValueError("counts must be >= 0 with at least one word counted")
        weights = np.where(counts > 0, counts ** power, 0.0)
        self.probs = weights / weights.sum()
        self.power = float(power)
        slots = np.floor(self.probs * table_size).astype(np.int64)
        index_type = np.int32 if counts.size < 2**31 else np.int64
        self.table = np.repeat(np.arange(counts.size, dtype=index_type), slots)  # (T,) T <= M
        self.table_size = int(table_size)
        remainder = np.maximum(self.probs - slots / table_size, 0.0)
        self.table_mass = len(self.table) / table_size
        # side="right" below: a word with no remainder has the CDF of its predecessor, and
        # v == F[i] must go past it to the next word that has mass.
        total = remainder.sum()
        self.remainder_cdf = np.cumsum(remainder) / total if total > 0 else None
        if self.remainder_cdf is not None:
            self.remainder_cdf[-1] = 1.0

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        """Word ids of the given shape, drawn independently (with replacement). int64."""
        u = rng.random(shape)
        slot = (u * self.table_size).astype(np.int64)
        T = len(self.table)
        out = np.take(self.table, np.minimum(slot, T - 1)).astype(np.int64)
        past = slot >= T
        if self.remainder_cdf is not None and past.any():
            v = (u[past] - self.table_mass) / (1.0 - self.table_mass)  # uniform on [0, 1) again
            out[past] = np.searchsorted(self.remainder_cdf, v, side="right")
        return out


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
