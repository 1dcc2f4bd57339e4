"""Every image-side layer's backward against central differences (float64), plus dtype and mode checks."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl import gradcheck
from nnctl.layers import (BatchNorm, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sigmoid,
                          SoftmaxCrossEntropy, Tanh)

F64 = np.float64


def away_from_zero(shape, seed=0):
    """Values with |x| in [0.1, 1.1): no ReLU kink within eps."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.1, 1.1, shape) * rng.choice([-1.0, 1.0], shape)).astype(F64)


def distinct(shape, seed=0):
    """All-different values at least 1e-3 apart, so no max-pool window has a tie within eps."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 1e-3).astype(F64)


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(F64)


# name, layer factory (rng -> layer), inputs
CASES = [
    ("linear_3d", lambda rng: Linear(4, 3, rng=rng, dtype=F64), (normal((2, 3, 4)),)),
    ("linear_xavier", lambda rng: Linear(5, 2, init="xavier", rng=rng, dtype=F64), (normal((3, 5)),)),
    ("relu", lambda rng: ReLU(), (away_from_zero((3, 4)),)),
    ("sigmoid", lambda rng: Sigmoid(), (normal((3, 4)),)),
    ("tanh", lambda rng: Tanh(), (normal((2, 3, 4)),)),
    ("dropout_train", lambda rng: Dropout(0.4, rng=rng, dtype=F64), (normal((4, 5)),)),
    ("batchnorm_dense", lambda rng: BatchNorm(3, dtype=F64), (normal((5, 3)),)),
    ("batchnorm_conv", lambda rng: BatchNorm(2, dtype=F64), (normal((2, 3, 3, 2)),)),
    ("conv_plain", lambda rng: Conv2d(2, 3, 3, rng=rng, dtype=F64), (normal((2, 5, 5, 2)),)),
    ("conv_stride2_pad1", lambda rng: Conv2d(2, 3, 3, stride=2, padding=1, rng=rng, dtype=F64),
     (normal((2, 6, 5, 2)),)),
    ("conv_k1_pad2", lambda rng: Conv2d(3, 2, 1, padding=2, rng=rng, dtype=F64), (normal((1, 3, 4, 3)),)),
    ("conv_stride3_k2", lambda rng: Conv2d(1, 2, 2, stride=3, rng=rng, dtype=F64), (normal((2, 7, 8, 1)),)),
    ("maxpool_2x2", lambda rng: MaxPool2d(2), (distinct((2, 4, 6, 3)),)),
    ("maxpool_ragged", lambda rng: MaxPool2d(2), (distinct((2, 5, 5, 2)),)),
    ("maxpool_3_stride2_overlap", lambda rng: MaxPool2d(3, stride=2), (distinct((1, 7, 7, 2)),)),
    ("flatten", lambda rng: Flatten(), (normal((2, 3, 2, 2)),)),
    ("softmax_xent", lambda rng: SoftmaxCrossEntropy(), (normal((6, 4)), np.array([0, 3, 1, 1, 2, 0]))),
    ("softmax_xent_ignore", lambda rng: SoftmaxCrossEntropy(ignore_index=-1),
     (normal((2, 3, 5)), np.array([[0, -1, 4], [-1, 2, 2]]))),
]


@pytest.mark.parametrize("name, make, inputs", CASES, ids=[c[0] for c in CASES])
def test_backward_matches_central_differences(name, make, inputs):
    layer = make(np.random.default_rng(0))
    layer.train()
    inputs = tuple(x.copy() for x in inputs)
    report = gradcheck.check_layer(layer, *inputs, eps=1e-6)
    assert report.results, "nothing was compared"
    assert report.max_rel_error < 1e-6, report.worst()


def test_first_conv_can_skip_the_input_gradient():
    rng = np.random.default_rng(0)
    conv = Conv2d(1, 2, 3, needs_input_grad=False, rng=rng, dtype=F64)
    x = normal((2, 5, 5, 1))
    y = conv.forward(x)
    assert conv.backward(np.ones_like(y)) is None
    assert np.abs(conv.W.grad).sum() > 0


def test_maxpool_ties_route_the_gradient_once():
    x = np.zeros((1, 2, 2, 1), dtype=np.float32)  # all four equal: the first (top-left) wins
    pool = MaxPool2d(2)
    pool.forward(x)
    dx = pool.backward(np.full((1, 1, 1, 1), 3.0, dtype=np.float32))
    assert dx[0, :, :, 0].tolist() == [[3.0, 0.0], [0.0, 0.0]]


F32_CASES = [
    ("linear", lambda rng: Linear(4, 3, rng=rng), (5, 4)),
    ("relu", lambda rng: ReLU(), (5, 4)),
    ("sigmoid", lambda rng: Sigmoid(), (5, 4)),
    ("tanh", lambda rng: Tanh(), (5, 4)),
    ("dropout", lambda rng: Dropout(0.5, rng=rng), (5, 4)),
    ("batchnorm", lambda rng: BatchNorm(3), (2, 4, 4, 3)),
    ("conv", lambda rng: Conv2d(3, 2, 3, stride=2, padding=1, rng=rng), (2, 6, 6, 3)),
    ("maxpool", lambda rng: MaxPool2d(2), (2, 6, 6, 3)),
    ("flatten", lambda rng: Flatten(), (2, 6, 6, 3)),
]


@pytest.mark.parametrize("name, make, shape", F32_CASES, ids=[c[0] for c in F32_CASES])
def test_float32_stays_float32(name, make, shape):
    layer = make(np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    for name_, p in layer.named_params().items():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32, name_
    for buffer in layer.named_buffers().values():
        assert buffer.dtype == np.float32


def test_softmax_cross_entropy_float32_gradient():
    loss = SoftmaxCrossEntropy()
    logits = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    loss.forward(logits, np.array([0, 1, 2, 0]))
    assert loss.backward().dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_finite_for_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, np.array([1, 0]))
    grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx((2e4 + (2e4 + np.log(2))) / 2, rel=1e-6)
    assert loss.correct() == 0


def test_cross_entropy_counts_correct_and_ignores_padding():
    loss = SoftmaxCrossEntropy(ignore_index=-1)
    logits = np.array([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    loss.forward(logits, np.array([0, 0, -1]))
    assert (loss.count, loss.correct()) == (2, 1)
    assert np.all(loss.backward()[2] == 0)


def test_batchnorm_eval_uses_running_statistics():
    bn = BatchNorm(2, momentum=0.0, dtype=F64)  # momentum 0: running stats = last batch's
    x = normal((50, 2)) * np.array([2.0, 0.5]) + np.array([3.0, -1.0])
    bn.train()
    bn.forward(x)
    assert np.allclose(bn.running_mean, x.mean(axis=0))
    assert np.allclose(bn.running_var, x.var(axis=0, ddof=1))
    bn.eval()
    probe = np.array([[3.0, -1.0], [5.0, 0.0]])
    expected = (probe - x.mean(axis=0)) / np.sqrt(x.var(axis=0, ddof=1) + bn.eps)
    assert np.allclose(bn.forward(probe), expected)
    assert set(bn.named_buffers()) == {"running_mean", "running_var"}


def test_batchnorm_eval_backward_matches_central_differences():
    bn = BatchNorm(3, dtype=F64)
    bn.train()
    bn.forward(normal((20, 3), seed=3) * 2 + 1)  # give it non-trivial running statistics
    bn.eval()
    report = gradcheck.check_layer(bn, normal((4, 3)))
    assert report.max_rel_error < 1e-6, report.worst()


def test_dropout_eval_is_identity_and_training_keeps_the_mean():
    rng = np.random.default_rng(0)
    drop = Dropout(0.3, rng=rng, dtype=F64)
    x = np.ones((200, 500))
    drop.eval()
    assert drop.forward(x) is x and drop.backward(x) is x
    drop.train()
    y = drop.forward(x)
    assert set(np.unique(y)) == {0.0, 1 / 0.7}
    assert y.mean() == pytest.approx(1.0, abs=0.01)
    assert np.mean(y == 0) == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_probability(p):
    with pytest.raises(ValueError, match="dropout must be in"):
        Dropout(p, rng=np.random.default_rng(0))


def test_initialisers_have_the_stated_scale():
    from nnctl.layers.init import initial_weights

    rng = np.random.default_rng(0)
    he = initial_weights((400, 300), 400, 300, "he", rng)
    xavier = initial_weights((400, 300), 400, 300, "xavier", rng)
    assert he.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert xavier.std() == pytest.approx(np.sqrt(1 / 400), rel=0.02)
    assert he.dtype == np.float32
    with pytest.raises(ValueError, match="did you mean 'xavier'"):
        initial_weights((2, 2), 2, 2, "xavir", rng)


@pytest.mark.parametrize("pool, stride, shape", [(2, 2, (2, 6, 8, 3)), (2, 2, (1, 5, 7, 2)), (3, 2, (1, 7, 7, 2)),
                                                 (2, 3, (1, 8, 8, 1))])
def test_maxpool_ties_go_to_the_first_offset_in_row_major_order(pool, stride, shape):
    """Pixels drawn from {0, 1}: many tied windows. Each output's gradient goes to exactly one
    position, the first maximal offset of its window in row-major order (the reference loop)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, shape).astype(np.float64)
    layer = MaxPool2d(pool, stride)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    expected_y, expected_dx = plain_maxpool(x, dy, pool, stride)
    assert np.array_equal(y, expected_y)
    assert np.array_equal(dx, expected_dx)


