"""LSTM over a window of T time steps, with its (h, c) state passed in and returned.

Hochreiter & Schmidhuber 1997, with a forget gate (Gers et al. 2000), as in Zaremba et
al. 2014. With x_t (N, D), h, c (N, H) and the four gates fused in one matrix:

    a_t = x_t @ Wx + h_{t-1} @ Wh + b          (N, 4H), columns [ i | f | o | g ]
    i, f, o = sigmoid(a_t[:, :3H]);   g = tanh(a_t[:, 3H:])
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Speed: the input half x_t @ Wx of all T steps is one (N*T, D) @ (D, 4H) product before
the loop, so only the recurrent product h @ Wh runs per step, with Wh laid out once per
window for it (nnctl/layers/step_product.py); backward likewise gathers the gate
gradients of all steps and does one product each for dWx, dWh and dx.

The plain per-step version of this layer, one line per equation, is `ReferenceLSTM` in
nnctl/layers/reference.py; the tests check that the two agree. The other recurrent cells
(nnctl/layers/rnn.py, gru.py) share the helpers defined here.

Truncated BPTT: the state passed in is a constant. The gradient with respect to it is
computed (it is one small product) and kept in `self.dstate`, but never propagated into
the previous window. A model that makes that state itself (seq2seq: the decoder starts
from the encoder's last state) reads `dstate` and hands it to the encoder's backward as
the gradient of its returned state, `backward(dy, dstate)`.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.base import Layer, Param
from nnctl.layers.step_product import rows_times, window_step_product


def check_sizes(input_dim: int, hidden_dim: int) -> None:
    if input_dim <= 0 or hidden_dim <= 0:
        raise ValueError(f"input_dim and hidden_dim must be > 0, got {input_dim} and {hidden_dim}")


def to_time_major(x):
    """(N, T, D) -> (T*N, D), rows ordered by time, so each step's rows are one contiguous block."""
    N, T, D = x.shape
    return x.transpose(1, 0, 2).reshape(T * N, D)


def from_time_major(y):
    """(T, N, H) -> the layer's (N, T, H) view."""
    return y.transpose(1, 0, 2)


