"""The recurrent cells written for reading: one line per equation, one time step at a time.

Read these first. `RNN`, `GRU` and `LSTM` (nnctl/layers/rnn.py, gru.py, recurrent.py) do
the same math fast: one input product for all steps, fused gates, slopes computed for all
steps at once, results written in place. Those tricks hide the equations, so these plain
versions stand beside them, and the tests check that both give the same outputs, states
and gradients (a mistake made the same way in a fast forward and backward passes a
gradient check, but not this comparison). `nnctl gradflow` uses them too, because they
keep the gradient reaching every h_t (`self.dh`).

Each reference layer is built from a fast layer and shares its Params:
`ReferenceGRU(gru)`. Backward adds into those Params' gradients, like every layer.
Shapes: x (N, T, D), h and c (N, H); x_t = x[:, t].

Weight drop (nnctl/layers/regularisers.py) is `forward(x, state, wh_scale=M)`: the window
uses Wh * M in place of Wh, so by the chain rule Wh's gradient is (that of Wh * M) * M.
"""

from __future__ import annotations

import numpy as np

from nnctl.functional import sigmoid
from nnctl.layers.base import Layer
from nnctl.layers.gru import GRU
from nnctl.layers.recurrent import LSTM
from nnctl.layers.rnn import RNN


class ReferenceRNN(Layer):
    """h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b)"""

    def __init__(self, rnn):
        self.Wx, self.Wh, self.b = rnn.Wx, rnn.Wh, rnn.b
        self.hidden_dim = rnn.hidden_dim

    def forward(self, x, state=None, wh_scale=None):
        N, T, _ = x.shape
        h = np.zeros((N, self.hidden_dim), dtype=x.dtype) if state is None else state
        self.wh_scale = 1.0 if wh_scale is None else wh_scale
        Wh = self.Wh.data * self.wh_scale
        self.steps, outputs = [], []
        for t in range(T):
            h_prev = h
            h = np.tanh(x[:, t] @ self.Wx.data + h_prev @ Wh + self.b.data)
            self.steps.append((x[:, t], h_prev, h))
            outputs.append(h)
        return np.stack(outputs, axis=1), h

    def backward(self, dy):
        T = dy.shape[1]
        dx, self.dh = [None] * T, [None] * T
        dh_next = np.zeros_like(dy[:, 0])
        for t in reversed(range(T)):
            x_t, h_prev, h = self.steps[t]
            dh = dy[:, t] + dh_next  # h_t feeds the output and the next step
            da = dh * (1 - h * h)  # tanh' = 1 - tanh^2
            self.Wx.grad += x_t.T @ da
            self.Wh.grad += (h_prev.T @ da) * self.wh_scale
            self.b.grad += da.sum(axis=0)
            dx[t] = da @ self.Wx.data.T
            dh_next = da @ (self.Wh.data * self.wh_scale).T
            self.dh[t] = dh
        self.dstate = dh_next
        return np.stack(dx, axis=1)


class ReferenceGRU(Layer):
    """PyTorch's GRU: the reset gate scales the recurrent product h_{t-1} @ Wh_n + bh_n.

        r = sigmoid(x_t @ Wx_r + h_{t-1} @ Wh_r + b_r)
        z = sigmoid(x_t @ Wx_z + h_{t-1} @ Wh_z + b_z)
        n = tanh(x_t @ Wx_n + b_n + r * (h_{t-1} @ Wh_n + bh_n))
        h_t = (1 - z) * n + z * h_{t-1}
    """

    def __init__(self, gru):
        self.Wx, self.Wh, self.b, self.bh_n = gru.Wx, gru.Wh, gru.b, gru.bh_n
        self.hidden_dim = gru.hidden_dim

    def split(self, array):
        """The r, z and n blocks of a (.., 3H) array."""
        H = self.hidden_dim
        return array[..., :H], array[..., H: 2 * H], array[..., 2 * H:]

    def forward(self, x, state=None, wh_scale=None):
        N, T, _ = x.shape
        h = np.zeros((N, self.hidden_dim), dtype=x.dtype) if state is None else state
        self.wh_scale = 1.0 if wh_scale is None else wh_scale
        Wx_r, Wx_z, Wx_n = self.split(self.Wx.data)
        Wh_r, Wh_z, Wh_n = self.split(self.Wh.data * self.wh_scale)
        b_r, b_z, b_n = self.split(self.b.data)
        self.steps, outputs = [], []
        for t in range(T):
            x_t, h_prev = x[:, t], h
            r = sigmoid(x_t @ Wx_r + h_prev @ Wh_r + b_r)
            z = sigmoid(x_t @ Wx_z + h_prev @ Wh_z + b_z)
            hn = h_prev @ Wh_n + self.bh_n.data
            n = np.tanh(x_t @ Wx_n + b_n + r * hn)
            h = (1 - z) * n + z * h_prev
            self.steps.append((x_t, h_prev, r, z, hn, n))
            outputs.append(h)
        return np.stack(outputs, axis=1), h

    def backward(self, dy):
        T = dy.shape[1]
        Wx_r, Wx_z, Wx_n = self.split(self.Wx.data)
        Wh_r, Wh_z, Wh_n = self.split(self.Wh.data * self.wh_scale)
        dWx_r, dWx_z, dWx_n = self.split(self.Wx.grad)  # views: adding into them adds into the Params
        dWh = np.zeros_like(self.Wh.grad)  # the gradient of Wh * M; Wh's is that times M
        dWh_r, dWh_z, dWh_n = self.split(dWh)
        db_r, db_z, db_n = self.split(self.b.grad)
        dx, self.dh = [None] * T, [None] * T
        dh_next = np.zeros_like(dy[:, 0])
        for t in reversed(range(T)):
            x_t, h_prev, r, z, hn, n = self.steps[t]
            dh = dy[:, t] + dh_next
            dn = dh * (1 - z)
            dz = dh * (h_prev - n)
            da_n = dn * (1 - n * n)
            dr = da_n * hn
            dhn = da_n * r
            da_r = dr * r * (1 - r)
            da_z = dz * z * (1 - z)
            dWx_r += x_t.T @ da_r
            dWx_z += x_t.T @ da_z
            dWx_n += x_t.T @ da_n
            dWh_r += h_prev.T @ da_r
            dWh_z += h_prev.T @ da_z
            dWh_n += h_prev.T @ dhn
            db_r += da_r.sum(axis=0)
            db_z += da_z.sum(axis=0)
            db_n += da_n.sum(axis=0)
            self.bh_n.grad += dhn.sum(axis=0)
            dx[t] = da_r @ Wx_r.T + da_z @ Wx_z.T + da_n @ Wx_n.T
            dh_next = dh * z + da_r @ Wh_r.T + da_z @ Wh_z.T + dhn @ Wh_n.T
            self.dh[t] = dh
        self.Wh.grad += dWh * self.wh_scale
        self.dstate = dh_next
        return np.stack(dx, axis=1)


