"""A language model's last two steps fused: output projection + softmax cross-entropy.

    loss = sum_i [ log sum_v exp(l_iv) - l_i,y_i ],     l = h @ W.T + b      (M tokens, V words)

The plain composition (OutputProjection, then a softmax cross-entropy layer) is the
reference; this layer computes the same numbers with fewer passes over the (M, V) logits,
which dominate a word-level LM's step (M = 700, V = 10000 on PTB):

* softmax is never normalised in place. One pass, a few rows at a time so that each row
  is still in cache, adds the bias, takes e = exp(l) in place and sums each row into s
  (a product with a vector of ones: BLAS reads the row once, at its speed); it runs on
  every core (`nnctl.threads`). No row max is subtracted first: a row where exp(l) could
  overflow or all of it underflow shows in its sum, and only such rows are taken again
  with the max subtracted (`_shift_rows`, see S_MIN). Then
      dh = g (e @ W / s - W[y])                       (g: upstream gradient, 1/M for a mean)
      [dW | db] = g (e / s - onehot(y)).T @ [h | 1]
                = (e - s onehot(y)).T @ [h g/s | g/s]
  Subtracting s at each row's target is M writes into e, and scaling h's M rows replaces
  dividing e's M x V entries; the column g/s makes the same product give db.
So the (M, V) matrix is touched by one product forward, one elementwise pass, and two
products (e @ W, then e.T @ [...]) for the gradients.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.base import Layer, Param
from nnctl.layers.embedding import output_weight
from nnctl.threads import for_row_blocks

# The softmax is the same for any shift c in exp(l - c); c = the row max is the classic
# guard against overflow, and costs a pass over the row. exp(l) unshifted is exact as it
# stands wherever it neither overflows (then the row's sum is inf) nor underflows so far
# that its sum loses precision. A term blurred or lost by underflow is below the smallest
# normal number (1.2e-38 in float32), V = 1e5 of them below 1.2e-33: against a sum of at
# least S_MIN that is under 1e-12 relative, far under float32's precision (float64's
# smallest normal is 2e-308). A row whose sum is not finite or is below S_MIN is
# recomputed with its max subtracted.
S_MIN = 1e-20


class DecoderCrossEntropy(Layer):
    """Summed softmax cross-entropy of logits = h @ W.T + b against target ids.

    h: (..., H), targets: integers (...,) -> a scalar, the loss summed over tokens.
    W: (V, H) — pass the embedding's Param as `weight` to tie them; b: (V,).
    backward(g) returns dh for the loss scaled by g (g = 1/M for the mean loss).
    """

    def __init__(self, in_dim: int, vocab_size: int, *, rng: np.random.Generator,
                 weight: Param | None = None, init_scale: float = 0.1, dtype=np.float32):
        self.W = output_weight(in_dim, vocab_size, rng=rng, weight=weight, init_scale=init_scale, dtype=dtype)
        self.b = Param.init(np.zeros(vocab_size), dtype)

    def forward(self, h, targets):
        xp = get_xp(h)
        h2d = h.reshape(-1, h.shape[-1])
        M = h2d.shape[0]
        y = targets.reshape(-1)
        W, b = self.W.data, self.b.data
        logits = h2d @ W.T  # (M, V); W.T is a view BLAS reads transposed, never a copy
        target_logit = logits[xp.arange(M), y] + b[y]
        s = xp.empty(M, dtype=logits.dtype)
        ones = xp.ones(logits.shape[1], dtype=logits.dtype)

        def exp_unshifted(start, stop):  # e = exp(l + b) in place, and its row sums
            rows = logits[start:stop]
            rows += b
            with np.errstate(over="ignore", under="ignore"):  # per thread; such rows are redone below
                xp.exp(rows, out=rows)
            xp.dot(rows, ones, out=s[start:stop])

        if xp is np:
            for_row_blocks(exp_unshifted, M)
        else:  # CuPy: each operation is one parallel kernel over all rows
            exp_unshifted(0, M)
        row_max = xp.zeros(M, dtype=logits.dtype)  # the shift of each row: 0 but where redone
        redo = xp.flatnonzero(~(s >= S_MIN) | ~xp.isfinite(s))
        if redo.size:
            self._shift_rows(logits, s, row_max, h2d[redo] @ W.T + b, redo)
        e = logits
        # Training needs e @ W for dh; forward is the one place to take it while e is intact.
        G = e @ W if self.training else None  # (M, H)
        self.cache = (e, G, s, h2d, y)
        self.h_shape = h.shape
        return (xp.log(s) + row_max - target_logit).sum()

    def backward(self, dloss=1.0):
        e, G, s, h2d, y = self.cache
        xp = get_xp(e)
        M, H = h2d.shape
        if G is None:  # forward ran in eval mode
            G = e @ self.W.data
        g = s.dtype.type(dloss)  # a float64 scalar would upcast every float32 product below
        g_over_s = g / s  # (M,)
        dh = G * g_over_s[:, None] - g * self.W.data[y]
        # Subtracting s at each row's target folds the one-hot half of dlogits into e
        # (M writes), so one product gives all of [dW | db]. e is then spent: drop it.
        e[xp.arange(M), y] -= s
        self.cache = None
        scaled = xp.empty((M, H + 1), dtype=h2d.dtype)  # [h g/s | g/s]
        xp.multiply(h2d, g_over_s[:, None], out=scaled[:, :H])
        scaled[:, H] = g_over_s
        dW_b = e.T @ scaled  # (V, H + 1) = [dW | db]
        self.W.grad += dW_b[:, :H]
        self.b.grad += dW_b[:, H]
        return dh.reshape(self.h_shape)

    @staticmethod
    def _shift_rows(e, s, row_max, rows, redo):
        """Rows `redo` of e and s again, from their logits `rows`, with the row max subtracted."""
        xp = get_xp(rows)
        shift = rows.max(axis=1)
        rows = xp.exp(rows - shift[:, None])  # the max term is exp(0) = 1: no overflow, s >= 1
        e[redo] = rows
        s[redo] = rows.sum(axis=1)
        row_max[redo] = shift

    def logits(self, h):
        """The scores the loss is computed from: h (..., H) -> (..., V), for sampling."""
        return h @ self.W.data.T + self.b.data
