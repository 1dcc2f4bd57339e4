"""A convolution's weight gradient cut into pieces for OpenBLAS's small-matrix kernels: equal
to the plain product, whatever the pieces and the operands' memory order, and used only
where the kernels are and the result is small enough for them."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl.layers import conv as conv_module
from nnctl.layers import small_matrix
from nnctl.layers.conv import Conv2d
from nnctl.layers.small_matrix import transposed_piece_rows, transposed_times


def normal(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("piece_rows", [1, 7, 20, 50], ids=["rows", "remainder", "exact", "one-piece"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_pieces_give_the_plain_product(piece_rows, order):
    a = np.asarray(normal((40, 6), 0), order=order)  # F: im2col's one-channel col, a transposed view
    b = normal((40, 5), 1)
    np.testing.assert_allclose(transposed_times(a, b, piece_rows), a.T @ b, rtol=1e-13, atol=1e-13)


def test_pieces_are_sized_for_the_kernels_or_not_used(monkeypatch):
    a = np.zeros((57600, 25), np.float32)
    monkeypatch.setattr(small_matrix, "blas_has_small_matrix_kernels", lambda: True)
    assert transposed_piece_rows(a, 25, 30) == 10 ** 6 // (25 * 30)  # the CNN's first layer
    assert transposed_piece_rows(a, 288, 64) == 0  # a (288, 64) result is too large for the kernels
    monkeypatch.setattr(small_matrix, "blas_has_small_matrix_kernels", lambda: False)
    assert transposed_piece_rows(a, 25, 30) == 0


def test_conv_weight_gradient_in_pieces_equals_one_product(monkeypatch):
    x, dy = normal((3, 9, 9, 1), 3), normal((3, 7, 7, 4), 4)
    calls = []
    monkeypatch.setattr(conv_module, "transposed_times",
                        lambda *args: calls.append(args[2]) or small_matrix.transposed_times(*args))
    monkeypatch.setattr(small_matrix, "SMALL_MATRIX_LIMIT", 10 * 10 * 4)  # pieces of 10 rows of 9 + 1 (bias)
    results = []
    for small_kernels in (True, False):
        monkeypatch.setattr(small_matrix, "blas_has_small_matrix_kernels", lambda: small_kernels)
        conv = Conv2d(1, 4, 3, rng=np.random.default_rng(5), dtype=np.float64)
        y = conv.forward(x)
        dx = conv.backward(dy)
        results.append((y, dx, conv.W.grad.copy(), conv.b.grad.copy()))
    assert calls == [10]  # in pieces with the kernels, in one product without
    for fast, plain in zip(*results):
        np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-13)
