"""Count-based word vectors: positive PMI of window co-occurrences, reduced by truncated SVD.

    counts #(w, c) of words ≤ window apart  ──PPMI──▶  M (V, V), sparse
    M ≈ U Σ Vᵀ (rank D, randomised SVD)     ──▶  vectors = U Σ^eig_power  (V, D)

    PMI(w, c) = log( #(w, c) · Σ_c' #(c')^α  /  (#(w) · #(c)^α) ),   PPMI = max(PMI, 0)

α = context_power = 0.75 is "context distribution smoothing" and eig_power = 0.5 the
symmetric weighting of Levy, Goldberg & Dagan 2015 ("Improving Distributional Similarity
with Lessons Learned from Word Embeddings"); both help on similarity and analogy tasks.
Only non-zero counts are visited, so M keeps the sparsity of the counts; the SVD is the
randomised range finder of Halko, Martinsson & Tropp 2011, a few sparse products with a
(V, D + oversample) block, so memory stays at a few (V, D) arrays.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nnctl.models.base import MODELS, LossOutput, Model


def positive_pmi(counts: sp.spmatrix, context_power: float = 0.75) -> sp.csr_matrix:
    """PPMI of a (V, V) co-occurrence count matrix, computed on its non-zeros only."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    word_totals = np.asarray(counts.sum(axis=1)).ravel()  # #(w)
    context_totals = np.asarray(counts.sum(axis=0)).ravel() ** context_power  # #(c)^α
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    cols = counts.indices
    # (#(w,c)/N) / ((#(w)/N)·(#(c)^α/Σ#(c')^α)): the corpus total N cancels
    pmi = np.log(counts.data * context_totals.sum() / (word_totals[rows] * context_totals[cols]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (rows[keep], cols[keep])), shape=counts.shape)


def orthonormal_columns(Y: np.ndarray) -> np.ndarray:
    """An orthonormal basis (m, r) of the column space of Y (m, k), r <= k.

    CholeskyQR2 done with a k x k eigen-decomposition: Y = Q R with Q = Y V Λ^-1/2 where
    YᵀY = V Λ Vᵀ, applied twice for accuracy. It costs two (m, k) products and a tiny
    eigh, where LAPACK's Householder QR of a tall matrix was ~100x slower on a busy
    2-core machine (thread oversubscription in the multi-threaded QR).
    """
    for _ in range(2):
        eigenvalues, V = np.linalg.eigh(Y.T @ Y)
        keep = eigenvalues > eigenvalues.max() * 1e-12  # drop directions lost to rounding
        Y = Y @ (V[:, keep] / np.sqrt(eigenvalues[keep]))
    return Y


def randomized_svd(matrix, rank: int, *, rng: np.random.Generator, oversample: int = 20,
                   power_iterations: int = 4):
    """Top-`rank` singular triplets (U (m, r), s (r,), Vt (r, n)) of a (sparse) matrix.

    Halko et al. 2011, algorithms 4.4 + 5.1: find an orthonormal basis Q of the range of
    A Ω (Ω Gaussian, rank + oversample columns), sharpened by power iterations
    (re-orthonormalised each time so the small singular values do not drown), then take
    the SVD of the small matrix B = Qᵀ A through the eigen-decomposition of B Bᵀ.
    """
    m, n = matrix.shape
    width = min(rank + oversample, min(m, n))
    Q = orthonormal_columns(np.asarray(matrix @ rng.standard_normal((n, width))))
    for _ in range(power_iterations):
        Z = orthonormal_columns(np.asarray(matrix.T @ Q))
        Q = orthonormal_columns(np.asarray(matrix @ Z))
    B = np.asarray(matrix.T @ Q).T  # Qᵀ A, (width, n)
    squares, Ub = np.linalg.eigh(B @ B.T)  # B Bᵀ = Ub Σ² Ubᵀ, ascending
    order = np.argsort(squares)[::-1][:rank]
    s = np.sqrt(np.maximum(squares[order], 0.0))
    Ub = Ub[:, order]
    Vt = (Ub.T @ B) / np.where(s > 0, s, 1.0)[:, None]
    return Q @ Ub, s, Vt


@MODELS.register("ppmi_svd")
class PPMISVD(Model):
    """Word vectors from PPMI + truncated SVD; `fit(dataset)` instead of gradient descent.

    Data: a context-window data set (`ptb_cbow`, `text_cbow`); its `window` and
    `dynamic_window` decide which pairs are counted (see `ContextWindows.cooccurrence`).
    """

    trainable = False
    metric = "loss"
    devices = ("cpu",)  # SciPy sparse counts and a host SVD
    buffer_names = ("vectors",)

    def __init__(self, vector_size: int = 100, context_power: float = 0.75, eig_power: float = 0.5,
                 oversample: int = 20, power_iterations: int = 4,
                 *, vocab_size: int, rng: np.random.Generator, dtype=np.float32):
        if vector_size <= 0:
            raise ValueError(f"vector_size must be > 0, got {vector_size}")
        if vector_size >= vocab_size:
            raise ValueError(f"vector_size must be smaller than the vocabulary ({vocab_size} words), "
                             f"got {vector_size}")
        if not 0 < context_power <= 1:
            raise ValueError(f"context_power must be in (0, 1] (0.75 smooths, 1 is plain PMI), got {context_power}")
        if not 0 <= eig_power <= 1:
            raise ValueError(f"eig_power must be in [0, 1], got {eig_power}")
        if oversample < 0 or power_iterations < 0:
            raise ValueError(f"oversample and power_iterations must be >= 0, got {oversample}, {power_iterations}")
        self.vector_size = vector_size
        self.context_power = context_power
        self.eig_power = eig_power
        self.oversample = oversample
        self.power_iterations = power_iterations
        self.rng = rng
        self.vectors = np.zeros((vocab_size, vector_size), dtype=dtype)

    def fit(self, dataset) -> None:
        ppmi = positive_pmi(dataset.cooccurrence("train"), self.context_power)
        U, s, _ = randomized_svd(ppmi, self.vector_size, rng=self.rng, oversample=self.oversample,
                                 power_iterations=self.power_iterations)
        self.vectors[...] = U * s ** self.eig_power

    def loss(self, batch, state=None):
        """Held-out fit, as a loss: mean cosine distance 1 - cos(mean of context vectors, target vector).

        The model has no training objective; this tells how well held-out contexts point
        at their word (0 = perfectly, 1 = unrelated) so `nnctl train` can report valid/test.
        """
        unit = self.vectors / np.maximum(np.linalg.norm(self.vectors, axis=1, keepdims=True), 1e-12)
        weights = batch.mask / np.maximum(batch.mask.sum(axis=1, keepdims=True), 1)
        h = np.einsum("nc,ncd->nd", weights.astype(unit.dtype), unit[batch.context])
        h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        distance = 1.0 - np.sum(h * unit[batch.target], axis=1)
        return LossOutput(loss_sum=float(distance.sum()), count=int(len(distance))), None

    def word_vectors(self) -> np.ndarray:
        return self.vectors
