"""The language model's regularisers (issue 14): locked dropout, embedding dropout, weight drop,
AR and TAR. Each layer against its plain definition, gradient checks of each and of the
whole model with all of them on (masks frozen: the checker reseeds every layer's rng before
each pass), and evaluation with no dropout of any kind."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl import gradcheck
from nnctl.layers.base import Layer
from nnctl.layers.gru import GRU
from nnctl.layers.recurrent import LSTM
from nnctl.layers.reference import reference_of
from nnctl.layers.regularisers import ActivationPenalty, EmbeddingDropout, LockedDropout, WeightDrop
from nnctl.layers.rnn import RNN
from nnctl.models.lstm_lm import LSTMLanguageModel
from test_lstm import LossOf

F64 = np.float64
CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
ALL_ON = {"dropout": 0.3, "dropout_input": 0.4, "dropout_between": 0.2, "dropout_output": 0.35,
          "locked_dropout": True, "embedding_dropout": 0.3, "weight_drop": 0.4,
          "activation_reg": 2.0, "temporal_activation_reg": 1.0}


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def model(cell="lstm", tie=True, layers=2, **options):
    return LSTMLanguageModel(embed_dim=4, hidden_dim=4, num_layers=layers, tie_weights=tie, init_scale=0.5,
                             cell=cell, vocab_size=7, rng=np.random.default_rng(0), dtype=F64,
                             **{"dropout": 0.0, **options})


def check(layer, *inputs, tolerance=1e-6):
    report = gradcheck.check_layer(layer, *inputs, eps=1e-6)
    assert report.results, "nothing was compared"
    assert report.max_rel_error < tolerance, report.worst()
    return report.max_rel_error


# -- locked dropout ------------------------------------------------------------------------
def test_locked_dropout_shares_one_mask_over_the_time_steps():
    drop = LockedDropout(0.5, rng=np.random.default_rng(0), dtype=F64)
    x = np.ones((3, 6, 8))
    y = drop(x)
    assert set(np.unique(y)) == {0.0, 2.0}
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))  # every step as the first
    assert not np.array_equal(y[0, 0], y[1, 0])  # each sequence its own mask
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), y)
    drop.eval()
    assert drop(x) is x


def test_locked_dropout_gradient():
    check(LockedDropout(0.4, rng=np.random.default_rng(0), dtype=F64), normal((2, 5, 3)))


# -- embedding dropout ---------------------------------------------------------------------
class LookupWithEmbeddingDropout(Layer):
    """vectors = W[ids] with whole words dropped: the Embedding's output through EmbeddingDropout."""

    def __init__(self, W, drop):
        self.W, self.drop = W, drop

    def forward(self, ids):
        return self.drop.forward(ids, self.W[ids])


def test_embedding_dropout_is_a_lookup_in_the_masked_matrix():
    """Its plain twin: W * m[:, None] looked up (the papers' form), with m drawn as the layer draws it."""
    V, D = 50, 4
    W, ids = normal((V, D)), np.random.default_rng(1).integers(0, V, (6, 9))
    drop = EmbeddingDropout(0.3, V, rng=np.random.default_rng(5))
    y = drop(ids, W[ids])
    m = (np.random.default_rng(5).random(V) >= 0.3) / 0.7  # the same draw
    np.testing.assert_allclose(y, (W * m[:, None])[ids], rtol=0, atol=1e-15)
    dropped = np.flatnonzero(m == 0)
    assert len(dropped) and np.isin(ids, dropped).any()
    assert not y[np.isin(ids, dropped)].any()  # a dropped word is zero wherever it occurs
    dy = normal(y.shape, 2)
    np.testing.assert_allclose(drop.backward(dy), dy * m[ids][..., None], rtol=0, atol=1e-15)
    drop.eval()
    vectors = W[ids]
    assert drop(ids, vectors) is vectors


def test_embedding_dropout_gradient():
    class Vectors(Layer):
        def __init__(self, drop, ids):
            self.drop, self.ids = drop, ids

        def forward(self, vectors):
            return self.drop.forward(self.ids, vectors)

        def backward(self, dy):
            return self.drop.backward(dy)

    ids = np.random.default_rng(1).integers(0, 5, (2, 3))
    check(Vectors(EmbeddingDropout(0.4, 5, rng=np.random.default_rng(0)), ids), normal((2, 3, 4)))


