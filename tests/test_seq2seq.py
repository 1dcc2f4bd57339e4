"""Sequence to sequence: attention layers, the seq2seq model and its switches, the pair data
sets, training, `eval` and `generate` on a seq2seq run, and the bad inputs each named in one line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.data.seq2seq import (EOS_ID, PAD_ID, START_ID, Addition, Dates, SeqPairs, addition_pairs,
                                date_pairs, decode_chars)
from nnctl.errors import DataError, VocabError
from nnctl.gradcheck import check_layer, check_model
from nnctl.layers.attention import AttentionWeights, DotAttention, WeightedSum
from nnctl.layers.base import Layer
from nnctl.layers.gru import GRU
from nnctl.layers.recurrent import LSTM
from nnctl.layers.rnn import RNN
from nnctl.models.seq2seq import Seq2Seq
from nnctl.optim import OPTIMIZERS, clip_grad_norm
from nnctl.trainer import score

CONFIGS = Path(__file__).parent.parent / "configs"
runner = CliRunner(env={"COLUMNS": "200"})
MASK = np.array([[True, True, False, False], [True, True, True, True]])
VARIANTS = [{}, {"reverse_input": True}, {"reverse_input": True, "peeky": True}, {"attention": True},
            {"reverse_input": True, "peeky": True, "attention": True}]


# -- layers ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer, make_inputs", [
    (AttentionWeights, lambda r: (r.standard_normal((2, 4, 3)), r.standard_normal((2, 3, 3)), MASK)),
    (WeightedSum, lambda r: (r.standard_normal((2, 4, 3)), r.random((2, 3, 4)))),
    (DotAttention, lambda r: (r.standard_normal((2, 4, 3)), r.standard_normal((2, 3, 3)), MASK)),
], ids=["weights", "weighted_sum", "attention"])
def test_attention_layers_pass_a_float64_gradient_check_inputs_included(layer, make_inputs):
    report = check_layer(layer(), *make_inputs(np.random.default_rng(0)))
    assert {r.name for r in report.results} >= {"input0", "input1"}
    assert report.max_rel_error < 1e-6, report.worst()


def test_attention_equals_a_plain_per_step_loop_and_ignores_padding():
    """The batched layer against the book's way (one decoder step, one example at a time)."""
    rng = np.random.default_rng(1)
    hs, hd = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 3, 3))
    layer = DotAttention()
    context = layer.forward(hs, hd, MASK)
    for n in range(2):
        for t in range(3):
            keep = MASK[n]
            scores = hs[n][keep] @ hd[n, t]
            a = np.exp(scores - scores.max())
            a /= a.sum()
            np.testing.assert_allclose(layer.weights[n, t][keep], a, rtol=1e-12)
            np.testing.assert_allclose(context[n, t], a @ hs[n][keep], rtol=1e-12)
    assert np.all(layer.weights[0][:, 2:] == 0)
    dhs, _ = layer.backward(rng.standard_normal(context.shape))
    assert np.all(dhs[0, 2:] == 0)  # padding gets no gradient


class FinalStateOut(Layer):
    """A cell's outputs and final state side by side, so a gradient check covers backward(dy, dstate)."""

    def __init__(self, cell):
        self.cell = cell

    def forward(self, x):
        y, state = self.cell.forward(x)
        parts = state if isinstance(state, tuple) else (state,)
        self.k = len(parts)
        return np.concatenate([y.reshape(len(x), -1), *parts], axis=1)

    def backward(self, dout):
        N, H = dout.shape[0], self.cell.hidden_dim
        dy, dstate = dout[:, : -self.k * H].reshape(N, -1, H), dout[:, -self.k * H:]
        parts = tuple(dstate[:, i * H: (i + 1) * H] for i in range(self.k))
        return self.cell.backward(dy, parts if self.k > 1 else parts[0])


@pytest.mark.parametrize("cell", [LSTM, GRU, RNN], ids=["lstm", "gru", "rnn"])
def test_recurrent_backward_takes_the_gradient_of_the_returned_state(cell):
    layer = FinalStateOut(cell(3, 4, rng=np.random.default_rng(0), dtype=np.float64))
    report = check_layer(layer, np.random.default_rng(1).standard_normal((2, 5, 3)))
    assert report.max_rel_error < 1e-6, report.worst()