class ReferenceLSTM(Layer):
    """The LSTM with a forget gate, gate columns [i | f | o | g]:

        i, f, o = sigmoid(x_t @ Wx_* + h_{t-1} @ Wh_* + b_*);   g = tanh(x_t @ Wx_g + h_{t-1} @ Wh_g + b_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)
    """

    def __init__(self, lstm):
        self.Wx, self.Wh, self.b = lstm.Wx, lstm.Wh, lstm.b
        self.hidden_dim = lstm.hidden_dim

    def split(self, array):
        """The i, f, o and g blocks of a (.., 4H) array."""
        H = self.hidden_dim
        return array[..., :H], array[..., H: 2 * H], array[..., 2 * H: 3 * H], array[..., 3 * H:]

    def forward(self, x, state=None, wh_scale=None):
        N, T, _ = x.shape
        zeros = np.zeros((N, self.hidden_dim), dtype=x.dtype)
        h, c = (zeros, zeros) if state is None else state
        self.wh_scale = 1.0 if wh_scale is None else wh_scale
        Wh = self.Wh.data * self.wh_scale
        self.steps, outputs = [], []
        for t in range(T):
            x_t, h_prev, c_prev = x[:, t], h, c
            a_i, a_f, a_o, a_g = self.split(x_t @ self.Wx.data + h_prev @ Wh + self.b.data)
            i, f, o, g = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o), np.tanh(a_g)
            c = f * c_prev + i * g
            h = o * np.tanh(c)
            self.steps.append((x_t, h_prev, c_prev, i, f, o, g, c))
            outputs.append(h)
        return np.stack(outputs, axis=1), (h, c)

    def backward(self, dy):
        T = dy.shape[1]
        dx, self.dh = [None] * T, [None] * T
        dh_next = np.zeros_like(dy[:, 0])
        dc_next = np.zeros_like(dh_next)
        for t in reversed(range(T)):
            x_t, h_prev, c_prev, i, f, o, g, c = self.steps[t]
            dh = dy[:, t] + dh_next
            tanh_c = np.tanh(c)
            do = dh * tanh_c
            dc = dc_next + dh * o * (1 - tanh_c * tanh_c)  # c_t feeds h_t and c_{t+1}
            di = dc * g
            df = dc * c_prev
            dg = dc * i
            da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)], axis=1)
            self.Wx.grad += x_t.T @ da
            self.Wh.grad += (h_prev.T @ da) * self.wh_scale
            self.b.grad += da.sum(axis=0)
            dx[t] = da @ self.Wx.data.T
            dh_next = da @ (self.Wh.data * self.wh_scale).T
            dc_next = dc * f
            self.dh[t] = dh
        self.dstate = (dh_next, dc_next)
        return np.stack(dx, axis=1)


def reference_of(layer):
    """The reference twin of a fast recurrent layer, sharing its Params."""
    twins = {RNN: ReferenceRNN, GRU: ReferenceGRU, LSTM: ReferenceLSTM}
    if type(layer) not in twins:
        raise TypeError(f"no reference version of {type(layer).__name__}; there is one for RNN, GRU and LSTM")
    return twins[type(layer)](layer)
