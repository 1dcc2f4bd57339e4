"""Dot-product attention (Luong et al. 2015) over all decoder steps at once.

With encoder states hs (N, S, H), decoder states hd (N, T, H) and a mask (N, S) that is
False at the source's padding:

    scores = hd @ hs^T                          (N, T, S)   one batched product for all T steps
    a      = softmax over s of scores, -inf where masked      AttentionWeights
    c      = a @ hs                             (N, T, H)   WeightedSum: the context vectors

Row a[n, t] says where decoder step t of example n looks in the source; it sums to 1
over the unmasked positions and is 0 on padding. Deep Learning from Scratch 2 (ch. 8)
computes the same one decoder step at a time; here the T steps are one batched matmul.
"""

from __future__ import annotations

from nnctl.backend import get_xp
from nnctl.layers.base import Layer


class AttentionWeights(Layer):
    """hs: (N, S, H), hd: (N, T, H), mask: (N, S) bool or None -> a: (N, T, S), softmax over S.

    backward(da) -> (dhs, dhd). The softmax's Jacobian, for each row:
        d scores = a * (da - sum_s(da * a))
    which is 0 where a is 0 (the masked positions), so padding gets no gradient.
    """

    def forward(self, hs, hd, mask=None):
        xp = get_xp(hs)
        scores = hd @ hs.transpose(0, 2, 1)  # (N, T, S)
        if mask is not None:
            scores = xp.where(mask[:, None, :], scores, -xp.inf)
        scores -= scores.max(axis=-1, keepdims=True)  # log-sum-exp guard; every row keeps one unmasked score
        a = xp.exp(scores, out=scores)
        a /= a.sum(axis=-1, keepdims=True)
        self.cache = (hs, hd, a)
        return a

    def backward(self, da):
        hs, hd, a = self.cache
        dscores = a * (da - (da * a).sum(axis=-1, keepdims=True))  # (N, T, S)
        dhd = dscores @ hs  # (N, T, H)
        dhs = dscores.transpose(0, 2, 1) @ hd  # (N, S, H)
        return dhs, dhd


class WeightedSum(Layer):
    """hs: (N, S, H), a: (N, T, S) -> c = a @ hs: (N, T, H), each c[n, t] a mix of the source states.

    backward(dc) -> (dhs, da):  dhs = a^T @ dc,  da = dc @ hs^T.
    """

    def forward(self, hs, a):
        self.cache = (hs, a)
        return a @ hs

    def backward(self, dc):
        hs, a = self.cache
        return a.transpose(0, 2, 1) @ dc, dc @ hs.transpose(0, 2, 1)


class DotAttention(Layer):
    """hs: (N, S, H), hd: (N, T, H), mask: (N, S) -> context c: (N, T, H); the weights stay in `self.weights`.

    AttentionWeights then WeightedSum; hs feeds both, so its gradient is the sum of the two.
    backward(dc) -> (dhs, dhd).
    """

    def __init__(self):
        self.weigh = AttentionWeights()
        self.mix = WeightedSum()
        self.weights = None

    def forward(self, hs, hd, mask=None):
        self.weights = self.weigh.forward(hs, hd, mask)  # (N, T, S)
        return self.mix.forward(hs, self.weights)

    def backward(self, dc):
        dhs_mix, da = self.mix.backward(dc)
        dhs, dhd = self.weigh.backward(da)
        return dhs + dhs_mix, dhd
