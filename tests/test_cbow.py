"""CBOW pieces: gradient checks of its layers, the noise sampler, context windows, sparse
row gradients, the linear schedule, ppmi_svd's math, and both models on a tiny corpus."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl import gradcheck
from nnctl.backend import scatter_add
from nnctl.data.sampling import UnigramSampler, keep_probabilities
from nnctl.data.text import EOS, Vocab
from nnctl.data.windows import TextWindows
from nnctl.errors import ConfigError, DataError
from nnctl.layers.negative_sampling import EmbeddingDot, EmbeddingMean, NegativeSamplingLoss
from nnctl.models.cbow import CBOW
from nnctl.models.ppmi_svd import PPMISVD, positive_pmi, randomized_svd
from nnctl.schedules import SCHEDULES

V, D = 9, 4


def _random_table(layer_param, rng):
    # W_out starts at zero, where every score is 0; a random table exercises the math
    layer_param.data[...] = rng.standard_normal(layer_param.data.shape)


def make_mean(rng):
    layer = EmbeddingMean(V, D, rng=rng, dtype=np.float64)
    mask = rng.random((5, 4)) < 0.6
    mask[:, 0] = True
    mask[3, 1:] = False  # an example with a single context word
    return layer, (rng.integers(0, V, size=(5, 4)), mask)


def make_dot(rng):
    layer = EmbeddingDot(V, D, dtype=np.float64)
    _random_table(layer.W, rng)
    ids = rng.integers(0, V, size=(5, 3))
    ids[0, :] = 2  # a row used several times in one example: its gradients must add up
    return layer, (rng.standard_normal((5, D)), ids)


def make_loss(rng):
    sampler = UnigramSampler(np.arange(1, V + 1), power=0.75)
    layer = NegativeSamplingLoss(V, D, 3, sampler, rng=np.random.default_rng(5), dtype=np.float64)
    _random_table(layer.dot.W, rng)
    return layer, (rng.standard_normal((6, D)), rng.integers(0, V, size=6))


LAYER_CASES = [("embedding_mean", make_mean), ("embedding_dot", make_dot), ("negative_sampling_loss", make_loss)]


@pytest.mark.parametrize("name, make", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_backward_matches_central_differences(name, make):
    layer, inputs = make(np.random.default_rng(0))
    report = gradcheck.check_layer(layer, *inputs, eps=1e-6)
    assert report.results, "nothing was checked"
    assert report.max_rel_error < 1e-6, report.worst()


def test_whole_cbow_model_gradient_matches_central_differences():
    small, extras, batch = CBOW.gradcheck_case({}, np.random.default_rng(3))
    model = CBOW(**small, **extras, rng=np.random.default_rng(4), dtype=np.float64)
    assert np.abs(model.output.dot.W.data).min() > 0  # output_init: W_in's gradient is not trivially zero
    report = gradcheck.check_model(model, batch)
    assert {r.name for r in report.results} == {"context.W", "output.dot.W"}
    assert report.max_rel_error < 1e-6, report.worst()


@pytest.mark.parametrize("name, make", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layers_keep_float32(name, make):
    layer, inputs = make(np.random.default_rng(0))
    for p in layer.params():
        p.data, p.grad = p.data.astype(np.float32), p.grad.astype(np.float32)
    inputs = tuple(x.astype(np.float32) if x.dtype.kind == "f" else x for x in inputs)
    out = layer.forward(*inputs)
    assert np.asarray(out).dtype == np.float32
    dout = np.ones_like(out) if np.ndim(out) else 1.0
    dx = layer.backward(dout)
    if dx is not None:
        assert dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.params())


def test_backward_touches_only_the_rows_of_the_batch():
    rng = np.random.default_rng(1)
    layer = EmbeddingDot(50, D)
    _random_table(layer.W, rng)
    ids = np.array([[3, 7], [7, 9]])
    layer.forward(rng.standard_normal((2, D)).astype(np.float32), ids)
    layer.backward(np.ones((2, 2), dtype=np.float32))
    assert layer.W.touched_rows.tolist() == [3, 7, 9]
    untouched = np.setdiff1d(np.arange(50), [3, 7, 9])
    assert not layer.W.grad[untouched].any()
    layer.zero_grad()
    assert not layer.W.grad.any() and len(layer.W.touched_rows) == 0


@pytest.mark.parametrize("index", [[4, 1, 3], [4, 1, 4, 4, 0, 1]], ids=["distinct", "repeated"])
def test_scatter_add_matches_np_add_at(index):
    rng = np.random.default_rng(2)
    dst = rng.standard_normal((6, 3)).astype(np.float32)
    src = rng.standard_normal((len(index), 3)).astype(np.float32)
    expected = dst.copy()
    np.add.at(expected, index, src)
    rows = scatter_add(dst, np.array(index), src)
    np.testing.assert_allclose(dst, expected, rtol=1e-6)
    assert rows.tolist() == sorted(set(index))


# -- the noise sampler ---------------------------------------------------------------------
@pytest.mark.parametrize("table_size", [64, 1 << 21], ids=["coarse_table", "default_table"])
def test_sampler_draws_unigram_to_the_power_075(table_size):
    counts = np.array([50, 0, 10, 3, 1, 200, 7], dtype=float)
    sampler = UnigramSampler(counts, power=0.75, table_size=table_size)
    draws = sampler.sample(np.random.default_rng(0), (400_000,))
    frequency = np.bincount(draws, minlength=len(counts)) / draws.size
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    assert frequency[1] == 0  # a word never seen is never noise
    np.testing.assert_allclose(frequency, expected, atol=3e-3)  # exact even with a coarse table


def test_sampler_rejects_counts_without_mass():
    with pytest.raises(ValueError, match="at least one"):
        UnigramSampler(np.zeros(4))


def test_keep_probabilities_thin_only_frequent_words():
    counts = np.array([1000, 10, 1, 0])
    keep = keep_probabilities(counts, 1e-2)
    assert keep[0] < 0.5 and keep[1] == keep[2] == keep[3] == 1.0
    assert np.all(keep_probabilities(counts, 0.0) == 1.0)


# -- context windows -----------------------------------------------------------------------
def write_corpus(folder, train_lines, valid_lines=("a b c",), test_lines=("a b c",)):
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (("train", train_lines), ("valid", valid_lines), ("test", test_lines)):
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return {split: str(folder / f"{split}.txt") for split in ("train", "valid", "test")}


def windows(tmp_path, lines, **kwargs):
    paths = write_corpus(tmp_path / "corpus", lines)
    return TextWindows(**paths, **kwargs, data_dir=None)


def test_windows_stay_inside_sentences_and_never_show_eos(tmp_path):
    data = windows(tmp_path, ["a b c d e", "f g", "h"], window=2, subsample=0.0, batch_size=100)
    [batch] = list(data.batches("train"))
    words = data.vocab.words
    examples = {words[t]: sorted(words[c] for c, m in zip(ctx, mask) if m)
                for ctx, mask, t in zip(batch.context, batch.mask, batch.target)}
    assert examples == {"a": ["b", "c"], "b": ["a", "c", "d"], "c": ["a", "b", "d", "e"],
                        "d": ["b", "c", "e"], "e": ["c", "d"], "f": ["g"], "g": ["f"]}  # "h" has no context
    assert EOS not in examples
    assert data.num_batches("train") == 1


def test_training_batches_shuffle_subsample_and_shrink_windows(tmp_path):
    lines = [" ".join(["the"] * 6 + ["w%d" % i, "x%d" % i]) for i in range(200)]
    data = windows(tmp_path, lines, window=3, subsample=1e-3, batch_size=64)
    batches = list(data.batches("train", rng=np.random.default_rng(0)))
    targets = np.concatenate([b.target for b in batches])
    the = data.vocab.index["the"]
    assert 0 < np.mean(targets == the) < 6 / 8 * 0.5  # "the" is thinned out
    reach = np.array([np.abs(data.offsets[m]).max() for b in batches for m in b.mask])
    assert reach.min() == 1 and reach.max() == 3  # dynamic window: reach drawn from 1..3
    assert all(m.any() for b in batches for m in b.mask)


def test_window_larger_than_the_sentences_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="window 5 is larger than the sentences allow.*use window <= 3"):
        windows(tmp_path, ["a b c d", "e f"], window=5)


def test_cooccurrence_counts_pairs_within_the_window(tmp_path):
    data = windows(tmp_path, ["a b c", "a c"], window=2, dynamic_window=False)
    counts = data.cooccurrence("train").toarray()
    ix = data.vocab.index
    assert counts[ix["a"], ix["c"]] == 2 and counts[ix["c"], ix["a"]] == 2  # once per line
    assert counts[ix["a"], ix["b"]] == 1 and counts[ix["b"], ix["c"]] == 1
    assert counts[ix[EOS]].sum() == 0
    dynamic = windows(tmp_path / "w", ["a b c"], window=2, dynamic_window=True)
    weighted, ix = dynamic.cooccurrence().toarray(), dynamic.vocab.index
    assert weighted[ix["a"], ix["b"]] == 1
    assert weighted[ix["a"], ix["c"]] == pytest.approx(0.5)  # reach 2 of U{1, 2} includes distance 2 half the time


# -- ppmi_svd math -------------------------------------------------------------------------
def test_positive_pmi_matches_the_dense_formula():
    counts = np.array([[0, 4, 1], [4, 0, 2], [1, 2, 6]], dtype=float)
    alpha = 0.75
    context = counts.sum(0) ** alpha
    with np.errstate(divide="ignore"):
        dense = np.log(counts * context.sum() / (counts.sum(1)[:, None] * context[None, :]))
    expected = np.where(counts > 0, np.maximum(dense, 0), 0)
    np.testing.assert_allclose(positive_pmi(counts, alpha).toarray(), expected, rtol=1e-12)


def test_randomized_svd_finds_the_top_singular_values():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((60, 8)) @ np.diag([9, 7, 5, 3, 1, .5, .2, .1]) @ rng.standard_normal((8, 50))
    U, s, Vt = randomized_svd(matrix, 3, rng=rng, oversample=5, power_iterations=3)
    np.testing.assert_allclose(s, np.linalg.svd(matrix, compute_uv=False)[:3], rtol=1e-6)
    np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-10)


# -- models on a tiny corpus ---------------------------------------------------------------
ANIMALS, FOODS, TOOLS = ["cat", "dog", "cow"], ["grass", "meat", "fish"], ["hammer", "saw", "drill"]


def tiny_language(n: int, seed: int) -> list[str]:
    """Animals eat food; people use tools: words of a kind share their contexts."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        if rng.random() < 0.5:
            lines.append(f"the {rng.choice(ANIMALS)} eats some {rng.choice(FOODS)} today")
        else:
            lines.append(f"a man uses the {rng.choice(TOOLS)} at work")
    return lines


