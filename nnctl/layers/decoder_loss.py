"""A language model's last two steps fused: output projection + softmax cross-entropy.

    loss = sum_i [ log sum_v exp(l_iv) - l_i,y_i ],     l = h @ W.T + b      (M tokens, V words)

The plain composition (OutputProjection, then a softmax cross-entropy layer) is the
reference; this layer computes the same numbers with fewer passes over the (M, V) logits,
which dominate a word-level LM's step (M = 700, V = 10000 on PTB):

* the bias rides in the matrix product: [h | 1] @ [W | b].T = h @ W.T + b;
* softmax is never normalised in place. exp(l - max) is taken once, in place, and the
  row sums s come out of the backward product for free via a column of ones in
  [W | b | 1]: e @ [W | b | 1] = [e @ W, e @ b, s]. Then
      dh = g (e @ W / s - W[y])                  (g: upstream gradient, 1/M for a mean)
      dW = g (e.T @ (h / s) - onehot(y).T @ h)   (scaling h's M rows, not e's M x V)
      db = g (e.T @ (1 / s) - counts(y))
  so the (M, V) matrix is touched by one product forward, one in-place max/subtract/exp,
  and two products backward.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp, scatter_add
from nnctl.layers.base import Layer, Param
from nnctl.layers.embedding import output_weight, sum_rows_by_id


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
        self._W_aug = None

    def _augmented_weight(self):
        """[W | b | 1] (V, H + 2), refreshed from the Params on every forward."""
        W = self.W.data
        V, H = W.shape
        if self._W_aug is None or self._W_aug.dtype != W.dtype or get_xp(self._W_aug) is not get_xp(W):
            self._W_aug = get_xp(W).empty((V, H + 2), dtype=W.dtype)
        self._W_aug[:, :H] = W
        self._W_aug[:, H] = self.b.data
        self._W_aug[:, H + 1] = 1
        return self._W_aug

    def forward(self, h, targets):
        xp = get_xp(h)
        H = h.shape[-1]
        h2d = h.reshape(-1, H)
        M = h2d.shape[0]
        y = targets.reshape(-1)
        W_aug = self._augmented_weight()
        h_aug = xp.empty((M, H + 2), dtype=h.dtype)  # [h | 1 | 0]
        h_aug[:, :H] = h2d
        h_aug[:, H] = 1
        h_aug[:, H + 1] = 0
        logits = h_aug @ W_aug.T  # (M, V) = h @ W.T + b; W_aug.T is a view BLAS reads transposed
        target_logit = logits[xp.arange(M), y]
        row_max = logits.max(axis=1)
        logits -= row_max[:, None]  # log-sum-exp: float32 exp cannot overflow
        e = xp.exp(logits, out=logits)
        # Training needs e @ W for dh anyway; its ones column gives the row sums with it.
        G = e @ W_aug if self.training else None  # (M, H + 2) = [e @ W, e @ b, s]
        s = G[:, H + 1] if G is not None else e.sum(axis=1)
        self.cache = (e, G, s, h_aug, y)
        self.h_shape = h.shape
        return (xp.log(s) + row_max - target_logit).sum()

    def backward(self, dloss=1.0):
        e, G, s, h_aug, y = self.cache
        H = h_aug.shape[1] - 2
        if G is None:  # forward ran in eval mode
            G = e @ self._W_aug
        g = s.dtype.type(dloss)  # a float64 scalar would upcast every float32 product below
        g_over_s = g / s  # (M,)
        dh = G[:, :H] * g_over_s[:, None] - g * self.W.data[y]
        # dlogits.T @ [h | 1] with dlogits = g (e / s - onehot): the softmax half first...
        dW_aug = e.T @ (h_aug[:, : H + 1] * g_over_s[:, None])  # (V, H + 1) = [dW, db]
        self.W.grad += dW_aug[:, :H]
        self.b.grad += dW_aug[:, H]
        # ... then the one-hot half: each target row loses g * [h | 1].
        rows, sums = sum_rows_by_id(y, h_aug[:, : H + 1])
        if get_xp(sums) is np:
            self.W.grad[rows] -= g * sums[:, :H]
            self.b.grad[rows] -= g * sums[:, H]
        else:
            scatter_add(self.W.grad, rows, -g * sums[:, :H])
            scatter_add(self.b.grad, rows, -g * sums[:, H])
        return dh.reshape(self.h_shape)

    def logits(self, h):
        """The scores the loss is computed from: h (..., H) -> (..., V), for sampling."""
        return h @ self.W.data.T + self.b.data
