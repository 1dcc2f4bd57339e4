"""GRU over a window of T time steps, with its state h passed in and returned.

Cho et al. 2014, in PyTorch's convention (torch.nn.GRU): the reset gate scales the
recurrent product, bias included. With x_t (N, D), h (N, H) and the three gates fused:

    r = sigmoid(x_t @ Wx_r + h_{t-1} @ Wh_r + b_r)
    z = sigmoid(x_t @ Wx_z + h_{t-1} @ Wh_z + b_z)
    n = tanh(x_t @ Wx_n + b_n + r * (h_{t-1} @ Wh_n + bh_n))
    h_t = (1 - z) * n + z * h_{t-1}

The update gate z mixes the old state straight into the new one, an additive path for
the gradient as the LSTM's cell has. The plain per-step version of this layer is
`ReferenceGRU` in nnctl/layers/reference.py; the tests check the two agree.

Speed rules as in the LSTM (nnctl/layers/recurrent.py): one input product for all T
steps, one recurrent product per step, and one product each for dWx, dWh and dx.
Truncated BPTT: the gradient with respect to the incoming state is kept in `self.dstate`
but never propagated into the previous window.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.functional import sigmoid_
from nnctl.layers.base import Layer, Param
from nnctl.layers.recurrent import check_sizes, from_time_major, to_time_major
from nnctl.layers.step_product import rows_times, window_step_product


class GRU(Layer):
    """x: (N, T, D), state: h (N, H) or None (zeros) -> y: (N, T, H), h_T.

    Wx: (D, 3H), Wh: (H, 3H), gate columns [r | z | n]; b: (3H,) on the input side and
    bh_n: (H,) inside the reset gate's product. All uniform in +-1/sqrt(H), as PyTorch does.
    PyTorch's weights map one to one: weight_ih = Wx.T, weight_hh = Wh.T,
    bias_ih + bias_hh = b for r and z (they are only ever added), bias_ih = b for n, and
    bias_hh = bh_n for n.
    """

    def __init__(self, input_dim: int, hidden_dim: int, *, rng: np.random.Generator, dtype=np.float32):
        check_sizes(input_dim, hidden_dim)
        H = hidden_dim
        k = 1.0 / np.sqrt(H)
        self.Wx = Param.init(rng.uniform(-k, k, (input_dim, 3 * H)), dtype)
        self.Wh = Param.init(rng.uniform(-k, k, (H, 3 * H)), dtype)
        self.b = Param.init(rng.uniform(-k, k, 3 * H), dtype)
        self.bh_n = Param.init(rng.uniform(-k, k, H), dtype)
        self.hidden_dim = H

    def initial_state(self, batch_size: int, like):
        return get_xp(like).zeros((batch_size, self.hidden_dim), dtype=like.dtype)

    def forward(self, x, state=None, wh_scale=None):
        """wh_scale: None, or a weight-drop mask like Wh (layers/regularisers.py) for this window."""
        xp = get_xp(x)
        N, T, _ = x.shape
        H = self.hidden_dim
        h0 = self.initial_state(N, x) if state is None else state
        x2d = to_time_major(x)
        # The input side of all T steps in one product; the loop turns G into [r, z, n].
        G = (x2d @ self.Wx.data + self.b.data).reshape(T, N, 3 * H)
        HN = xp.empty((T, N, H), dtype=x.dtype)  # h_{t-1} @ Wh_n + bh_n, which dr needs
        Y = xp.empty_like(HN)  # outputs h_t
        Wh = self.Wh.data if wh_scale is None else self.Wh.data * wh_scale  # weight drop: Wh * M
        recurrent = window_step_product(self, Wh, N, weight_drop=wh_scale is not None)
        h = h0
        for t in range(T):
            hw = recurrent(h)  # h_{t-1} @ Wh, (N, 3H)
            rz = G[t, :, : 2 * H]
            rz += hw[:, : 2 * H]
            sigmoid_(rz)  # r, z
            r, z = rz[:, :H], rz[:, H:]
            hn = xp.add(hw[:, 2 * H:], self.bh_n.data, out=HN[t])
            n = G[t, :, 2 * H:]
            n += r * hn
            xp.tanh(n, out=n)
            h_new = xp.subtract(h, n, out=Y[t])
            h_new *= z
            h_new += n  # h = n + z * (h_prev - n) = (1 - z) * n + z * h_prev
            h = h_new
        self.cache = (x2d, h0, G, HN, Y, Wh, wh_scale)
        return from_time_major(Y), h.copy()

    def backward(self, dy, dstate=None):
        """dy: (N, T, H); dstate: the gradient of the returned h_T, or None (zero)."""
        x2d, h0, G, HN, Y, Wh, wh_scale = self.cache
        xp = get_xp(dy)
        T, N, H = Y.shape
        dy = dy.transpose(1, 0, 2)  # (T, N, H)
        r, z, n = G[..., :H], G[..., H: 2 * H], G[..., 2 * H:]
        H_prev = xp.concatenate([h0[None], Y[:-1]], axis=0)
        # d a_t (the pre-activations) is dh_t times a slope that does not depend on the
        # recursion, so the slopes of all steps are computed here at once:
        #   da_n = dh * (1-z) * (1-n^2)     da_z = dh * (h_prev - n) * z(1-z)
        #   da_r = da_n * hn * r(1-r)       d(hn) = da_n * r, where hn = h_prev @ Wh_n + bh_n
        n_per_dh = (1 - z) * (1 - n * n)
        gates_per_dh = xp.stack([n_per_dh * HN * r * (1 - r), (H_prev - n) * z * (1 - z), n_per_dh], axis=2)
        hn_per_dh = n_per_dh * r
        dA = xp.empty((T, N, 3, H), dtype=G.dtype)  # the input side's [da_r, da_z, da_n]
        dR = xp.empty((T, N, 3 * H), dtype=G.dtype)  # the recurrent side's [da_r, da_z, d(hn)]
        dh_next = xp.zeros((N, H), dtype=dy.dtype)  # d loss / d h_t through step t+1
        if dstate is not None:  # h_T was used after the window
            dh_next = dh_next + dstate
        for t in range(T - 1, -1, -1):
            dh = dy[t] + dh_next
            da = dA[t]
            xp.multiply(gates_per_dh[t], dh[:, None, :], out=da)
            dr = dR[t]
            dr[:, : 2 * H] = da[:, :2].reshape(N, 2 * H)
            xp.multiply(hn_per_dh[t], dh, out=dr[:, 2 * H:])
            dh_next = dh * z[t]  # the direct path h_t = ... + z * h_{t-1}
            dh_next += rows_times(dr, Wh)  # dr @ Wh.T
        self.dstate = dh_next  # d loss / d h0: not propagated (truncated BPTT)
        dA2d = dA.reshape(T * N, 3 * H)
        dR2d = dR.reshape(T * N, 3 * H)
        self.Wx.grad += x2d.T @ dA2d
        dWh = H_prev.reshape(T * N, H).T @ dR2d
        self.Wh.grad += dWh if wh_scale is None else dWh * wh_scale  # d(Wh * M) / d Wh = M
        self.b.grad += dA2d.sum(axis=0)
        self.bh_n.grad += dR2d[:, 2 * H:].sum(axis=0)
        return from_time_major((dA2d @ self.Wx.data.T).reshape(T, N, -1))