def cosine(vectors, vocab, a, b):
    x, y = vectors[vocab.index[a]], vectors[vocab.index[b]]
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_cbow_learns_on_a_tiny_corpus(tmp_path):
    from nnctl.optim import OPTIMIZERS

    data = windows(tmp_path, tiny_language(300, 0), window=2, subsample=0.0, batch_size=32)
    model = CBOW(16, 3, vocab_size=len(data.vocab), vocab=data.vocab, rng=np.random.default_rng(0))
    optimizer = OPTIMIZERS.build({"type": "adam", "lr": 0.02}, "optimizer", params=model.named_params())

    def mean_loss(split):
        outs = [model.loss(b)[0] for b in data.batches(split)]
        return sum(o.loss_sum for o in outs) / sum(o.count for o in outs)

    before = mean_loss("valid")
    for epoch in range(4):
        for batch in data.batches("train", rng=np.random.default_rng(epoch)):
            model.zero_grad()
            model.loss(batch)
            model.backward()
            optimizer.step()
    after = mean_loss("train")
    assert after < 0.6 * before, (before, after)  # 4 log 2 ≈ 2.77 at the start (W_out = 0)
    vectors, vocab = model.word_vectors(), data.vocab
    assert cosine(vectors, vocab, "cat", "dog") > cosine(vectors, vocab, "cat", "hammer")


