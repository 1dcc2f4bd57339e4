"""Losses: a scalar from the model's output and the targets, and its gradient."""

from __future__ import annotations

from nnctl.backend import get_xp
from nnctl.functional import log_softmax
from nnctl.layers.base import Layer


class SoftmaxCrossEntropy(Layer):
    """Mean of -log softmax(logits)[target] over items, fused with the softmax.

    logits: (..., C) float; targets: (...) int class ids. Items whose target equals
    `ignore_index` (padding) count neither in the loss nor in the mean.

    forward:  loss = -(1/N) * sum_i log_softmax(z_i)[t_i]    (N: items not ignored)
              log_softmax subtracts the max first (log-sum-exp), so logits of ±1e4 give a
              finite loss and gradient even in float32.
    backward: dz = (softmax(z) - onehot(t)) * dout / N,  0 for ignored items.

    After forward, `loss_sum`, `count` and `correct()` (argmax hits) are available, so a
    classifier can report accuracy without a second pass.
    """

    def __init__(self, ignore_index: int | None = None):
        self.ignore_index = ignore_index

    def forward(self, logits, targets):
        xp = get_xp(logits)
        C = logits.shape[-1]
        z = logits.reshape(-1, C)  # (M, C)
        t = xp.asarray(targets).reshape(-1)  # (M,)
        if t.shape[0] != z.shape[0]:
            raise ValueError(f"targets shape {t.shape} does not match logits shape {logits.shape}")
        self.keep = None if self.ignore_index is None else t != self.ignore_index
        safe_t = t if self.keep is None else xp.where(self.keep, t, 0)  # any valid column for ignored items
        self.logp = log_softmax(z)  # (M, C)
        picked = self.logp[xp.arange(z.shape[0]), safe_t]  # (M,)
        if self.keep is not None:
            picked = picked * self.keep
        self.count = int(z.shape[0] if self.keep is None else self.keep.sum())
        self.loss_sum = float(-picked.sum())
        self.logits_shape, self.targets = logits.shape, safe_t
        return self.loss_sum / max(self.count, 1)

    def backward(self, dout=1.0):
        xp = get_xp(self.logp)
        dz = xp.exp(self.logp)  # softmax, (M, C)
        dz[xp.arange(dz.shape[0]), self.targets] -= 1
        scale = dz.dtype.type(dout / max(self.count, 1))
        if self.keep is not None:
            dz *= (self.keep * scale).astype(dz.dtype)[:, None]
        else:
            dz *= scale
        return dz.reshape(self.logits_shape)

    def correct(self) -> int:
        """How many (non-ignored) items the argmax of the last forward's logits got right."""
        hits = self.logp.argmax(axis=1) == self.targets
        if self.keep is not None:
            hits &= self.keep
        return int(hits.sum())
