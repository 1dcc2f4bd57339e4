"""Stateless array math shared by layers. Every function keeps the input's dtype."""

from __future__ import annotations

from nnctl.backend import get_xp


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x| via tanh."""
    xp = get_xp(x)
    half = x.dtype.type(0.5)
    return half * (xp.tanh(half * x) + 1)


def log_softmax(logits, axis: int = -1):
    """log softmax with the max subtracted first (log-sum-exp), so float32 cannot overflow."""
    xp = get_xp(logits)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits, axis: int = -1):
    xp = get_xp(logits)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = xp.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid_(x):
    """x <- sigmoid(x) in place, as (tanh(x / 2) + 1) / 2, which cannot overflow; returns x."""
    xp = get_xp(x)
    x *= 0.5
    xp.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x
