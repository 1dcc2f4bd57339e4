"""Sampling from a language model: determinism, greedy, top-k/top-p support, prompts, and the CLI."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_sentence_corpus
from nnctl.cli import app
from nnctl.data.text import EOS, UNK, Vocab
from nnctl.errors import VocabError
from nnctl.generate import encode_prompt, filter_logits, generate, next_words, to_text
from nnctl.models.lstm_lm import LSTMLanguageModel

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", EOS, UNK]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def vocab():
    return Vocab(WORDS)


@pytest.fixture
def model(vocab):
    return LSTMLanguageModel(embed_dim=8, hidden_dim=8, num_layers=2, dropout=0.3, tie_weights=True,
                             init_scale=1.0, vocab_size=len(vocab), rng=np.random.default_rng(0))


def test_same_seed_same_text_and_other_seed_other_text(model, vocab):
    kwargs = dict(length=30, temperature=1.0, num_samples=3)
    first = generate(model, vocab, "the cat", seed=1, **kwargs)
    again = generate(model, vocab, "the cat", seed=1, **kwargs)
    other = generate(model, vocab, "the cat", seed=2, **kwargs)
    assert first.continuations == again.continuations
    assert first.continuations != other.continuations
    assert [len(c) for c in first.continuations] == [30, 30, 30]


def test_sampling_makes_each_layers_wh_copy_once_and_gives_the_same_words(model, vocab, monkeypatch,
                                                                           step_products_made):
    """generate() runs inside weights_fixed: one per-step copy of Wh per LSTM layer for the
    whole sample, not one per word, and the words are those sampled without keeping them."""
    from nnctl.layers.base import Layer

    kept = generate(model, vocab, "the cat", length=20, seed=3, num_samples=2)
    assert len(step_products_made) == 2  # two layers, 21 forwards
    monkeypatch.setattr(Layer, "weights_fixed", lambda self: contextlib.nullcontext(self))
    assert generate(model, vocab, "the cat", length=20, seed=3, num_samples=2).continuations == kept.continuations
    assert len(step_products_made) == 2 + 2 * 21


def test_greedy_is_deterministic_and_picks_the_argmax(model, vocab):
    a = generate(model, vocab, "the dog", length=10, temperature=0, seed=1, num_samples=2)
    b = generate(model, vocab, "the dog", length=10, temperature=0, seed=99)
    assert a.continuations[0] == a.continuations[1] == b.continuations[0]
    # the first greedy word is the argmax of the logits after the prompt, with dropout off
    model.eval()
    logits, _ = model.logits(vocab.encode(["the", "dog"])[None, :])
    assert a.continuations[0][0] == vocab.words[int(logits[0, -1].argmax())]


def test_top_k_keeps_only_the_k_likeliest():
    logits = np.log(np.array([[0.05, 0.4, 0.1, 0.3, 0.15], [0.5, 0.1, 0.1, 0.2, 0.1]]))
    kept = np.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, False, True, False], [True, False, False, True, False]]
    rng = np.random.default_rng(0)
    draws = np.concatenate([next_words(logits, rng, 1.0, top_k=2) for _ in range(300)])
    assert set(draws[0::2].tolist()) == {1, 3} and set(draws[1::2].tolist()) == {0, 3}


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([[0.05, 0.4, 0.1, 0.3, 0.15]]))
    assert np.isfinite(filter_logits(logits, top_p=0.65)).tolist() == [[False, True, False, True, False]]
    assert np.isfinite(filter_logits(logits, top_p=0.71)).tolist() == [[False, True, False, True, True]]
    assert np.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1  # the likeliest word always stays
    rng = np.random.default_rng(0)
    draws = {int(next_words(logits, rng, 1.0, top_p=0.65)[0]) for _ in range(300)}
    assert draws == {1, 3}


def test_sampling_follows_the_distribution():
    probs = np.array([[0.1, 0.6, 0.3]])
    rng = np.random.default_rng(0)
    draws = np.array([next_words(np.log(probs), rng, 1.0)[0] for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, probs[0], atol=0.03)


def test_unknown_prompt_words_become_unk_and_are_reported(vocab):
    ids, unknown = encode_prompt(vocab, "the zebra sat on xylophones")
    assert vocab.decode(ids) == ["the", UNK, "sat", "on", UNK]
    assert unknown == ["zebra", "xylophones"]


def test_a_prompt_of_only_unknown_words_is_an_error(model, vocab):
    with pytest.raises(VocabError) as info:
        generate(model, vocab, "zebra xylophone", length=5)
    assert "\n" not in str(info.value) and "vocabulary" in str(info.value)


def test_empty_prompt_starts_a_sentence(model, vocab):
    out = generate(model, vocab, "", length=5, seed=0)
    assert out.prompt == [] and len(out.continuations[0]) == 5


def test_eos_prints_as_a_line_break():
    assert to_text(["the", "cat", EOS, "a", "dog", EOS]) == "the cat\na dog\n"


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 1.5}, {"num_samples": 0},
                                    {"length": -1}])
def test_bad_options_are_rejected(model, vocab, kwargs):
    with pytest.raises(ValueError):
        generate(model, vocab, "the", **kwargs)


# -- end to end through the CLI ----------------------------------------------------------------

def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Train configs/tiny_lstm.yaml for its 2 epochs on a generated repetitive corpus."""
    root = write_sentence_corpus(tmp_path_factory.mktemp("tiny_lm"), {"train": 300, "valid": 40, "test": 40})
    result = invoke("train", CONFIGS / "tiny_lstm.yaml", "--data-dir", root, "--runs-dir", root / "runs", "-q")
    assert result.exit_code == 0, result.output
    (run,) = (root / "runs" / "tiny_lstm").iterdir()
    return run


