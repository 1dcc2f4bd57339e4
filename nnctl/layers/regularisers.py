"""The regularisers of a recurrent language model (Gal & Ghahramani 2016; Merity et al. 2017).

    LockedDropout          x (N, T, D) -> x * m,  one mask m (N, 1, D) per window, shared by all T steps
    EmbeddingDropout       ids, vectors (..., D) -> vectors * m[ids],  m (V,): whole words dropped
    WeightDrop             W -> W * M,  one DropConnect mask M per window on a recurrent matrix
    ActivationPenalty      alpha * mean(h_dropped^2) + beta * mean((h_t - h_{t-1})^2)   (AR and TAR)

Each mask keeps an entry with probability 1 - p and scales the kept ones by 1 / (1 - p),
so the expected value is unchanged and evaluation (training False) is the identity. A mask
is drawn where the array lives (backend.uniform) from the layer's own `rng`, a generator
the model gives it and checkpoints save, so a seed fixes every mask and resume is exact.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.base import Layer
from nnctl.layers.dense import check_rate, keep_scale


class LockedDropout(Layer):
    """Variational dropout (Gal & Ghahramani 2016): y = x * m, m (N, 1, D) drawn once per window.

    x: (N, T, D). Every time step of a sequence loses the same units, so the dropout noise
    does not change from step to step (plain Dropout draws a new mask at every step).
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator, dtype=np.float32):
        self.p = check_rate("dropout", p)
        self.rng = rng
        self.dtype = dtype

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.scale = None
            return x
        self.scale = keep_scale(self.rng, self.p, (x.shape[0], 1, x.shape[2]), like=x)
        return x * self.scale

    def backward(self, dy):
        return dy if self.scale is None else dy * self.scale


class EmbeddingDropout(Layer):
    """Whole words dropped (Gal & Ghahramani 2016; Merity et al. 2017): y = vectors * m[ids].

    m (V,) is drawn once per batch for the whole vocabulary, so a word dropped is dropped
    everywhere it occurs in the batch. This equals looking ids up in W * m[:, None] (the
    papers' form) without making the masked (V, D) copy; W's gradient, which the Embedding
    computes from this layer's dx, only reaches the rows of words kept.
    """

    def __init__(self, p: float, vocab_size: int, *, rng: np.random.Generator):
        self.p = check_rate("embedding_dropout", p)
        self.vocab_size = vocab_size
        self.rng = rng

    def forward(self, ids, vectors):
        if not self.training or self.p == 0.0:
            self.scale = None
            return vectors
        words = keep_scale(self.rng, self.p, (self.vocab_size,), like=vectors)
        self.scale = words[ids][..., None]  # (..., 1): each position's word's scale
        return vectors * self.scale

    def backward(self, dy):
        return dy if self.scale is None else dy * self.scale


class WeightDrop(Layer):
    """DropConnect (Wan et al. 2013) on a recurrent matrix, as AWD-LSTM does (Merity et al. 2017).

    `scale_for(W)` gives the mask M (W's shape) of one window, or None when nothing is
    dropped; the cell then uses W * M for every step of the window (so h_{t-1} -> h_t
    loses the same connections at every step), and the gradient reaching W is dW * M.
    """

    def __init__(self, p: float, *, rng: np.random.Generator):
        self.p = check_rate("weight_drop", p)
        self.rng = rng

    def scale_for(self, W):
        if not self.training or self.p == 0.0:
            return None
        return keep_scale(self.rng, self.p, W.shape, like=W)


class ActivationPenalty(Layer):
    """AR and TAR (Merity et al. 2017) on the top layer's outputs, over a window:

        penalty = alpha * mean(d^2) + beta * mean((h_t - h_{t-1})^2)

    d: (N, T, H), the outputs after dropout (AR keeps them small); h: (N, T, H), the same
    outputs before dropout (TAR keeps them slowly changing). The means are over every
    element (AR) and every pair of neighbouring steps (TAR), as in the paper's code.
    forward(d, h) -> the penalty (a float); backward(dout) -> (d d, d h).
    """

    def __init__(self, alpha: float = 0.0, beta: float = 0.0):
        for name, value in (("activation_reg", alpha), ("temporal_activation_reg", beta)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, d, h):
        self.d, self.step = d, h[:, 1:] - h[:, :-1]
        ar = self.alpha * float((d * d).mean()) if self.alpha else 0.0
        tar = self.beta * float((self.step * self.step).mean()) if self.beta and self.step.size else 0.0
        return ar + tar

    def backward(self, dout=1.0):
        dd = (2 * self.alpha * dout / self.d.size) * self.d
        dh = get_xp(self.d).zeros_like(self.d)  # d and h have one shape
        if self.beta and self.step.size:
            dstep = (2 * self.beta * dout / self.step.size) * self.step  # d/d(h_t - h_{t-1})
            dh[:, 1:] += dstep
            dh[:, :-1] -= dstep
        return dd, dh
