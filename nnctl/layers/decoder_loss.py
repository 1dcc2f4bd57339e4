"""A language model's last two steps fused: output projection + softmax cross-entropy.

    loss = sum_i [ log sum_v exp(l_iv) - l_i,y_i ],     l = h @ W.T + b      (M tokens, V words)

The plain composition (OutputProjection, then a softmax cross-entropy layer) is the
reference; this layer computes the same numbers with fewer passes over the (M, V) logits,
which dominate a word-level LM's step (M = 700, V = 10000 on PTB):

* the bias rides in the matrix product: [h | 1] @ [W | b].T = h @ W.T + b;
* softmax is never normalised in place. e = exp(l - max) is taken once, in place, and
  the row sums s come out of the backward product for free via a column of ones in
  [W | b | 1]: e @ [W | b | 1] = [e @ W, e @ b, s]. Then
      dh = g (e @ W / s - W[y])                       (g: upstream gradient, 1/M for a mean)
      [dW | db] = g (e / s - onehot(y)).T @ [h | 1]
                = (e - s onehot(y)).T @ ([h | 1] g / s)
  where subtracting s at each row's target is M writes into e, and scaling [h | 1]'s M
  rows replaces dividing e's M x V entries;
* the max / subtract / exp pass runs on every core (`nnctl.threads`), a few rows at a
  time so that each row is read from cache.
So the (M, V) matrix is touched by one product forward, one in-place max/subtract/exp,
and two products backward.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.base import Layer, Param
from nnctl.layers.embedding import output_weight
from nnctl.threads import for_row_blocks


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
        row_max = xp.empty(M, dtype=h.dtype)
        s = None if self.training else xp.empty(M, dtype=h.dtype)

        def exp_shifted(start, stop):  # e = exp(l - max) in place, a few rows at a time
            rows = logits[start:stop]
            xp.max(rows, axis=1, out=row_max[start:stop])
            rows -= row_max[start:stop, None]  # log-sum-exp: float32 exp cannot overflow
            xp.exp(rows, out=rows)
            if s is not None:
                xp.sum(rows, axis=1, out=s[start:stop])

        # The one pass over all M x V logits that is not a product, on every core.
        for_row_blocks(exp_shifted, M, parallel=xp is np)
        e = logits
        # Training needs e @ W for dh anyway; its ones column gives the row sums with it.
        G = e @ W_aug if self.training else None  # (M, H + 2) = [e @ W, e @ b, s]
        if G is not None:
            s = G[:, H + 1]
        self.cache = (e, G, s, h_aug, y)
        self.h_shape = h.shape
        return (xp.log(s) + row_max - target_logit).sum()

    def backward(self, dloss=1.0):
        e, G, s, h_aug, y = self.cache
        xp = get_xp(e)
        H = h_aug.shape[1] - 2
        if G is None:  # forward ran in eval mode
            G = e @ self._W_aug
        g = s.dtype.type(dloss)  # a float64 scalar would upcast every float32 product below
        g_over_s = g / s  # (M,)
        dh = G[:, :H] * g_over_s[:, None] - g * self.W.data[y]
        # Subtracting s at each row's target folds the one-hot half of dlogits into e
        # (M writes), so one product gives all of [dW | db]. e is then spent: drop it.
        e[xp.arange(len(y)), y] -= s
        self.cache = None
        dW_aug = e.T @ (h_aug[:, : H + 1] * g_over_s[:, None])  # (V, H + 1) = [dW, db]
        self.W.grad += dW_aug[:, :H]
        self.b.grad += dW_aug[:, H]
        return dh.reshape(self.h_shape)

    def logits(self, h):
        """The scores the loss is computed from: h (..., H) -> (..., V), for sampling."""
        return h @ self.W.data.T + self.b.data