def test_cli_generates_reproducible_samples(tiny_run):
    args = ("generate", tiny_run, "--prompt", "the stock", "--length", "12", "--temperature", "0.8",
            "--top-k", "5", "--top-p", "0.95", "--seed", "1", "--num-samples", "3")
    first, again = invoke(*args), invoke(*args)
    assert first.exit_code == 0, first.output
    assert first.output == again.output
    assert first.output.count("--- sample") == 3
    lines = first.output.splitlines()
    assert all(lines[i + 1].startswith("the stock") for i, line in enumerate(lines) if line.startswith("--- sample"))
    assert (tiny_run / "vocab.txt").is_file()


def test_cli_warns_about_unknown_prompt_words(tiny_run):
    result = invoke("generate", tiny_run, "--prompt", "the zebra", "--length", "3", "--seed", "1")
    assert result.exit_code == 0
    assert "warning" in result.output and "zebra" in result.output


def test_cli_all_unknown_prompt_is_one_line_and_non_zero(tiny_run):
    result = invoke("generate", tiny_run, "--prompt", "zebra xylophone")
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0 and "error" in result.output


def test_cli_generate_on_a_model_that_is_not_a_language_model(tmp_path, toy_config):
    result = invoke("train", toy_config, "--runs-dir", tmp_path / "runs", "-q")
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").glob("*/*")
    result = invoke("generate", run, "--prompt", "the")
    assert result.exit_code != 0
    assert "not a language model" in result.output and result.output.strip().count("\n") == 0


def test_cli_eval_scores_the_language_model(tiny_run):
    result = invoke("eval", tiny_run, "--split", "test", "--data-dir", tiny_run.parents[2])
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    (test,) = [r for r in records if r["split"] == "test"]
    assert f"{test['perplexity']:.2f}" in result.output


def test_checkpoint_file_works_as_well_as_the_run(tiny_run, tmp_path):
    ckpt = tmp_path / "model.npz"
    shutil.copy(tiny_run / "checkpoints" / "best.npz", ckpt)
    result = invoke("generate", ckpt, "--prompt", "the", "--length", "4", "--temperature", "0")
    assert result.exit_code == 0 and result.output.startswith("the ")