# -- weight drop ---------------------------------------------------------------------------
class CellWithMask(Layer):
    """A cell run with a fixed weight-drop mask M on Wh (the same mask in every pass)."""

    def __init__(self, cell, mask, state=None):
        self.cell, self.mask, self.state = cell, mask, state

    def forward(self, x):
        return self.cell.forward(x, self.state, self.mask)[0]

    def backward(self, dy):
        return self.cell.backward(dy)


def weight_drop_mask(cell, p=0.5, seed=3):
    return WeightDrop(p, rng=np.random.default_rng(seed)).scale_for(cell.Wh.data)


@pytest.mark.parametrize("kind", CELLS)
def test_weight_drop_is_the_cell_with_a_masked_recurrent_matrix(kind):
    """The fast cell given M equals the same cell whose Wh IS Wh * M, and Wh's gradient is M times that one's."""
    cell = CELLS[kind](3, 4, rng=np.random.default_rng(0), dtype=F64)
    mask = weight_drop_mask(cell)
    assert set(np.unique(mask)) == {0.0, 2.0}
    x, dy = normal((2, 5, 3)), normal((2, 5, 4), 1)
    y, state = cell.forward(x, None, mask)
    cell.zero_grad()
    dx = cell.backward(dy)
    masked = CELLS[kind](3, 4, rng=np.random.default_rng(0), dtype=F64)
    masked.Wh.data *= mask
    y2, state2 = masked.forward(x, None)
    dx2 = masked.backward(dy)
    np.testing.assert_allclose(y, y2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(dx, dx2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(cell.Wh.grad, masked.Wh.grad * mask, rtol=0, atol=1e-14)
    np.testing.assert_allclose(cell.Wx.grad, masked.Wx.grad, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", CELLS)
def test_weight_drop_fast_cell_equals_its_reference(kind):
    """A mistake made the same way in forward and backward passes a gradient check, not this."""
    cell = CELLS[kind](3, 4, rng=np.random.default_rng(0), dtype=F64)
    twin = reference_of(cell)
    mask = weight_drop_mask(cell)
    x, dy = normal((2, 5, 3)), normal((2, 5, 4), 1)
    state = cell.forward(normal((2, 2, 3), 7))[1]
    y, last = cell.forward(x, state, mask)
    cell.zero_grad()
    dx = cell.backward(dy)
    grads = {n: p.grad.copy() for n, p in cell.named_params().items()}
    y2, last2 = twin.forward(x, state, mask)
    cell.zero_grad()
    dx2 = twin.backward(dy)
    np.testing.assert_allclose(y, y2, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.asarray(last), np.asarray(last2), rtol=0, atol=1e-13)
    np.testing.assert_allclose(dx, dx2, rtol=0, atol=1e-13)
    for name, p in cell.named_params().items():
        np.testing.assert_allclose(grads[name], p.grad, rtol=0, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("kind", CELLS)
def test_weight_drop_gradient(kind):
    cell = CELLS[kind](3, 4, rng=np.random.default_rng(0), dtype=F64)
    check(CellWithMask(cell, weight_drop_mask(cell)), normal((2, 5, 3)))


def test_weight_drop_draws_nothing_in_eval_mode():
    drop = WeightDrop(0.5, rng=np.random.default_rng(0))
    state = drop.rng.bit_generator.state
    drop.eval()
    assert drop.scale_for(np.ones((4, 16))) is None
    assert drop.rng.bit_generator.state == state


# -- AR and TAR ----------------------------------------------------------------------------
def test_activation_penalty_value_and_gradient():
    d, h = normal((2, 4, 3)), normal((2, 4, 3), 1)
    penalty = ActivationPenalty(2.0, 0.5)
    want = 2.0 * np.mean(d ** 2) + 0.5 * np.mean((h[:, 1:] - h[:, :-1]) ** 2)
    assert penalty.forward(d, h) == pytest.approx(want, rel=1e-14)
    check(penalty, d, h)
    assert ActivationPenalty(0.0, 1.0).forward(d, h[:, :1]) == 0.0  # one step: no pair to compare


# -- the whole model -----------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_whole_model_gradient_with_every_regulariser_on(cell, tie):
    """check_model reseeds every layer's rng before each pass, so both perturbed passes see the same masks.

    eps 1e-5: at 1e-6 the rounding of the loss (~2) already gives errors of a few 1e-7,
    with the regularisers on or off alike.
    """
    net = model(cell, tie, **ALL_ON)
    rng = np.random.default_rng(1)
    batch = (rng.integers(0, 7, (3, 5)), rng.integers(0, 7, (3, 5)))
    report = gradcheck.check_model(net, batch, eps=1e-5)
    assert len(report.results) == len(net.params())
    assert report.max_rel_error < 1e-6, report.worst()


def test_whole_model_gradient_over_a_carried_window_with_every_regulariser_on():
    net = model("lstm", False, **ALL_ON)
    ids = np.random.default_rng(1).integers(0, 7, (2, 6))
    _, state = net.loss((ids[:, :3], ids[:, 1:4]), None)
    state = [tuple(s.copy() for s in layer) for layer in state]
    report = gradcheck.check_layer(LossOf(net, ids[:, 1:], state), ids[:, :5], eps=1e-5)
    assert report.max_rel_error < 1e-6, report.worst()


def test_the_penalties_are_in_the_training_loss_only():
    net = model("lstm", **{"activation_reg": 2.0, "temporal_activation_reg": 1.0})
    plain = model("lstm")
    batch = (np.array([[1, 2, 3, 4]]), np.array([[2, 3, 4, 5]]))
    out, _ = net.loss(batch)
    h, top = net.forward(batch[0])
    want = plain.loss(batch)[0].loss_sum + 4 * ActivationPenalty(2.0, 1.0).forward(h, net.top)
    assert out.loss_sum == pytest.approx(want, rel=1e-14)
    net.eval(), plain.eval()
    assert net.loss(batch)[0].loss_sum == plain.loss(batch)[0].loss_sum


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_evaluation_is_deterministic_and_drops_nothing(cell):
    """In eval mode the regularised model is the plain one with the same weights, pass after pass."""
    net, plain = model(cell, **ALL_ON), model(cell)
    for (name, p), (name2, q) in zip(net.named_params().items(), plain.named_params().items()):
        assert name == name2
        np.testing.assert_array_equal(p.data, q.data)  # switching the regularisers on moves no weight
    ids = np.random.default_rng(1).integers(0, 7, (3, 6))
    net.eval(), plain.eval()
    first, state = net.logits(ids)
    again, _ = net.logits(ids)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, plain.logits(ids)[0])
    np.testing.assert_array_equal(net.logits(ids, state)[0], plain.logits(ids, state)[0])
    net.train()
    assert not np.array_equal(net.logits(ids)[0], first)  # and in training they do drop


def test_the_same_seed_gives_the_same_masks():
    ids = np.random.default_rng(1).integers(0, 7, (3, 6))
    a, b = model("lstm", **ALL_ON), model("lstm", **ALL_ON)
    np.testing.assert_array_equal(a.loss((ids, ids))[0].loss_sum, b.loss((ids, ids))[0].loss_sum)
    names = [n for n, layer in a.named_layers() if isinstance(getattr(layer, "rng", None), np.random.Generator)]
    assert {"embedding_dropout", "weight_drops.0", "weight_drops.1", "dropouts.0", "dropouts.2"} <= set(names)


def test_each_dropout_position_takes_its_own_rate():
    net = model("lstm", layers=3, dropout=0.1, dropout_input=0.4, dropout_output=0.2)
    assert [d.p for d in net.dropouts] == [0.4, 0.1, 0.1, 0.2]
    assert [type(d).__name__ for d in net.dropouts] == ["Dropout"] * 4
    locked = model("lstm", dropout=0.1, dropout_between=0.3, locked_dropout=True)
    assert [(type(d).__name__, d.p) for d in locked.dropouts] == [("LockedDropout", 0.1), ("LockedDropout", 0.3),
                                                                   ("LockedDropout", 0.1)]
    assert model("lstm").embedding_dropout is None and model("lstm").weight_drops == []