class LSTM(Layer):
    """x: (N, T, D), state: (h, c) each (N, H) or None (zeros) -> y: (N, T, H), (h_T, c_T).

    Wx: (D, 4H), Wh: (H, 4H), b: (4H,), gate columns [i | f | o | g]. Initialised
    uniformly in +-1/sqrt(H), as PyTorch does; `forget_bias` is added to the forget gate's
    bias (Gers et al. 2000; 1.0 in Jozefowicz et al. 2015), so that f = sigmoid(.) starts
    near 1 instead of 0.5 and the cell path carries the gradient back further.
    """

    def __init__(self, input_dim: int, hidden_dim: int, *, rng: np.random.Generator, dtype=np.float32,
                 forget_bias: float = 0.0):
        check_sizes(input_dim, hidden_dim)
        H = hidden_dim
        k = 1.0 / np.sqrt(H)
        self.Wx = Param.init(rng.uniform(-k, k, (input_dim, 4 * H)), dtype)
        self.Wh = Param.init(rng.uniform(-k, k, (H, 4 * H)), dtype)
        self.b = Param.init(rng.uniform(-k, k, 4 * H) + np.r_[np.zeros(H), np.full(H, forget_bias), np.zeros(2 * H)],
                            dtype)
        self.hidden_dim = H

    def initial_state(self, batch_size: int, like):
        xp = get_xp(like)
        zeros = xp.zeros((batch_size, self.hidden_dim), dtype=like.dtype)
        return zeros, zeros.copy()

    def forward(self, x, state=None, wh_scale=None):
        """wh_scale: None, or a weight-drop mask like Wh (layers/regularisers.py) for this window."""
        xp = get_xp(x)
        N, T, D = x.shape
        H = self.hidden_dim
        h, c = self.initial_state(N, x) if state is None else state
        x2d = to_time_major(x)
        # All T input projections in one product; the loop turns A into the gate values.
        A = (x2d @ self.Wx.data + self.b.data).reshape(T, N, 4 * H)
        C = xp.empty((T, N, H), dtype=x.dtype)  # cell states c_t
        TC = xp.empty_like(C)  # tanh(c_t)
        Y = xp.empty_like(C)  # outputs h_t
        Wh = self.Wh.data if wh_scale is None else self.Wh.data * wh_scale  # weight drop: Wh * M
        # sigmoid(z) = (tanh(z / 2) + 1) / 2, which cannot overflow as exp(-z) can. Halving
        # the i, f, o pre-activations once, for all steps, lets one tanh serve all four gates.
        A[..., : 3 * H] *= 0.5
        halve_ifo = xp.ones(4 * H, dtype=Wh.dtype)
        halve_ifo[: 3 * H] = 0.5
        # h @ Wh, halved for i, f, o
        recurrent = window_step_product(self, Wh, N, weight_drop=wh_scale is not None, column_scale=halve_ifo)
        for t in range(T):
            a = A[t]  # the gates are written in place
            recurrent.add_to(a, h)  # += h_{t-1} @ Wh (halved for i, f, o)
            xp.tanh(a, out=a)  # [tanh(z_i / 2), tanh(z_f / 2), tanh(z_o / 2), tanh(z_g)]
            ifo = a[:, : 3 * H]
            ifo *= 0.5
            ifo += 0.5  # i, f, o = sigmoid(z)
            g = a[:, 3 * H:]
            c = C[t]
            xp.multiply(a[:, H: 2 * H], C[t - 1] if t else (state[1] if state is not None else 0), out=c)
            tc = TC[t]
            c += xp.multiply(a[:, :H], g, out=tc)  # c = f * c_prev + i * g (tc as scratch)
            xp.tanh(c, out=tc)
            h = Y[t]
            xp.multiply(a[:, 2 * H: 3 * H], tc, out=h)  # h = o * tanh(c)
        self.cache = (x2d, state, A, C, TC, Y, Wh, wh_scale)
        return from_time_major(Y), (h.copy(), c.copy())

    def backward(self, dy, dstate=None):
        """dy: (N, T, H); dstate: the gradient of the returned (h_T, c_T), or None (zero)."""
        x2d, state, A, C, TC, Y, Wh, wh_scale = self.cache
        xp = get_xp(dy)
        T, N, H = Y.shape
        h0, c0 = self.initial_state(N, dy) if state is None else state
        dy = dy.transpose(1, 0, 2)  # time-major view, (T, N, H)
        i, f, o, g = A[..., :H], A[..., H: 2 * H], A[..., 2 * H: 3 * H], A[..., 3 * H:]
        C_prev = xp.concatenate([c0[None], C[:-1]], axis=0)
        # d a_t is the gradient reaching c_t (dc) or h_t (dh) times a local slope that does not
        # depend on the recursion, so the slopes of all steps are computed here at once:
        #   da_i = dc * g * i(1-i)    da_f = dc * c_prev * f(1-f)    da_g = dc * i * (1-g^2)
        #   da_o = dh * tanh(c) * o(1-o)                              dc = dc_next + dh * o * (1-tanh(c)^2)
        if_per_dc = xp.stack([g * i * (1 - i), C_prev * f * (1 - f)], axis=2)  # (T, N, 2, H)
        g_per_dc = i * (1 - g * g)
        o_per_dh = TC * o * (1 - o)
        c_per_dh = o * (1 - TC * TC)
        dA = xp.empty((T, N, 4, H), dtype=A.dtype)  # gate slots [i, f, o, g], as A's columns
        dh_next = xp.zeros((N, H), dtype=dy.dtype)  # d loss / d h_t through step t+1
        dc_next = xp.zeros_like(dh_next)  # d loss / d c_t through step t+1
        if dstate is not None:  # h_T and c_T were used after the window
            dh_next, dc_next = dh_next + dstate[0], dc_next + dstate[1]
        for t in range(T - 1, -1, -1):
            dh = dy[t] + dh_next
            dc = dh * c_per_dh[t]
            dc += dc_next
            da = dA[t]
            xp.multiply(if_per_dc[t], dc[:, None, :], out=da[:, :2])
            xp.multiply(o_per_dh[t], dh, out=da[:, 2])
            xp.multiply(g_per_dc[t], dc, out=da[:, 3])
            dc_next = dc * f[t]
            dh_next = rows_times(da.reshape(N, 4 * H), Wh)  # da @ Wh.T
        self.dstate = (dh_next, dc_next)  # d loss / d (h0, c0): not propagated (truncated BPTT)
        dA2d = dA.reshape(T * N, 4 * H)
        H_prev = xp.concatenate([h0[None], Y[:-1]], axis=0).reshape(T * N, H)
        self.Wx.grad += x2d.T @ dA2d
        dWh = H_prev.T @ dA2d  # all steps' recurrent gradients in one product
        self.Wh.grad += dWh if wh_scale is None else dWh * wh_scale  # d(Wh * M) / d Wh = M
        self.b.grad += dA2d.sum(axis=0)
        return from_time_major((dA2d @ self.Wx.data.T).reshape(T, N, -1))
