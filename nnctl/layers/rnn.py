"""Elman RNN over a window of T time steps, with its state h passed in and returned.

Elman 1990; the book's TimeRNN (Deep Learning from Scratch 2, ch. 5). With x_t (N, D)
and h (N, H):

    h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b)

Backward through time multiplies the gradient by tanh'(a_t) and Wh.T at every step:

    dh_{t-1} = (dh_t * (1 - h_t^2)) @ Wh.T

so over k steps it grows or shrinks roughly like the k-th power of Wh's largest singular
value, which is what `nnctl gradflow` shows. The plain per-step version of this layer is
`ReferenceRNN` in nnctl/layers/reference.py; the tests check the two agree.

Speed rules as in the LSTM (nnctl/layers/recurrent.py): one input product for all T
steps, only the recurrent product per step, and one product each for dWx, dWh and dx.
Truncated BPTT: the gradient with respect to the incoming state is kept in `self.dstate`
but never propagated into the previous window.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.base import Layer, Param
from nnctl.layers.recurrent import check_sizes, from_time_major, to_time_major
from nnctl.layers.step_product import rows_times, window_step_product


class RNN(Layer):
    """x: (N, T, D), state: h (N, H) or None (zeros) -> y: (N, T, H), h_T.

    Wx: (D, H), Wh: (H, H), b: (H,), uniform in +-1/sqrt(H) as PyTorch does. PyTorch's two
    biases are one here (they are only ever added): b = bias_ih + bias_hh.
    """

    def __init__(self, input_dim: int, hidden_dim: int, *, rng: np.random.Generator, dtype=np.float32):
        check_sizes(input_dim, hidden_dim)
        H = hidden_dim
        k = 1.0 / np.sqrt(H)
        self.Wx = Param.init(rng.uniform(-k, k, (input_dim, H)), dtype)
        self.Wh = Param.init(rng.uniform(-k, k, (H, H)), dtype)
        self.b = Param.init(rng.uniform(-k, k, H), dtype)
        self.hidden_dim = H

    def initial_state(self, batch_size: int, like):
        return get_xp(like).zeros((batch_size, self.hidden_dim), dtype=like.dtype)

    def forward(self, x, state=None, wh_scale=None):
        """wh_scale: None, or a weight-drop mask like Wh (layers/regularisers.py) for this window."""
        xp = get_xp(x)
        N, T, D = x.shape
        h0 = self.initial_state(N, x) if state is None else state
        x2d = to_time_major(x)  # (T*N, D)
        # a_t = x_t @ Wx + b for all steps in one product; the loop adds h_{t-1} @ Wh and
        # turns each a_t into h_t in place, so Y ends as the outputs.
        Y = (x2d @ self.Wx.data + self.b.data).reshape(T, N, self.hidden_dim)
        Wh = self.Wh.data if wh_scale is None else self.Wh.data * wh_scale  # weight drop: Wh * M
        recurrent = window_step_product(self, Wh, N, weight_drop=wh_scale is not None)
        h = h0
        for t in range(T):
            a = Y[t]
            recurrent.add_to(a, h)  # += h_{t-1} @ Wh
            h = xp.tanh(a, out=a)
        self.cache = (x2d, h0, Y, Wh, wh_scale)
        return from_time_major(Y), h.copy()

    def backward(self, dy, dstate=None):
        """dy: (N, T, H); dstate: the gradient of the returned h_T, or None (zero)."""
        x2d, h0, Y, Wh, wh_scale = self.cache
        xp = get_xp(dy)
        T, N, H = Y.shape
        dy = dy.transpose(1, 0, 2)  # (T, N, H)
        dA = 1 - Y * Y  # tanh'(a_t) for all steps; the loop multiplies in dh_t, making it d a_t
        dh_next = xp.zeros((N, H), dtype=dy.dtype)  # d loss / d h_t through step t+1
        if dstate is not None:  # h_T was used after the window
            dh_next = dh_next + dstate
        for t in range(T - 1, -1, -1):
            da = dA[t]
            da *= dy[t] + dh_next  # d a_t = dh_t * (1 - h_t^2)
            dh_next = rows_times(da, Wh)  # da @ Wh.T
        self.dstate = dh_next  # d loss / d h0: not propagated (truncated BPTT)
        dA2d = dA.reshape(T * N, H)
        H_prev = xp.concatenate([h0[None], Y[:-1]], axis=0).reshape(T * N, H)
        self.Wx.grad += x2d.T @ dA2d
        dWh = H_prev.T @ dA2d
        self.Wh.grad += dWh if wh_scale is None else dWh * wh_scale  # d(Wh * M) / d Wh = M
        self.b.grad += dA2d.sum(axis=0)
        return from_time_major((dA2d @ self.Wx.data.T).reshape(T, N, -1))
