"""LSTM over a window of T time steps, with its (h, c) state passed in and returned.

Hochreiter & Schmidhuber 1997, with a forget gate (Gers et al. 2000), as in Zaremba et
al. 2014. With x_t (N, D), h, c (N, H) and the four gates fused in one matrix:

    a_t = x_t @ Wx + h_{t-1} @ Wh + b          (N, 4H), columns [ i | f | o | g ]
    i, f, o = sigmoid(a_t[:, :3H]);   g = tanh(a_t[:, 3H:])
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Speed: the input half x_t @ Wx of all T steps is one (N*T, D) @ (D, 4H) product before
the loop, so only the recurrent product h @ Wh runs per step; backward likewise gathers
the gate gradients of all steps and does one product each for dWx, dWh and dx.

Truncated BPTT: the state passed in is a constant. The gradient with respect to it is
computed (it is one small product) and kept in `self.dstate` for tests, but never
propagated into the previous window.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.base import Layer, Param


class LSTM(Layer):
    """x: (N, T, D), state: (h, c) each (N, H) or None (zeros) -> y: (N, T, H), (h_T, c_T).

    Wx: (D, 4H), Wh: (H, 4H), b: (4H,), gate columns [i | f | o | g]. Initialised
    uniformly in +-1/sqrt(H), as PyTorch does.
    """

    def __init__(self, input_dim: int, hidden_dim: int, *, rng: np.random.Generator, dtype=np.float32):
        if input_dim <= 0 or hidden_dim <= 0:
            raise ValueError(f"input_dim and hidden_dim must be > 0, got {input_dim} and {hidden_dim}")
        H = hidden_dim
        k = 1.0 / np.sqrt(H)
        self.Wx = Param.init(rng.uniform(-k, k, (input_dim, 4 * H)), dtype)
        self.Wh = Param.init(rng.uniform(-k, k, (H, 4 * H)), dtype)
        self.b = Param.init(rng.uniform(-k, k, 4 * H), dtype)
        self.hidden_dim = H

    def initial_state(self, batch_size: int, like):
        xp = get_xp(like)
        zeros = xp.zeros((batch_size, self.hidden_dim), dtype=like.dtype)
        return zeros, zeros.copy()

    def forward(self, x, state=None):
        xp = get_xp(x)
        N, T, D = x.shape
        H = self.hidden_dim
        h, c = self.initial_state(N, x) if state is None else state
        # Time-major inside (T, N, ...), so each step's slice is contiguous for BLAS.
        x2d = x.transpose(1, 0, 2).reshape(T * N, D)
        # All T input projections in one product; the loop turns A into the gate values.
        A = (x2d @ self.Wx.data + self.b.data).reshape(T, N, 4 * H)
        C = xp.empty((T, N, H), dtype=x.dtype)  # cell states c_t
        TC = xp.empty_like(C)  # tanh(c_t)
        Y = xp.empty_like(C)  # outputs h_t
        # The per-step product reads all of Wh for a few rows of h. BLAS streams the big
        # matrix faster as the left operand: Wh.T @ h.T, then transposed back, measured
        # 17-32% quicker than h @ Wh for N = 10-20 rows and H = 100-650 (best-of timings
        # with benchmarks/gemm_bound.py's time_product, which keeps the faster form).
        WhT = xp.ascontiguousarray(self.Wh.data.T)  # (4H, H)
        # sigmoid(z) = (tanh(z / 2) + 1) / 2, which cannot overflow as exp(-z) can. Halving
        # the i, f, o pre-activations once, for all steps, lets one tanh serve all four gates.
        A[..., : 3 * H] *= 0.5
        WhT[: 3 * H] *= 0.5
        for t in range(T):
            a = A[t]  # the gates are written in place
            a += (WhT @ h.T).T
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
        self.cache = (x2d, state, A, C, TC, Y)
        return Y.transpose(1, 0, 2), (h.copy(), c.copy())

    def backward(self, dy):
        x2d, state, A, C, TC, Y = self.cache
        xp = get_xp(dy)
        T, N, H = Y.shape
        h0, c0 = self.initial_state(N, dy) if state is None else state
        dy = dy.transpose(1, 0, 2)  # time-major view, (T, N, H)
        i, f, o, g = A[..., :H], A[..., H: 2 * H], A[..., 2 * H: 3 * H], A[..., 3 * H:]
        C_prev = xp.concatenate([c0[None], C[:-1]], axis=0)
        # The parts of d a_t that do not depend on the recursion, for all steps at once:
        #   da = [dc * g * i(1-i), dc * c_prev * f(1-f), dh * tanh(c) * o(1-o), dc * i * (1-g^2)]
        #   dc = dc_next + dh * o * (1 - tanh(c)^2)
        K = xp.empty((T, N, 4, H), dtype=A.dtype)
        K[:, :, 0] = g * i * (1 - i)
        K[:, :, 1] = C_prev * f * (1 - f)
        K[:, :, 2] = TC * o * (1 - o)
        K[:, :, 3] = i * (1 - g * g)
        K_dc = o * (1 - TC * TC)
        dA = xp.empty_like(K)  # (T, N, 4, H)
        dh_next = xp.zeros((N, H), dtype=dy.dtype)
        dc_next = xp.zeros_like(dh_next)
        Wh = self.Wh.data
        for t in range(T - 1, -1, -1):
            dh = dy[t] + dh_next
            dc = dh * K_dc[t]
            dc += dc_next
            da = dA[t]
            xp.multiply(K[t], dc[:, None, :], out=da)
            xp.multiply(K[t, :, 2], dh, out=da[:, 2])  # the output gate sees dh, not dc
            dc_next = dc * f[t]
            dh_next = (Wh @ da.reshape(N, 4 * H).T).T  # = da @ Wh.T, big matrix on the left as in forward
        self.dstate = (dh_next, dc_next)  # d loss / d (h0, c0): not propagated (truncated BPTT)
        dA2d = dA.reshape(T * N, 4 * H)
        H_prev = xp.concatenate([h0[None], Y[:-1]], axis=0).reshape(T * N, H)
        self.Wx.grad += x2d.T @ dA2d
        self.Wh.grad += H_prev.T @ dA2d  # all steps' recurrent gradients in one product
        self.b.grad += dA2d.sum(axis=0)
        return (dA2d @ self.Wx.data.T).reshape(T, N, -1).transpose(1, 0, 2)
