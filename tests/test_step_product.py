"""The per-step recurrent product in both layouts: equal to h @ W, the same bits for any
thread count, and chosen from the shapes and the BLAS kernels only."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest

from nnctl.layers import step_product
from nnctl.layers.gru import GRU
from nnctl.layers.recurrent import LSTM
from nnctl.layers.reference import reference_of
from nnctl.layers.rnn import RNN
from nnctl.layers.step_product import StepProduct, choose_layout
from nnctl.threads import use_threads


def normal(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("layout", ["groups", "transposed"])
@pytest.mark.parametrize("K, M", [(5, 64), (7, 100), (3, 200), (4, 12)], ids=["one-group", "padded", "many", "narrow"])
@pytest.mark.parametrize("scaled", [False, True])
def test_both_layouts_compute_h_times_w(layout, K, M, scaled):
    h, W = normal((3, K), 0), normal((K, M), 1)
    scale = normal(M, 2) if scaled else None
    expected = h @ (W if scale is None else W * scale)
    product = StepProduct(W, 3, column_scale=scale, layout=layout)
    np.testing.assert_allclose(product(h), expected, rtol=1e-13, atol=1e-13)
    a = normal((3, M), 3)
    total = a + expected
    product.add_to(a, h)
    np.testing.assert_allclose(a, total, rtol=1e-13, atol=1e-13)


def test_add_to_writes_into_a_view_of_a_larger_array():
    """The LSTM passes A[t], a row block of its (T, N, 4H) gates: the sum must land there."""
    W, h = normal((6, 130), 4), normal((2, 6), 5)
    A = np.zeros((3, 2, 130))
    StepProduct(W, 2, layout="groups").add_to(A[1], h)
    np.testing.assert_allclose(A[1], h @ W, rtol=1e-13, atol=1e-13)
    assert not A[0].any() and not A[2].any()


def test_column_groups_give_the_same_bits_on_one_or_two_threads():
    """Big enough for the groups to be shared among threads; each group is one BLAS call."""
    h, W = normal((10, 650), 6, np.float32), normal((650, 2600), 7, np.float32)
    product = StepProduct(W, 10, layout="groups")
    use_threads(1)  # conftest.py puts the count back after the test
    one = product(h).copy()
    use_threads(2)
    assert np.array_equal(product(h), one)


def test_the_layout_follows_the_kernels_and_the_size(monkeypatch):
    W = np.zeros((650, 2600), np.float32)
    monkeypatch.setattr(step_product, "blas_has_small_matrix_kernels", lambda: True)
    assert choose_layout(10, W) == "groups"  # 10 * 650 * 64 multiply-adds per group: small
    assert choose_layout(64, W) == "transposed"  # too big for the small-matrix kernels
    monkeypatch.setattr(step_product, "blas_has_small_matrix_kernels", lambda: False)
    assert choose_layout(10, W) == "transposed"


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="layout must be"):
        StepProduct(np.zeros((2, 2)), 1, layout="rows")


@pytest.mark.parametrize("small_kernels", [True, False], ids=["groups", "transposed"])
def test_lstm_equals_its_reference_in_either_layout(monkeypatch, small_kernels):
    monkeypatch.setattr(step_product, "blas_has_small_matrix_kernels", lambda: small_kernels)
    fast = LSTM(3, 70, rng=np.random.default_rng(8), dtype=np.float64)  # 4H = 280: a padded last group
    plain = reference_of(copy.deepcopy(fast))
    x = normal((2, 4, 3), 9)
    state = (normal((2, 70), 10), normal((2, 70), 11))
    y_fast, (h_fast, c_fast) = fast.forward(x, state)
    y_plain, (h_plain, c_plain) = plain.forward(x, state)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_fast, h_plain, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_fast, c_plain, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("small_kernels", [True, False], ids=["groups", "transposed"])
@pytest.mark.parametrize("cell", [GRU, RNN], ids=["gru", "rnn"])
def test_other_cells_equal_their_references_in_either_layout(monkeypatch, small_kernels, cell):
    """The GRU's 3H = 210 and the RNN's H = 70 columns: both end in a padded group."""
    monkeypatch.setattr(step_product, "blas_has_small_matrix_kernels", lambda: small_kernels)
    fast = cell(3, 70, rng=np.random.default_rng(12), dtype=np.float64)
    plain = reference_of(copy.deepcopy(fast))
    x, h0 = normal((2, 4, 3), 13), normal((2, 70), 14)
    y_fast, h_fast = fast.forward(x, h0)
    y_plain, h_plain = plain.forward(x, h0)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_fast, h_plain, rtol=1e-12, atol=1e-14)


def first_output(layer, x, state):
    out = layer.forward(x, state)
    return out[0]


@pytest.mark.parametrize("cell", [LSTM, GRU, RNN], ids=["lstm", "gru", "rnn"])
def test_weights_fixed_makes_the_step_product_once_and_drops_it_after(step_products_made, cell):
    """Inside weights_fixed, every window of the same rows reuses one StepProduct, with the
    same result as a fresh one; after the block a changed Wh is seen."""
    layer = cell(3, 70, rng=np.random.default_rng(15), dtype=np.float64)
    x = normal((2, 4, 3), 16)
    fresh = first_output(layer, x, None)
    with layer.weights_fixed():
        kept = [first_output(layer, x, None) for _ in range(3)]
        first_output(layer, normal((5, 4, 3), 17), None)  # other rows: a StepProduct of their own
    assert len(step_products_made) == 1 + 2
    for y in kept:
        assert np.array_equal(y, fresh)
    layer.Wh.data *= 0.5  # as an optimizer step would
    expected = first_output(copy.deepcopy(layer), x, None)
    with layer.weights_fixed():
        assert np.array_equal(first_output(layer, x, None), expected)
    assert not np.array_equal(expected, fresh)


def test_weight_drop_is_never_kept():
    """With a weight-drop mask, Wh * M is new every window: the copy must follow it."""
    layer = LSTM(3, 70, rng=np.random.default_rng(18), dtype=np.float64)
    x = normal((2, 4, 3), 19)
    masks = [np.random.default_rng(seed).random(layer.Wh.shape) < 0.5 for seed in (20, 21)]
    with layer.weights_fixed():
        inside = [layer.forward(x, None, wh_scale=m.astype(np.float64))[0] for m in masks]
    outside = [layer.forward(x, None, wh_scale=m.astype(np.float64))[0] for m in masks]
    for a, b in zip(inside, outside):
        assert np.array_equal(a, b)


def test_weights_fixed_blocks_nest(step_products_made):
    """An inner block keeps its own copies, and the outer block's are back after it."""
    layer = RNN(3, 8, rng=np.random.default_rng(22), dtype=np.float64)
    x = normal((2, 4, 3), 23)
    with layer.weights_fixed():
        layer.forward(x, None)
        with layer.weights_fixed():
            layer.forward(x, None)
            layer.forward(x, None)
        layer.forward(x, None)
    assert len(step_products_made) == 2
    layer.forward(x, None)
    assert len(step_products_made) == 3


def test_evaluation_makes_each_layers_copy_once_and_scores_the_same(step_products_made, monkeypatch):
    """metrics.score (the Trainer's and `nnctl eval`'s evaluation) runs inside weights_fixed:
    one per-step copy of Wh per layer for all its windows, the same totals as without."""
    from nnctl.layers.base import Layer
    from nnctl.metrics import score
    from nnctl.models.lstm_lm import LSTMLanguageModel

    model = LSTMLanguageModel(embed_dim=6, hidden_dim=6, num_layers=2, vocab_size=20,
                              rng=np.random.default_rng(24), dtype=np.float64)
    ids = np.random.default_rng(25).integers(0, 20, (5, 3, 8))  # five windows of 3 x 7 tokens
    batches = [(window[:, :-1], window[:, 1:]) for window in ids]
    kept = score(model, batches).summary("perplexity")
    assert len(step_products_made) == 2 and model.training
    monkeypatch.setattr(Layer, "weights_fixed", lambda self: contextlib.nullcontext(self))
    assert score(model, batches).summary("perplexity") == kept
    assert len(step_products_made) == 2 + 2 * 5