def test_cbow_rejects_a_vocabulary_without_counts():
    with pytest.raises(ValueError, match="no word counts"):
        CBOW(vocab_size=3, vocab=Vocab(["a", "b", "c"]), rng=np.random.default_rng(0))


def test_ppmi_svd_groups_words_that_share_contexts(tmp_path):
    data = windows(tmp_path, tiny_language(300, 1), window=2)
    model = PPMISVD(vector_size=4, vocab_size=len(data.vocab), rng=np.random.default_rng(0))
    model.fit(data)
    vectors, vocab = model.word_vectors(), data.vocab
    assert cosine(vectors, vocab, "cat", "dog") > cosine(vectors, vocab, "cat", "saw") + 0.3
    assert cosine(vectors, vocab, "hammer", "drill") > cosine(vectors, vocab, "hammer", "fish") + 0.3
    out, _ = model.loss(next(iter(data.batches("valid"))))
    assert 0 <= out.loss_sum / out.count <= 2


def test_linear_schedule_decays_to_the_floor():
    schedule = SCHEDULES.build({"type": "linear", "min_ratio": 0.01}, "schedule", base_lr=1.0,
                               steps_per_epoch=10, epochs=2)
    assert schedule.lr(0, 0) == 1.0
    assert schedule.lr(1, 10) == pytest.approx(0.5)
    assert schedule.lr(1, 19) == pytest.approx(0.05)
    assert schedule.lr(2, 25) == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="min_ratio"):
        SCHEDULES.build({"type": "linear", "min_ratio": 2}, "schedule", base_lr=1.0, steps_per_epoch=1, epochs=1)


@pytest.mark.parametrize("num_rows", [20, 10**6], ids=["presence_table", "sorting"])
def test_distinct_rows_agrees_with_np_unique(num_rows):
    from nnctl.backend import distinct_rows

    index = np.array([7, 3, 7, 19, 0, 3, 3])
    rows, inverse = distinct_rows(index, num_rows)
    expected_rows, expected_inverse = np.unique(index, return_inverse=True)
    assert rows.tolist() == expected_rows.tolist() and inverse.tolist() == expected_inverse.tolist()