@pytest.mark.parametrize("threads", [1, 2])
def test_maxpool_in_blocks_of_images_equals_the_reference_loop(monkeypatch, threads):
    """2x2 pooling runs on blocks of images, on the threads: with one image a block, on one
    thread or two, the output, the tie-breaking and the gradient are the reference loop's."""
    monkeypatch.setenv("NNCTL_NUM_THREADS", str(threads))
    monkeypatch.setattr(MaxPool2d, "BLOCK_BYTES", 1)  # one image per block
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (9, 6, 8, 3)).astype(np.float32)
    layer = MaxPool2d(2)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    expected_y, expected_dx = plain_maxpool(x, dy, 2, 2)
    assert np.array_equal(y, expected_y)
    assert np.array_equal(layer.backward(dy), expected_dx)


def plain_maxpool(x, dy, pool: int, stride: int):
    """y and dx one window at a time: each window's gradient to its first maximum (np.argmax)."""
    N, H, W, C = x.shape
    OH, OW = (H - pool) // stride + 1, (W - pool) // stride + 1
    y, dx = np.empty((N, OH, OW, C), dtype=x.dtype), np.zeros_like(x)
    for n, oh, ow, c in np.ndindex(*y.shape):
        window = x[n, oh * stride:oh * stride + pool, ow * stride:ow * stride + pool, c]
        i, j = np.unravel_index(np.argmax(window), window.shape)  # argmax: the first maximum
        dx[n, oh * stride + i, ow * stride + j, c] += dy[n, oh, ow, c]
        y[n, oh, ow, c] = window.max()
    return y, dx


