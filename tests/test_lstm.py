"""LSTM language-model layers and model: gradient checks (float64, central differences),
carried state, weight tying, dtype, and learning on a tiny corpus."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl import gradcheck
from nnctl.errors import ConfigError
from nnctl.layers import Linear, SoftmaxCrossEntropy
from nnctl.layers.base import Layer
from nnctl.layers.decoder_loss import DecoderCrossEntropy
from nnctl.layers.embedding import Embedding, OutputProjection
from nnctl.layers.recurrent import LSTM
from nnctl.models import MODELS
from nnctl.models.lstm_lm import LSTMLanguageModel

F64 = np.float64


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


class LSTMFromState(Layer):
    """The LSTM with its incoming (h0, c0) as differentiable inputs: checks `dstate` too."""

    def __init__(self, lstm):
        self.lstm = lstm

    def forward(self, x, h0, c0):
        return self.lstm.forward(x, (h0, c0))[0]

    def backward(self, dy):
        return (self.lstm.backward(dy), *self.lstm.dstate)


class LSTMOutputs(Layer):
    """The LSTM with a fixed incoming state (None: zeros), as truncated BPTT sees it."""

    def __init__(self, lstm, state=None):
        self.lstm, self.state = lstm, state

    def forward(self, x):
        return self.lstm.forward(x, self.state)[0]

    def backward(self, dy):
        return self.lstm.backward(dy)


class LossOf(Layer):
    """Wraps a model so check_layer sees forward(ids) -> mean loss, backward -> None."""

    def __init__(self, model, targets, state=None):
        self.model, self.targets, self.state = model, targets, state

    def forward(self, ids):
        out, _ = self.model.loss((ids, self.targets), self.state)
        return out.loss_sum / out.count

    def backward(self, dout):
        # check_layer zeroes the grads first, so these are exactly this backward's; the model
        # gives d(mean loss), the checker wants d(dout * mean loss).
        self.model.backward()
        for p in self.model.params():
            p.grad *= dout
        return None


def check(layer, *inputs):
    report = gradcheck.check_layer(layer, *inputs, eps=1e-6)
    assert report.results, "nothing was compared"
    assert report.max_rel_error < 1e-6, report.worst()


def second_window_state(lstm, N, seed):
    """The state after a first window, as the Trainer carries it into the next one."""
    _, (h, c) = lstm.forward(normal((N, 4, lstm.Wx.shape[0]), seed + 10))
    return h.copy(), c.copy()


LSTM_CASES = [  # (N, T, D, H)
    (2, 1, 3, 4),
    (2, 5, 3, 4),
    (3, 7, 2, 3),
]


@pytest.mark.parametrize("N, T, D, H", LSTM_CASES, ids=[f"N{c[0]}_T{c[1]}_D{c[2]}_H{c[3]}" for c in LSTM_CASES])
def test_lstm_backward_from_zero_state(N, T, D, H):
    check(LSTMOutputs(LSTM(D, H, rng=np.random.default_rng(0), dtype=F64)), normal((N, T, D)))


@pytest.mark.parametrize("N, T, D, H", LSTM_CASES, ids=[f"N{c[0]}_T{c[1]}_D{c[2]}_H{c[3]}" for c in LSTM_CASES])
def test_lstm_backward_with_carried_state(N, T, D, H):
    """A second window starting from the first window's state: dx, dW and d(h0, c0)."""
    lstm = LSTM(D, H, rng=np.random.default_rng(1), dtype=F64)
    h0, c0 = second_window_state(lstm, N, seed=T)
    check(LSTMFromState(lstm), normal((N, T, D), 2), h0, c0)


EMBED_CASES = [
    ("embedding_repeated_ids", lambda rng: Embedding(6, 3, rng=rng, dtype=F64), (np.array([[1, 4, 1], [0, 1, 5]]),)),
    ("output_projection", lambda rng: OutputProjection(3, 5, rng=rng, dtype=F64), (normal((2, 4, 3)),)),
    ("decoder_xent", lambda rng: DecoderCrossEntropy(3, 5, rng=rng, dtype=F64),
     (normal((2, 4, 3)), np.array([[0, 4, 4, 1], [2, 2, 3, 4]]))),
]