# -- the model ---------------------------------------------------------------------------
CASES = [("lstm", v) for v in VARIANTS] + [("lstm", {"attention": True, "peeky": True, "dropout": 0.3})] + [(c, v) for c in ("gru", "rnn") for v in (VARIANTS[0], VARIANTS[-1])]


@pytest.mark.parametrize("cell, variant", CASES, ids=[f"{c}-{'-'.join(v) or 'plain'}" for c, v in CASES])
def test_whole_model_gradient_check_for_every_switch_and_cell(cell, variant):
    small, extras, batch = Seq2Seq.gradcheck_case({"cell": cell, **variant}, np.random.default_rng(1))
    model = Seq2Seq(**small, **extras, rng=np.random.default_rng(0), dtype=np.float64)
    report = check_model(model, batch, max_elements=30)
    assert report.max_rel_error < 1e-6, report.worst()


def tiny_model(**options):
    return Seq2Seq(embed_dim=4, hidden_dim=8, **options, vocab_size=9, source_length=5, target_length=4,
                   rng=np.random.default_rng(0), dtype=np.float64)


@pytest.mark.parametrize("variant", VARIANTS[1:], ids=["reversed", "peeky", "attention", "all"])
def test_greedy_decoding_of_a_batch_equals_decoding_each_example_alone(variant):
    model = tiny_model(**variant)
    for p in model.params():
        p.data += np.random.default_rng(2).standard_normal(p.shape)  # decisive, varied outputs
    source = np.random.default_rng(3).integers(EOS_ID + 1, 9, size=(6, 5))
    source[0, 2:] = PAD_ID
    source[3, 4:] = PAD_ID
    ids, weights = model.translate(source)
    for n in range(len(source)):
        alone, alone_weights = model.translate(source[n: n + 1])
        np.testing.assert_array_equal(ids[n], alone[0])
        if weights is not None:
            np.testing.assert_allclose(weights[n], alone_weights[0], atol=1e-12)
    if weights is not None:  # in the source's own order: padding is at the end, reversed input or not
        assert np.all(weights[0][:, 2:] == 0) and np.allclose(weights.sum(-1)[ids != PAD_ID], 1)


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[-1]], ids=["plain", "all"])
def test_greedy_decoding_agrees_with_teacher_forcing_on_its_own_answer(variant):
    """The step-by-step decoder and the all-steps-at-once one are the same function."""
    model = tiny_model(**variant)
    for p in model.params():
        p.data += np.random.default_rng(2).standard_normal(p.shape)
    source = np.random.default_rng(3).integers(EOS_ID + 1, 9, size=(6, 5))
    source[0, 2:] = PAD_ID
    model.eval()
    hs, state, mask = model.encode(source)
    ids, _ = model.greedy(hs, state, mask, 4)
    inputs = np.concatenate([np.full((6, 1), START_ID), ids[:, :-1]], axis=1)
    feats, _ = model.decode(hs, mask, state[0], inputs, state)
    forced = model.output(feats).argmax(-1)
    decided = np.cumsum(ids == EOS_ID, axis=1) - (ids == EOS_ID) == 0  # up to and including <eos>
    np.testing.assert_array_equal(forced[decided], ids[decided])


def test_exact_match_counts_whole_answers_and_token_accuracy_characters():
    model = tiny_model()
    source = np.full((2, 5), EOS_ID + 1)
    target = np.array([[START_ID, 3, 4, EOS_ID, PAD_ID], [START_ID, 5, EOS_ID, PAD_ID, PAD_ID]])
    model.eval()
    hs, state, mask = model.encode(source)
    guess, _ = model.greedy(hs, state, mask, 4)
    out, _ = model.loss((source, target))
    labels = target[:, 1:]
    scored = labels != PAD_ID
    assert out.count == int(scored.sum()) == 5 and out.examples == 2
    assert out.correct_tokens == int(((guess == labels) & scored).sum())
    assert out.correct == int((((guess == labels) | ~scored).all(axis=1)).sum())
    summary = score(model, [(source, target)]).summary("accuracy")
    assert summary["accuracy"] == out.correct / 2 and summary["token_accuracy"] == out.correct_tokens / 5


