"""Convolution and max pooling on channels-last images.

Layout: every image tensor in nnctl is (N, H, W, C), channels last (the data sets yield
(N, 28, 28, 1)). With C innermost, an im2col row is a run of contiguous memory per
kernel offset, batch norm reduces over all but the last axis, and the convolution's
output (N*OH*OW, F) is already in layout without a transpose; this was measured faster
than channels-first here.

im2col turns the convolution into ONE matrix product:

    x (N, H, W, C) --pad--> (N, H+2P, W+2P, C)
      --sliding_window_view--> (N, OH', OW', C, KH, KW)   a view, no copy
      --[::S, ::S], transpose--> (N, OH, OW, KH, KW, C) --reshape--> col (N*OH*OW, KH*KW*C)
    y = col @ W.reshape(KH*KW*C, F) + b  →  (N, OH, OW, F)

With a bias, col gets a last column of ones and the weights b as a last row,

    y = [col 1] @ [W; b],   and backward   d[W; b] = [col 1].T @ dy

so the bias is added inside the product, and its gradient (the sum of dy's rows) comes
out of the weight gradient's product, instead of two more passes over the (N*OH*OW, F)
output (benchmarks/README.md).

    OH = (H + 2P - KH) // S + 1   (likewise OW)

col2im (the backward of im2col) adds each kernel offset's slab of dcol back into the
padded image: a loop over the KH*KW offsets, each step vectorised over the whole batch.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp

from nnctl.layers.base import Layer, Param
from nnctl.layers.init import check_init, initial_weights
from nnctl.layers.small_matrix import transposed_piece_rows, transposed_times
from nnctl.threads import for_row_blocks


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh: int, kw: int, stride: int, padding: int, *, ones_column: bool = False):
    """(N, H, W, C) → col (N*OH*OW, KH*KW*C) and (OH, OW). One copy of x's numbers.

    `ones_column`: col gets one more column, all ones, after the KH*KW*C (for the bias).
    """
    xp = get_xp(x)
    if padding:
        x = xp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    windows = xp.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    # windows: (N, OH, OW, C, KH, KW), a view
    N, OH, OW, C = windows.shape[:4]
    K = kh * kw * C
    if C == 1:
        # One channel (grey images into the first layer): a row of col is KH runs of only KW
        # numbers. col.T is offset-major, each of its rows one kernel offset's (N, OH, OW)
        # slab of x, copied in runs of OW; make that, and hand back its transpose (a view).
        col_T = xp.empty((K + ones_column, N, OH, OW), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                col_T[i * kw + j] = windows[..., 0, i, j]
        if ones_column:
            col_T[K] = 1
        return col_T.reshape(K + ones_column, -1).T, OH, OW
    if not ones_column:
        return windows.transpose(0, 1, 2, 4, 5, 3).reshape(N * OH * OW, K), OH, OW
    col = xp.empty((N, OH, OW, K + 1), dtype=x.dtype)
    # a view: the last axis of col[..., :K] is contiguous, so it splits into (KH, KW, C) without a copy
    col[..., :K].reshape(N, OH, OW, kh, kw, C)[...] = windows.transpose(0, 1, 2, 4, 5, 3)
    col[..., K] = 1
    return col.reshape(N * OH * OW, K + 1), OH, OW


def col2im(dcol, x_shape, kh: int, kw: int, stride: int, padding: int):
    """The adjoint of im2col: dcol (KH*KW, N*OH*OW, C), one slab per kernel offset,
    → dx (N, H, W, C), the overlapping contributions summed.

    Offset-major slabs (not im2col's (N*OH*OW, KH*KW*C) rows) make every slab contiguous,
    so each of the KH*KW additions runs over long contiguous stretches of memory.
    """
    N, H, W, C = x_shape
    OH, OW = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    dx = get_xp(dcol).zeros((N, H + 2 * padding, W + 2 * padding, C), dtype=dcol.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + stride * OH:stride, j:j + stride * OW:stride, :] += dcol[i * kw + j].reshape(N, OH, OW, C)
    return dx[:, padding:padding + H, padding:padding + W, :]


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in every DL library) by im2col.

    x: (N, H, W, C_in) → y: (N, OH, OW, C_out);  W: (KH, KW, C_in, C_out), b: (C_out,)
    (`bias=False`: no b, for a conv followed by batch norm).
    `needs_input_grad=False` skips computing dx (for the first layer: nobody needs the
    gradient with respect to the image, and it is the costliest part of backward).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, *, bias: bool = True, needs_input_grad: bool = True, init: str = "he",
                 rng: np.random.Generator, dtype=np.float32):
        for name, value, least in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                   ("kernel", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0)):
            if value < least:
                raise ValueError(f"{name} must be >= {least}, got {value}")
        check_init(init)
        k = kernel_size
        fan_in, fan_out = k * k * in_channels, k * k * out_channels
        self.W = Param.init(initial_weights((k, k, in_channels, out_channels), fan_in, fan_out, init, rng, dtype),
                            dtype)
        # bias=False: a batch norm that follows supplies the shift
        self.b = Param.init(np.zeros(out_channels), dtype) if bias else None
        self.kernel_size, self.stride, self.padding = k, stride, padding
        self.needs_input_grad = needs_input_grad

    def _weight_matrix(self):
        """W as (K*K*C, F), with b as one more row when there is a bias."""
        W = self.W.data.reshape(-1, self.W.shape[-1])
        return W if self.b is None else get_xp(W).concatenate([W, self.b.data[None]])

    def forward(self, x):
        k, F = self.kernel_size, self.W.shape[-1]
        self.x_shape = x.shape
        # (N*OH*OW, K*K*C), and a column of ones when there is a bias
        self.col, OH, OW = im2col(x, k, k, self.stride, self.padding, ones_column=self.b is not None)
        y = self.col @ self._weight_matrix()
        return y.reshape(x.shape[0], OH, OW, F)

    def backward(self, dy):
        k, F = self.kernel_size, self.W.shape[-1]
        dy2d = dy.reshape(-1, F)  # (N*OH*OW, F)
        # d[W; b] is a small (K*K*C (+1), F) sum over N*OH*OW rows: in pieces for the small-matrix kernels
        piece_rows = transposed_piece_rows(self.col, self.col.shape[1], F)
        dWb = transposed_times(self.col, dy2d, piece_rows) if piece_rows else self.col.T @ dy2d
        K = self.W.data.size // F  # K*K*C; row K of dWb is db
        self.W.grad += dWb[:K].reshape(self.W.shape)
        if self.b is not None:
            self.b.grad += dWb[K]
        if not self.needs_input_grad:
            return None
        # dcol for each kernel offset: (K*K, N*OH*OW, F) @ (K*K, F, C) → (K*K, N*OH*OW, C)
        W_offsets = self.W.data.reshape(k * k, -1, F).transpose(0, 2, 1)  # a view, (K*K, F, C)
        dcol = get_xp(dy2d).matmul(dy2d, W_offsets)
        return col2im(dcol, self.x_shape, k, k, self.stride, self.padding)


class MaxPool2d(Layer):
    """Max over PH x PW windows with a stride (default: the window size, no overlap).

    x: (N, H, W, C) → y: (N, OH, OW, C), OH = (H - PH) // S + 1 (a ragged edge is dropped).

    Instead of materialising windows, take the max over the PH*PW strided views
    x[:, i::S, j::S] with np.maximum: for the common 2x2 / stride 2 pool that is four
    views, measured 2.7x faster than reshape + max. Backward sends each output's gradient
    to the position that held the max; on ties the first offset in row-major window order
    wins, so the result is deterministic and no gradient is counted twice.

    2x2 / stride 2 takes the max in two rounds, left vs right then top vs bottom, and keeps
    the three comparisons (`>=`: the first wins ties), so backward is six array operations.
    Those run on blocks of images (`threads.for_row_blocks`): the threads share the work,
    and each block's six passes find it in cache. Each number is computed the same way in
    any block, so the results do not depend on the thread count.
    """

    BLOCK_BYTES = 1 << 20  # input per block of images: about a core's L2 cache

    def __init__(self, pool_size: int = 2, stride: int | None = None):
        stride = pool_size if stride is None else stride
        if pool_size < 1 or stride < 1:
            raise ValueError(f"pool size and stride must be >= 1, got {pool_size} and {stride}")
        self.pool_size, self.stride = pool_size, stride

    def _view(self, a, i: int, j: int, OH: int, OW: int):
        """a[:, i::S, j::S] cut to (N, OH, OW, C): offset (i, j) of every window."""
        S = self.stride
        return a[:, i:i + S * (OH - 1) + 1:S, j:j + S * (OW - 1) + 1:S, :]

    def _in_blocks(self, images, x) -> None:
        """images(start, stop) over blocks of x's images, on the threads; CuPy: all at once."""
        if get_xp(x) is not np:
            images(0, len(x))
            return
        image_bytes = x.nbytes // len(x) if len(x) else 1
        per_block = max(1, self.BLOCK_BYTES // max(1, image_bytes))
        for_row_blocks(images, len(x), block_rows=per_block, min_rows_per_thread=per_block)

    def forward(self, x):
        N, H, W, C = x.shape
        P, S = self.pool_size, self.stride
        OH, OW = (H - P) // S + 1, (W - P) // S + 1
        if OH < 1 or OW < 1:
            raise ValueError(f"pool size {P} does not fit a {H}x{W} input")
        self.x = x
        xp = get_xp(x)
        if P == S == 2:
            y = xp.empty((N, OH, OW, C), dtype=x.dtype)
            self.left_top, self.left_bottom, self.from_top = (xp.empty(y.shape, dtype=bool) for _ in range(3))

            def images(start, stop):
                x00, x01, x10, x11 = (self._view(x[start:stop], i, j, OH, OW) for i in (0, 1) for j in (0, 1))
                top, bottom = xp.maximum(x00, x01, out=y[start:stop]), xp.maximum(x10, x11)
                xp.greater_equal(x00, x01, out=self.left_top[start:stop])
                xp.greater_equal(x10, x11, out=self.left_bottom[start:stop])
                xp.greater_equal(top, bottom, out=self.from_top[start:stop])
                xp.maximum(top, bottom, out=top)

            self._in_blocks(images, x)
            return y
        y = self._view(x, 0, 0, OH, OW).copy()
        for i in range(P):
            for j in range(P):
                xp.maximum(y, self._view(x, i, j, OH, OW), out=y)
        self.y = y
        return y

    def backward(self, dy):
        x = self.x
        N, H, W, C = x.shape
        P, S = self.pool_size, self.stride
        OH, OW = dy.shape[1:3]
        tiles_exactly = S == P and H == OH * P and W == OW * P  # every x is in exactly one window
        xp = get_xp(x)
        dx = xp.empty_like(x) if tiles_exactly else xp.zeros_like(x)
        if P == S == 2:
            def images(start, stop):
                dy_, dx_ = dy[start:stop], dx[start:stop]
                dtop = dy_ * self.from_top[start:stop]
                dbottom = xp.subtract(dy_, dtop)
                for i, d, left in ((0, dtop, self.left_top), (1, dbottom, self.left_bottom)):
                    dleft = xp.multiply(d, left[start:stop], out=self._view(dx_, i, 0, OH, OW))
                    xp.subtract(d, dleft, out=self._view(dx_, i, 1, OH, OW))

            self._in_blocks(images, x)
            return dx
        y = self.y
        unclaimed = xp.ones(y.shape, dtype=bool)  # outputs whose gradient has not been routed yet
        winner = xp.empty(y.shape, dtype=bool)
        for i in range(P):
            for j in range(P):
                xp.equal(self._view(x, i, j, OH, OW), y, out=winner)
                winner &= unclaimed  # on a tie, an earlier offset already took the gradient
                unclaimed ^= winner
                self._view(dx, i, j, OH, OW)[...] += dy * winner  # += : windows may overlap
        return dx
