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
        if self.training:
            M = x2d.shape[0]
            mu = x2d.mean(axis=0)
            centred = x2d - mu
            var = (centred * centred).mean(axis=0)
            m = self.momentum
            self.running_mean[...] = m * self.running_mean + (1 - m) * mu
            self.running_var[...] = m * self.running_var + (1 - m) * var * (M / max(M - 1, 1))
        else:
            centred = x2d - self.running_mean
            var = self.running_var
        self.inv_std = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype)  # (C,)
        self.xhat = centred * self.inv_std  # (M, C)
        y = self.xhat * self.gamma.data + self.beta.data
        return y.reshape(x.shape)

    def backward(self, dy):
        shape = dy.shape
        dy2d = dy.reshape(-1, shape[-1])
        self.gamma.grad += (dy2d * self.xhat).sum(axis=0)
        self.beta.grad += dy2d.sum(axis=0)
        dxhat = dy2d * self.gamma.data
        if not self.training:  # fixed statistics: a per-channel affine map
            return (dxhat * self.inv_std).reshape(shape)
        # mu and var depend on every x in the batch:
        # dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        dx = dxhat - dxhat.mean(axis=0) - self.xhat * (dxhat * self.xhat).mean(axis=0)
        dx *= self.inv_std
        return dx.reshape(shape)