def test_reversed_peeky_seq2seq_learns_a_few_hundred_additions():
    data = Addition(num_examples=300, valid=20, test=20, batch_size=32)
    model = Seq2Seq(16, 48, reverse_input=True, peeky=True, **data.extras(), rng=np.random.default_rng(0))
    optimizer = OPTIMIZERS.build({"type": "adam", "lr": 0.02}, "optimizer", params=model.named_params())
    before = score(model, data.batches("train", batch_size=500)).summary("accuracy")
    for epoch in range(25):
        for batch in data.batches("train", rng=np.random.default_rng(epoch)):
            model.zero_grad()
            model.loss(batch)
            model.backward()
            clip_grad_norm(model.params(), 5.0)
            optimizer.step()
    after = score(model, data.batches("train", batch_size=500)).summary("accuracy")
    assert after["loss"] < 0.6 * before["loss"]
    assert after["accuracy"] > 0.15 > before["accuracy"]


# -- data --------------------------------------------------------------------------------
def test_addition_is_distinct_right_seeded_and_mixes_operand_sizes_like_the_book():
    pairs = addition_pairs(50_000, np.random.default_rng(1))
    assert len(set(pairs)) == 50_000 and pairs == addition_pairs(50_000, np.random.default_rng(1))
    assert all(int(a) + int(b) == int(t) for (s, t) in pairs[:2000] for a, b in [s.split("+")])
    share = np.bincount([len(s.split("+")[0]) for s, _ in pairs], minlength=4)[1:] / 50_000
    np.testing.assert_allclose(share, [0.10, 0.32, 0.58], atol=0.025)


def test_dates_are_many_formats_of_1970_to_2017_with_iso_targets():
    pairs = date_pairs(3000, np.random.default_rng(1))
    sources, targets = zip(*pairs)
    assert len(set(sources)) == 3000
    assert all(re.fullmatch(r"(19[789]\d|20(0\d|1[0-7]))-\d\d-\d\d", t) for t in targets)
    assert any(s.isupper() for s in sources) and any(s.islower() for s in sources)
    assert any("/" in s for s in sources) and any("," in s for s in sources)
    for source, target in pairs:
        year, month, day = target.split("-")
        if "/" in source:
            assert source == f"{int(month)}/{int(day)}/{year[2:]}"
        else:
            assert year in source and str(int(day)) in source


def test_batches_are_padded_with_start_and_eos_and_splits_are_disjoint():
    data = Addition(num_examples=500, valid=50, test=60, batch_size=64)
    assert data.extras() == {"vocab_size": len(data.vocab), "source_length": 7, "target_length": 5}
    source, target = next(data.batches("train"))
    assert source.shape == (64, 7) and target.shape == (64, 6) and np.all(target[:, 0] == START_ID)
    for s, t in zip(source, target):
        a, b = decode_chars(data.vocab, s).split("+")
        answer = decode_chars(data.vocab, t[1:])
        assert int(a) + int(b) == int(answer) and t[1 + len(answer)] == EOS_ID
    splits = {k: {s for s, _ in v} for k, v in data.pairs.items()}
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [390, 50, 60]
    assert not (splits["train"] & splits["test"]) and not (splits["valid"] & splits["test"])
    assert data.num_batches("train") == 7 and Dates(num_examples=200, valid=10, test=10).source_length <= 29


def test_seq_pairs_reads_the_books_padded_format(tmp_path):
    path = tmp_path / "addition.txt"
    path.write_text("".join(f"{a}+{b:<5}_{a + b:<4}\n" for a in range(20) for b in range(10)))
    data = SeqPairs(str(path), valid=10, test=10, batch_size=16)
    assert data.pairs["train"][0][0] == data.pairs["train"][0][0].strip() and data.source_length == 4
    assert sum(len(v) for v in data.pairs.values()) == 200


@pytest.mark.parametrize("text, options, message", [
    ("1+1_2\n2+2 4\n", {}, r"line 2 has no separator '_'"),
    ("", {}, r"the pairs file is empty"),
    ("1+1_\n", {}, r"line 1 has an empty target"),
    ("1+1_2\n2+2_4\n3+3_6\n", {"valid": 0}, r"valid and test must each hold at least one pair"),
    ("1+1_2\n2+2_4\n", {}, r"leave nothing to train on"),
])
def test_bad_pairs_files_are_one_data_error(tmp_path, text, options, message):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        SeqPairs(str(path), **{"valid": 1, "test": 1, **options})


