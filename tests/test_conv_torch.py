"""Conv2d (bias as a row of its weight matrix) and MaxPool2d against PyTorch autograd, float64.

Skipped where PyTorch is not installed (the peers' venv has it: benchmarks/README.md).
nnctl is channels-last (N, H, W, C), PyTorch channels-first: the arrays are transposed.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnctl.layers import Conv2d, MaxPool2d

torch = pytest.importorskip("torch")


def to_torch(a):
    return torch.tensor(a.transpose(0, 3, 1, 2), requires_grad=True)


def from_torch(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("C, F, k, stride, padding", [(1, 6, 5, 1, 0), (3, 4, 3, 2, 1)],
                         ids=["one-channel", "three-channels"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_equals_torch(C, F, k, stride, padding, bias):
    rng = np.random.default_rng(0)
    conv = Conv2d(C, F, k, stride, padding, bias=bias, rng=rng, dtype=np.float64)
    if bias:
        conv.b.data[...] = rng.standard_normal(F)
    x = rng.standard_normal((4, 11, 12, C))
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    xt = to_torch(x)
    Wt = torch.tensor(conv.W.data.transpose(3, 2, 0, 1).copy(), requires_grad=True)  # (F, C, KH, KW)
    bt = torch.tensor(conv.b.data.copy(), requires_grad=True) if bias else None
    yt = torch.nn.functional.conv2d(xt, Wt, bt, stride=stride, padding=padding)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, from_torch(yt), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(conv.W.grad, Wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-13)
    if bias:
        np.testing.assert_allclose(conv.b.grad, bt.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_maxpool_in_blocks_equals_torch(monkeypatch):
    monkeypatch.setattr(MaxPool2d, "BLOCK_BYTES", 1)  # one image per block
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 8, 6, 3))
    pool = MaxPool2d(2)
    y = pool.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = pool.backward(dy)
    xt = to_torch(x)
    yt = torch.nn.functional.max_pool2d(xt, 2)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(y, from_torch(yt))
    np.testing.assert_array_equal(dx, xt.grad.numpy().transpose(0, 2, 3, 1))