def plain_im2col(x, k: int, stride: int, padding: int):
    """col[(n, oh, ow), (i, j, c)] = padded x[n, oh*S + i, ow*S + j, c], one window at a time."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    N, H, W, C = x.shape
    OH, OW = (H - k) // stride + 1, (W - k) // stride + 1
    rows = [x[n, oh * stride: oh * stride + k, ow * stride: ow * stride + k, :].reshape(-1)
            for n in range(N) for oh in range(OH) for ow in range(OW)]
    return np.array(rows), OH, OW


@pytest.mark.parametrize("ones_column", [False, True], ids=["no-bias", "bias-column"])
@pytest.mark.parametrize("C", [1, 3], ids=["one-channel", "three-channels"])
@pytest.mark.parametrize("k, stride, padding", [(3, 1, 0), (2, 3, 0), (3, 2, 1)])
def test_im2col_equals_its_plain_definition(C, k, stride, padding, ones_column):
    """Both of im2col's ways (one channel: offset by offset) build the same matrix as the
    loop, with the bias's column of ones last where asked for."""
    from nnctl.layers.conv import im2col

    x = normal((2, 7, 8, C))
    col, OH, OW = im2col(x, k, k, stride, padding, ones_column=ones_column)
    expected, EOH, EOW = plain_im2col(x, k, stride, padding)
    if ones_column:
        expected = np.hstack([expected, np.ones((len(expected), 1))])
    assert (OH, OW) == (EOH, EOW)
    assert np.array_equal(col, expected)
