"""The layers of CBOW with negative sampling (Mikolov et al. 2013a, 2013b).

    context ids (N, C) ──EmbeddingMean(W_in)──▶ h (N, D)
    h, [target | k noise words] (N, 1+k) ──EmbeddingDot(W_out)──▶ scores (N, 1+k)
    scores ──sigmoid cross-entropy──▶ loss = mean_n [ -log σ(s_target) - Σ_noise log σ(-s_noise) ]

N examples, C context slots, D vector size, V vocabulary, k negatives.

Sparse gradients are the point of these layers: a batch touches a few thousand of the V
rows of each table, so backward never builds a (V, D) array. It sums the per-example
contributions of each *distinct* row with one sparse-matrix product and hands the result
to `Param.add_rows`, which records the rows so the optimizer and `zero_grad` visit only
those. ("Scatter-add as a product": row r of the gradient is Σ_e w_e · dout[n(e)] over the
entries e that name row r, i.e. S @ dout with S a (rows × N) sparse matrix.)

These layers are CPU-only (SciPy sparse products).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nnctl.backend import distinct_rows
from nnctl.data.sampling import UnigramSampler
from nnctl.functional import sigmoid
from nnctl.layers.base import Layer, Param


def row_gradients(ids: np.ndarray, weights: np.ndarray, indptr: np.ndarray, dout: np.ndarray, num_rows: int):
    """Σ_e weights[e] · dout[n(e)], grouped by ids[e]; entries indptr[n]:indptr[n+1] belong to example n.

    Returns (rows (U,) distinct ids, grads (U, D)). The (U × N) matrix is built in CSC form
    straight from `indptr` (no sorting), and duplicate (row, example) pairs simply add up
    in the product.
    """
    rows, inverse = distinct_rows(ids, num_rows)
    scatter = sp.csc_matrix((weights, inverse, indptr), shape=(len(rows), dout.shape[0]))
    return rows, np.asarray(scatter @ dout)


class EmbeddingMean(Layer):
    """h_n = (1 / |C_n|) Σ_{c ∈ C_n} W[ids[n, c]]: the mean of the context word vectors.

    ids: (N, C) int, mask: (N, C) bool (False for slots past a sentence edge or outside
    the example's window) → h: (N, D). A row with no context gets h = 0.
    """

    def __init__(self, vocab_size: int, dim: int, *, rng: np.random.Generator, dtype=np.float32):
        # word2vec.c's initialisation: uniform in [-0.5/D, 0.5/D)
        init = (rng.random((vocab_size, dim)) - 0.5) / dim
        self.W = Param.init(init, dtype, sparse=True)

    def forward(self, ids, mask=None):
        ids = np.asarray(ids)
        N, C = ids.shape
        mask = np.ones((N, C), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        count = mask.sum(axis=1)
        flat_ids = ids[mask]  # row-major, so example n's entries are contiguous
        weights = np.repeat(1.0 / np.maximum(count, 1), count).astype(self.W.data.dtype)
        indptr = np.concatenate([[0], np.cumsum(count)])
        self.cache = (flat_ids, weights, indptr)
        averaging = sp.csr_matrix((weights, flat_ids, indptr), shape=(N, self.W.data.shape[0]))
        return np.asarray(averaging @ self.W.data)  # reads only the rows named, never all of W

    def backward(self, dh):
        # dL/dW[r] = Σ_{(n, c): ids[n, c] = r} dh_n / |C_n|
        flat_ids, weights, indptr = self.cache
        rows, grads = row_gradients(flat_ids, weights, indptr, dh, self.W.data.shape[0])
        self.W.add_rows(rows, grads)
        return None  # ids are not differentiable


class EmbeddingDot(Layer):
    """s[n, j] = W[ids[n, j]] · h_n: scores of candidate words against each hidden vector.

    h: (N, D), ids: (N, K) → s: (N, K).
    """

    def __init__(self, vocab_size: int, dim: int, *, init_scale: float = 0.0,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        # word2vec.c starts the output vectors at zero (init_scale 0); otherwise uniform in ±init_scale/D
        init = np.zeros((vocab_size, dim))
        if init_scale:
            init = (rng.random((vocab_size, dim)) * 2 - 1) * init_scale / dim
        self.W = Param.init(init, dtype, sparse=True)

    def forward(self, h, ids):
        ids = np.asarray(ids)
        self.h, self.ids = h, ids
        self.rows = np.take(self.W.data, ids, axis=0)  # (N, K, D); take is ~2x faster than W[ids]
        return np.einsum("nkd,nd->nk", self.rows, h)

    def backward(self, ds):
        N, K = self.ids.shape
        dh = np.einsum("nk,nkd->nd", ds, self.rows)  # Σ_j ds_nj · W[ids_nj]
        # dL/dW[r] = Σ_{(n, j): ids[n, j] = r} ds[n, j] · h_n
        indptr = np.arange(0, N * K + 1, K)
        rows, grads = row_gradients(self.ids.reshape(-1), ds.reshape(-1), indptr, self.h, self.W.data.shape[0])
        self.W.add_rows(rows, grads)
        return dh


class NegativeSamplingLoss(Layer):
    """Binary logistic loss of the target against k noise words drawn from unigram^0.75.

    h: (N, D), target: (N,) → mean over n of

        ℓ_n = -log σ(W_out[t_n] · h_n) - Σ_{j=1..k} log σ(-W_out[w_nj] · h_n),  w_nj ~ P_n

    σ(-z) = 1 - σ(z), and -log σ(z) = softplus(-z) is computed as logaddexp(0, -z) so it
    never overflows. As in word2vec.c and gensim, a noise word that happens to equal the
    target is skipped (its term masked out) rather than redrawn.

    The noise words come from `self.rng`; a gradient check reseeds it so that every
    evaluation sees the same draws.
    """

    def __init__(self, vocab_size: int, dim: int, negatives: int, sampler: UnigramSampler,
                 *, rng: np.random.Generator, init_scale: float = 0.0, dtype=np.float32):
        if negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {negatives}")
        self.dot = EmbeddingDot(vocab_size, dim, init_scale=init_scale, rng=rng, dtype=dtype)
        self.negatives = int(negatives)
        self.sampler = sampler
        self.rng = rng

    def forward(self, h, target):
        target = np.asarray(target)
        N = target.shape[0]
        noise = self.sampler.sample(self.rng, (N, self.negatives))
        ids = np.concatenate([target[:, None], noise], axis=1)  # (N, 1+k)
        s = self.dot.forward(h, ids)
        self.sign = np.ones(1 + self.negatives, dtype=s.dtype)
        self.sign[1:] = -1  # z = +s for the target, -s for noise: σ(z) is "the right answer"
        z = s * self.sign
        self.valid = np.ones_like(s)
        self.valid[:, 1:] = noise != target[:, None]
        self.z = z
        self.per_example = (self.valid * np.logaddexp(0, -z)).sum(axis=1)  # (N,)
        return self.per_example.mean()

    def backward(self, dout=1.0):
        N = self.z.shape[0]
        # d softplus(-z)/dz = -σ(-z); dz/ds = sign
        ds = (-float(dout) / N) * self.valid * sigmoid(-self.z) * self.sign
        return self.dot.backward(ds)