@pytest.mark.parametrize("name, make, inputs", EMBED_CASES, ids=[c[0] for c in EMBED_CASES])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_embedding_and_output_layers_backward(name, make, inputs, mode):
    layer = make(np.random.default_rng(0))
    layer.train(mode == "train")
    check(layer, *inputs)


def test_fused_decoder_matches_linear_plus_softmax_cross_entropy():
    """DecoderCrossEntropy == OutputProjection + SoftmaxCrossEntropy: loss, dh, dW, db."""
    rng = np.random.default_rng(0)
    fused = DecoderCrossEntropy(4, 7, rng=rng, dtype=F64)
    plain = OutputProjection(4, 7, rng=rng, dtype=F64)
    plain.W.data[...] = fused.W.data
    plain.b.data[...] = normal(7, 3)
    fused.b.data[...] = plain.b.data
    h, y = normal((3, 5, 4), 1), np.random.default_rng(2).integers(0, 7, (3, 5))
    loss = SoftmaxCrossEntropy()
    mean = loss.forward(plain.forward(h), y)
    dh_plain = plain.backward(loss.backward(1.0))
    total = fused.forward(h, y)
    dh_fused = fused.backward(1.0 / y.size)
    np.testing.assert_allclose(total / y.size, mean, rtol=1e-12)
    np.testing.assert_allclose(dh_fused, dh_plain, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fused.W.grad, plain.W.grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fused.b.grad, plain.b.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fused_decoder_on_threads_matches_the_plain_composition(monkeypatch, mode):
    """Enough rows that the bias/exp/row-sum pass is split over 3 threads (nnctl.threads)."""
    monkeypatch.setenv("NNCTL_NUM_THREADS", "3")
    rng = np.random.default_rng(0)
    fused = DecoderCrossEntropy(5, 11, rng=rng, dtype=F64)
    plain = OutputProjection(5, 11, rng=rng, dtype=F64)
    plain.W.data[...] = fused.W.data
    fused.b.data[...] = plain.b.data[...] = normal(11, 3)
    fused.train(mode == "train")
    h, y = normal((10, 29, 5), 4) * 3, np.random.default_rng(5).integers(0, 11, (10, 29))  # 290 rows
    loss = SoftmaxCrossEntropy()
    mean = loss.forward(plain.forward(h), y)
    dh_plain = plain.backward(loss.backward(1.0))
    np.testing.assert_allclose(fused.forward(h, y) / y.size, mean, rtol=1e-12)
    np.testing.assert_allclose(fused.backward(1.0 / y.size), dh_plain, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fused.W.grad, plain.W.grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fused.b.grad, plain.b.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [F64, np.float32])
def test_fused_decoder_with_huge_logits_in_some_rows(monkeypatch, dtype):
    """Rows whose logits reach +-1e4 overflow exp(l) and are redone with the max subtracted
    (decoder_loss.S_MIN), the others keep exp(l) unshifted; both must give the composition's numbers."""
    monkeypatch.setenv("NNCTL_NUM_THREADS", "2")
    rng = np.random.default_rng(0)
    fused = DecoderCrossEntropy(5, 11, rng=rng, dtype=dtype)
    plain = OutputProjection(5, 11, rng=rng, dtype=F64)
    plain.W.data[...] = fused.W.data
    h = normal((80, 5), 4)
    h[:8] *= 1e4 / np.abs(h[:8] @ plain.W.data.T).max()  # the first block: logits up to +-1e4
    h[40:41] *= 200.0  # and one row in a later block
    y = np.random.default_rng(5).integers(0, 11, 80)
    loss = SoftmaxCrossEntropy()
    mean = loss.forward(plain.forward(h), y)
    dh_plain = plain.backward(loss.backward(1.0))
    total = fused.forward(h.astype(dtype), y)
    dh = fused.backward(1.0 / y.size)
    assert np.isfinite(total) and np.all(np.isfinite(dh)) and np.all(np.isfinite(fused.W.grad))
    rtol = 1e-10 if dtype == F64 else 1e-4
    np.testing.assert_allclose(total / y.size, mean, rtol=rtol)
    np.testing.assert_allclose(dh, dh_plain, rtol=rtol, atol=rtol * np.abs(dh_plain).max())
    np.testing.assert_allclose(fused.W.grad, plain.W.grad, rtol=rtol, atol=rtol * np.abs(plain.W.grad).max())


@pytest.mark.filterwarnings("error")  # the overflow and underflow of exp(l) are expected, and silent
@pytest.mark.parametrize("dtype", [F64, np.float32])
def test_fused_decoder_when_every_row_underflows(monkeypatch, dtype):
    """A bias of -300 on every word: exp(l) is 0 (float32) or below S_MIN (float64) in every
    row, so every row is redone with its max subtracted, and the numbers are the composition's."""
    monkeypatch.setenv("NNCTL_NUM_THREADS", "2")
    rng = np.random.default_rng(1)
    fused = DecoderCrossEntropy(5, 11, rng=rng, dtype=dtype)
    plain = OutputProjection(5, 11, rng=rng, dtype=F64)
    plain.W.data[...] = fused.W.data
    fused.b.data[...] = plain.b.data[...] = -300.0 + normal((11,), 2)
    h = normal((40, 5), 3)
    y = np.random.default_rng(6).integers(0, 11, 40)
    loss = SoftmaxCrossEntropy()
    mean = loss.forward(plain.forward(h), y)
    dh_plain = plain.backward(loss.backward(1.0))
    total = fused.forward(h.astype(dtype), y)
    dh = fused.backward(1.0 / y.size)
    rtol = 1e-10 if dtype == F64 else 1e-4
    np.testing.assert_allclose(total / y.size, mean, rtol=rtol)
    np.testing.assert_allclose(dh, dh_plain, rtol=rtol, atol=rtol * np.abs(dh_plain).max())
    np.testing.assert_allclose(fused.b.grad, plain.b.grad, rtol=rtol, atol=rtol * np.abs(plain.b.grad).max())


def test_plain_time_distributed_linear_backward():
    """The unfused path (a Linear over (N, T, H)) is gradient-checked too."""
    check(Linear(4, 6, rng=np.random.default_rng(0), dtype=F64), normal((2, 3, 4)))


def tiny_model(tie=True, dropout=0.0, layers=2, dtype=F64, seed=0, sparse=False):
    return LSTMLanguageModel(embed_dim=4, hidden_dim=4, num_layers=layers, dropout=dropout, tie_weights=tie,
                             init_scale=0.5, vocab_size=7, rng=np.random.default_rng(seed), dtype=dtype,
                             sparse_embedding=sparse)


@pytest.mark.parametrize("tie, dropout, layers, sparse",
                         [(True, 0.0, 2, False), (False, 0.3, 2, False), (True, 0.3, 1, False), (False, 0.0, 1, True)],
                         ids=["tied", "untied_dropout", "tied_dropout_1layer", "untied_sparse_embedding"])
def test_whole_model_gradient_over_a_carried_window(tie, dropout, layers, sparse):
    """Every parameter of lstm_lm, on a window that continues from a previous one."""
    model = tiny_model(tie, dropout, layers, sparse=sparse)
    ids = np.random.default_rng(1).integers(0, 7, (2, 6))
    _, state = model.loss((ids[:, :3], ids[:, 1:4]), None)
    state = [(h.copy(), c.copy()) for h, c in state]
    check(LossOf(model, ids[:, 1:], state), ids[:, :5])


def test_tied_weight_is_one_array_whose_gradient_sums_both_uses():
    model = tiny_model(tie=True)
    assert model.decoder.W is model.embedding.W
    names = list(model.named_params())
    assert "embedding.W" in names and "decoder.W" not in names
    assert model.num_params() == tiny_model(tie=False).num_params() - 7 * 4
    ids = np.random.default_rng(1).integers(0, 7, (2, 5))
    targets = np.random.default_rng(2).integers(0, 7, (2, 5))
    model.zero_grad()
    model.loss((ids, targets))
    model.backward()
    both = model.embedding.W.grad.copy()
    # the two uses one at a time: output use alone, then input use alone
    model.zero_grad()
    model.loss((ids, targets))
    dh = model.decoder.backward(1.0 / targets.size)
    output_use = model.embedding.W.grad.copy()
    for lstm, drop in zip(reversed(model.lstms), reversed(model.dropouts[1:])):
        dh = lstm.backward(drop.backward(dh))
    model.embedding.W.grad[...] = 0
    model.embedding.backward(model.dropouts[0].backward(dh))
    input_use = model.embedding.W.grad.copy()
    assert np.abs(output_use).sum() > 0 and np.abs(input_use).sum() > 0
    np.testing.assert_allclose(both, output_use + input_use, rtol=1e-12)


def test_tie_weights_with_mismatched_sizes_is_a_clear_config_error():
    with pytest.raises(ConfigError) as info:
        MODELS.build({"type": "lstm_lm", "embed_dim": 200, "hidden_dim": 650, "tie_weights": True}, "model",
                     vocab_size=10, rng=np.random.default_rng(0), dtype=np.float32)
    message = str(info.value)
    assert "\n" not in message
    assert "embed_dim 200" in message and "hidden_dim 650" in message and "tie_weights" in message


def test_sparse_embedding_with_tied_weights_is_a_clear_config_error():
    with pytest.raises(ConfigError) as info:
        MODELS.build({"type": "lstm_lm", "tie_weights": True, "sparse_embedding": True}, "model",
                     vocab_size=10, rng=np.random.default_rng(0), dtype=np.float32)
    message = str(info.value)
    assert "\n" not in message and "sparse_embedding" in message and "tie_weights: false" in message


@pytest.mark.parametrize("clip", [None, 0.05], ids=["no_clip", "clipped"])
def test_sparse_embedding_trains_exactly_like_a_dense_one_under_sgd(clip):
    """SGD without weight decay moves only rows with a gradient, so visiting just the touched
    rows (zero_grad, norm, clipping, update) must give the very same weights, step by step."""
    from nnctl.optim import SGD, clip_grad_norm

    rng = np.random.default_rng(3)
    windows = [(rng.integers(0, 5, (2, 4)), rng.integers(0, 7, (2, 4))) for _ in range(4)]  # words 5, 6 never read
    trained = []
    for sparse in (False, True):
        model = tiny_model(tie=False, layers=1, sparse=sparse)
        assert model.embedding.W.sparse is sparse
        sgd = SGD(lr=0.5, params=model.named_params())
        state = None
        for batch in windows:
            model.zero_grad()
            _, state = model.loss(batch, state)
            model.backward()
            if clip is not None:
                clip_grad_norm(model.params(), clip)
            sgd.step()
        trained.append({name: p.data.copy() for name, p in model.named_params().items()})
    dense, sparse = trained
    assert dense.keys() == sparse.keys()
    for name in dense:
        np.testing.assert_array_equal(sparse[name], dense[name], err_msg=name)
    # the embedding did move, only in the rows of the words seen
    seen = np.unique(np.concatenate([ids.ravel() for ids, _ in windows]))
    start = tiny_model(tie=False, layers=1).embedding.W.data
    moved = np.flatnonzero(np.abs(sparse["embedding.W"] - start).sum(axis=1) > 0)
    np.testing.assert_array_equal(moved, seen)


@pytest.mark.parametrize("key, value", [("hidden_dim", 0), ("num_layers", 0), ("dropout", 1.0), ("init_scale", 0.0)])
def test_bad_model_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^model\.{key}: "):
        MODELS.build({"type": "lstm_lm", "tie_weights": False, key: value}, "model",
                     vocab_size=10, rng=np.random.default_rng(0), dtype=np.float32)


def test_float32_stays_float32_everywhere():
    model = tiny_model(tie=True, dropout=0.2, dtype=np.float32)
    ids = np.random.default_rng(1).integers(0, 7, (3, 5))
    model.zero_grad()
    out, state = model.loss((ids, ids), None)
    model.backward()
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.params())
    assert all(h.dtype == np.float32 and c.dtype == np.float32 for h, c in state)
    logits, _ = model.logits(ids, state)
    assert logits.dtype == np.float32
    lstm = model.lstms[0]
    y, _ = lstm.forward(np.ones((2, 3, 4), dtype=np.float32))
    assert y.dtype == np.float32 and lstm.backward(np.ones_like(y)).dtype == np.float32


def test_eval_loss_equals_training_loss_without_dropout():
    """The eval path (row sums by reduction) and the training path (row sums from the product) agree."""
    model = tiny_model(dropout=0.0)
    ids = np.random.default_rng(1).integers(0, 7, (2, 6))
    train_out, _ = model.train().loss((ids, ids))
    eval_out, _ = model.eval().loss((ids, ids))
    assert eval_out.count == train_out.count == 12
    assert eval_out.loss_sum == pytest.approx(train_out.loss_sum, rel=1e-12)
