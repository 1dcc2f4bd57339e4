"""Word embeddings in, word scores out: the two ends of a language model.

    Embedding         ids (...,) -> vectors (..., D)        y = W[ids]
    OutputProjection  h (..., H) -> logits (..., V)         logits = h @ W.T + b

Both keep their matrix as (V, D) rows, one row per word, so an output projection can
hold the *same* Param as the embedding: weight tying (Press & Wolf 2017; Inan et al.
2017). Because backward passes add into Param.grad, the tied matrix's gradient is then
the sum of both uses with no bookkeeping.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp, scatter_add
from nnctl.layers.base import Layer, Param


def sum_rows_by_id(ids, values):
    """(unique ids, summed rows): rows of `values` (M, D) that share an id in `ids` (M,) are added.

    Sorting the ids and adding runs with `add.reduceat` is several times faster than
    `add.at` on a (700, 650) gradient, and leaves unique rows that a plain fancy-index
    `+=` can update.
    """
    xp = get_xp(values)
    if xp is not np:  # CuPy: its scatter_add is fast on the device
        return ids, values
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    return sorted_ids[starts], np.add.reduceat(values[order], starts, axis=0)


class Embedding(Layer):
    """y = W[ids]. ids: integers of any shape (...,) -> y: (..., D).   W: (V, D).

    Backward adds each row of dy into the row of W its word came from (a word seen
    twice in the batch gets both rows). There is no gradient for integer ids.
    sparse: make W a sparse Param (only the touched rows are zeroed, clipped and updated).
    """

    def __init__(self, vocab_size: int, embed_dim: int, *, rng: np.random.Generator,
                 init_scale: float = 0.1, dtype=np.float32, sparse: bool = False):
        if vocab_size <= 0 or embed_dim <= 0:
            raise ValueError(f"vocab_size and embed_dim must be > 0, got {vocab_size} and {embed_dim}")
        self.W = Param.init(rng.uniform(-init_scale, init_scale, (vocab_size, embed_dim)), dtype, sparse=sparse)

    def forward(self, ids):
        self.ids = ids
        return self.W.data[ids]

    def backward(self, dy):
        rows, sums = sum_rows_by_id(self.ids.reshape(-1), dy.reshape(-1, dy.shape[-1]))
        if self.W.sparse:
            self.W.add_rows(rows, sums)  # records the touched rows for sparse optimizers
        elif get_xp(sums) is np:
            self.W.grad[rows] += sums  # rows are unique here, so fancy += is exact
        else:
            scatter_add(self.W.grad, rows, sums)
        return None


def output_weight(in_dim: int, vocab_size: int, *, rng, weight: Param | None, init_scale: float, dtype) -> Param:
    """The (V, H) output matrix: `weight` when tied (checked for shape), else a new one."""
    if weight is None:
        return Param.init(rng.uniform(-init_scale, init_scale, (vocab_size, in_dim)), dtype)
    if weight.shape != (vocab_size, in_dim):
        raise ValueError(f"a tied weight must have shape {(vocab_size, in_dim)}, got {weight.shape}")
    return weight


class OutputProjection(Layer):
    """logits = h @ W.T + b.   h: (..., H) -> logits: (..., V).   W: (V, H), b: (V,).

    `weight`: a Param to use as W — the embedding's, for tied weights (then H must equal
    the embedding size). Otherwise a new (V, H) matrix is made.
    """

    def __init__(self, in_dim: int, vocab_size: int, *, rng: np.random.Generator,
                 weight: Param | None = None, init_scale: float = 0.1, dtype=np.float32):
        self.W = output_weight(in_dim, vocab_size, rng=rng, weight=weight, init_scale=init_scale, dtype=dtype)
        self.b = Param.init(np.zeros(vocab_size), dtype)

    def forward(self, h):
        self.h2d = h.reshape(-1, h.shape[-1])
        logits = self.h2d @ self.W.data.T + self.b.data  # W.T is a view: BLAS reads it transposed
        return logits.reshape(*h.shape[:-1], -1)

    def backward(self, dlogits):
        d2d = dlogits.reshape(-1, dlogits.shape[-1])
        self.W.grad += d2d.T @ self.h2d  # (V, M) @ (M, H): added, so a tied W sums both uses
        self.b.grad += d2d.sum(axis=0)
        return (d2d @ self.W.data).reshape(*dlogits.shape[:-1], -1)
