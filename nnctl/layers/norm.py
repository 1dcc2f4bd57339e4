"""Batch normalisation (Ioffe & Szegedy 2015) over the last axis.

Layout: channels last. A dense activation (N, D) and a convolutional one (N, H, W, C)
are both normalised per feature of the LAST axis, with statistics over all the other
axes (for images: over the batch and every position, one mean per channel). So one
class serves both, by viewing x as (M, C) with M = N (dense) or N*H*W (conv).

    training:  mu, var = mean and (biased) variance of the batch
               xhat = (x - mu) / sqrt(var + eps);   y = gamma * xhat + beta
               running = momentum * running + (1 - momentum) * batch statistic
    eval:      the same with the running mean and variance in place of the batch's
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.base import Layer, Param


class BatchNorm(Layer):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta, per channel of the last axis.

    x: (..., C) → y: (..., C). gamma, beta: (C,). running_mean / running_var are buffers
    (saved in checkpoints, not trained). The running variance is the unbiased estimate
    (M / (M - 1) times the batch variance), as in the paper's inference step.
    """

    buffer_names = ("running_mean", "running_var")

    def __init__(self, num_features: int, *, momentum: float = 0.9, eps: float = 1e-5,
                 dtype=np.float32):
        if num_features <= 0:
            raise ValueError(f"BatchNorm num_features must be > 0, got {num_features}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1), got {momentum}")
        self.gamma = Param.init(np.ones(num_features), dtype)
        self.beta = Param.init(np.zeros(num_features), dtype)
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        self.momentum = momentum
        self.eps = eps

    def forward(self, x):
        xp = get_xp(x)
        C = x.shape[-1]
        x2d = x.reshape(-1, C)  # (M, C)
        M = x2d.shape[0]
        if self.training:
            mu = x2d.sum(axis=0) / M
            centred = x2d - mu
            var = xp.einsum("mc,mc->c", centred, centred) / M  # no (M, C) temporary for centred**2
            m = self.momentum
            self.running_mean[...] = m * self.running_mean + (1 - m) * mu
            self.running_var[...] = m * self.running_var + (1 - m) * var * (M / max(M - 1, 1))
        else:
            mu, var = self.running_mean, self.running_var
            centred = x2d - mu
        inv_std = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype)  # (C,)
        self.centred, self.inv_std = centred, inv_std  # xhat = centred * inv_std, never materialised
        scale = self.gamma.data * inv_std
        y = centred * scale  # = gamma * xhat
        y += self.beta.data
        return y.reshape(x.shape)

    def backward(self, dy):
        shape = dy.shape
        dy2d = dy.reshape(-1, shape[-1])  # (M, C)
        M = dy2d.shape[0]
        dbeta = dy2d.sum(axis=0)
        dgamma = get_xp(dy2d).einsum("mc,mc->c", dy2d, self.centred) * self.inv_std  # sum(dy * xhat)
        self.gamma.grad += dgamma
        self.beta.grad += dbeta
        scale = self.gamma.data * self.inv_std  # dy/dx through xhat alone
        if not self.training:  # fixed statistics: a per-channel affine map
            return (dy2d * scale).reshape(shape)
        # mu and var depend on every x in the batch:
        #   dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))
        #      = scale * dy - centred * (scale * inv_std * dgamma / M) - scale * dbeta / M
        dx = dy2d * scale
        dx -= self.centred * (scale * self.inv_std * dgamma / M)
        dx -= scale * dbeta / M
        return dx.reshape(shape)