def test_characters_outside_a_given_vocabulary_are_one_vocab_error(tmp_path):
    vocab = Addition(num_examples=200, valid=10, test=10).vocab
    path = tmp_path / "pairs.txt"
    path.write_text("".join(f"{i}*2_{2 * i}\n" for i in range(30)))
    with pytest.raises(VocabError, match=r"characters not in the model's vocabulary: '\*'"):
        SeqPairs(str(path), valid=2, test=2, vocab=vocab)


# -- commands ----------------------------------------------------------------------------
def tiny_run(tmp_path_factory, name, **model):
    folder = tmp_path_factory.mktemp(name)
    cfg = yaml.safe_load((CONFIGS / "seq2seq_addition.yaml").read_text())
    cfg["data"].update(num_examples=300, valid=30, test=30, batch_size=32)
    cfg["model"].update(hidden_dim=16, reverse_input=True, **model)
    cfg["train"].update(epochs=1, eval_batch_size=100)
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(folder / "runs")])
    assert result.exit_code == 0, result.output
    return next((folder / "runs" / "seq2seq_addition").iterdir())


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "attention", attention=True)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "plain")


def test_eval_reports_exact_match_and_character_accuracy(attention_run):
    result = runner.invoke(app, ["eval", str(attention_run), "--split", "valid"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "token_accuracy" in result.output and "characters" in result.output
    assert "exact match" in result.output  # the table says what "accuracy" counts for this model


def test_generate_answers_a_prompt_and_shows_where_it_looked(attention_run, tmp_path):
    result = runner.invoke(app, ["generate", str(attention_run), "--prompt", "16+75"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"\d*\n", result.output)
    image = tmp_path / "attn.png"
    result = runner.invoke(app, ["generate", str(attention_run), "--prompt", "16+75", "--show-attention",
                                 "-o", str(image)])
    assert result.exit_code == 0, result.output
    assert "attention" in result.output and "+" in result.output
    pytest.importorskip("matplotlib")
    assert image.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message, code", [
    (["--prompt", "16*75"], r"characters not in the model's vocabulary: '\*'", 5),
    (["--prompt", "123+4567"], r"8 characters, longer than the 7 the model was trained on", 2),
    (["--prompt", ""], r"give the source text to answer", 2),
])
def test_bad_prompts_are_one_line(attention_run, args, message, code):
    result = runner.invoke(app, ["generate", str(attention_run), *args])
    assert result.exit_code == code and len(result.output.strip().splitlines()) == 1, result.output
    assert re.search(message, result.output) and "Traceback" not in result.output


def test_show_attention_without_attention_is_one_line(plain_run):
    result = runner.invoke(app, ["generate", str(plain_run), "--prompt", "1+2", "--show-attention"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "this model has no attention" in result.output
    result = runner.invoke(app, ["generate", str(plain_run), "--prompt", "1+2"])
    assert result.exit_code == 0 and re.fullmatch(r"\d*\n", result.output), result.output


def test_an_empty_split_stops_training_in_one_line(tmp_path):
    config = tmp_path / "empty.yaml"
    cfg = yaml.safe_load((CONFIGS / "seq2seq_addition.yaml").read_text())
    cfg["data"].update(num_examples=100, test=0)
    config.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 3 and len(result.output.strip().splitlines()) == 1, result.output
    assert "at least one pair" in result.output and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("config, sets", [
    ("seq2seq_addition.yaml", ["model.reverse_input=true"]),
    ("seq2seq_addition.yaml", ["model.reverse_input=true", "model.peeky=true"]),
    ("seq2seq_addition.yaml", ["model.attention=true", "model.cell=gru"]),
], ids=["reversed", "peeky", "attention_gru"])
def test_gradcheck_command_passes_for_each_documented_variant(config, sets):
    args = [a for s in sets for a in ("--set", s)]
    result = runner.invoke(app, ["gradcheck", str(CONFIGS / config), *args, "--max-elements", "30"])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output


def test_several_processes_are_refused_in_one_line():
    from nnctl.distributed import check_shardable
    from nnctl.errors import ConfigError

    class TwoRanks:
        size = 2

    data = Addition(num_examples=100, valid=10, test=10, batch_size=16)
    with pytest.raises(ConfigError, match="trains in one process only"):
        check_shardable(TwoRanks(), data, tiny_model(), "seq2seq")
