"""Word-vector queries, evaluations and export, as library calls and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nnctl import wordvec
from nnctl.cli import app
from nnctl.data.text import Vocab
from nnctl.errors import DataError, VocabError

runner = CliRunner(env={"COLUMNS": "200"})
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


# Hand-made 2-D vectors: king - man + woman lands exactly on queen.
WORDS = ["king", "queen", "man", "woman", "apple", "pear"]
VECTORS = np.array([[3.0, 1.0], [3.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-2.0, 0.2], [-2.0, 0.3]], dtype=np.float32)
VOCAB = Vocab(WORDS, [5, 4, 3, 2, 1, 1])


def test_nearest_excludes_the_query_and_ranks_by_cosine():
    ranked = wordvec.nearest(VECTORS, VOCAB, "apple", k=3)
    assert [w for w, _ in ranked] == ["pear", "man", "woman"]
    assert ranked[0][1] == pytest.approx(float(VECTORS[4] @ VECTORS[5] / np.linalg.norm(VECTORS[4]) /
                                               np.linalg.norm(VECTORS[5])), rel=1e-6)


def test_analogy_is_3cosadd_without_the_query_words():
    ranked = wordvec.analogy(VECTORS, VOCAB, "man", "king", "woman", k=2)  # man:king :: woman:?
    assert ranked[0][0] == "queen"
    assert not {"man", "king", "woman"} & {w for w, _ in ranked}


def test_unknown_word_is_a_vocab_error_with_suggestions():
    with pytest.raises(VocabError, match="'kings' is not in the vocabulary.*king"):
        wordvec.nearest(VECTORS, VOCAB, "kings")


def test_analogy_file_scores_per_section_with_coverage(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text(": royalty\nman king woman queen\nMAN KING WOMAN pear\nman king prince princess\n"
                    ": gram-fruit\napple pear apple pear\n")
    report = wordvec.evaluate_analogies(VECTORS, VOCAB, path)
    royalty, fruit = report.sections
    assert (royalty.name, royalty.questions, royalty.covered, royalty.correct) == ("royalty", 3, 2, 1)
    assert (fruit.questions, fruit.covered) == (1, 1)
    assert fruit.correct == 0  # the answer is one of the excluded question words
    assert (report.overall.questions, report.overall.covered, report.overall.correct) == (4, 3, 1)
    assert (report.semantic.covered, report.syntactic.covered) == (2, 1)
    assert report.overall.accuracy == pytest.approx(1 / 3)


def test_similarity_file_spearman_with_coverage(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment\n# Word 1\tWord 2\tHuman (mean)\nking\tqueen\t8\napple\tpear\t9\n"
                    "king\tapple\t1\nman\tunicorn\t5\n")
    score = wordvec.evaluate_similarity(VECTORS, VOCAB, path)
    assert (score.pairs, score.covered) == (4, 3)
    # cosines: apple/pear 0.99 > king/queen 0.8 > king/apple < 0: same order as the humans
    assert score.spearman == pytest.approx(1.0)


def test_original_simlex_layout_uses_its_simlex999_column(tmp_path):
    path = tmp_path / "SimLex-999.txt"
    path.write_text("word1\tword2\tPOS\tSimLex999\tconc(w1)\nking\tqueen\tN\t8.5\t4\napple\tpear\tN\t2\t5\n")
    assert wordvec.read_similarity_pairs(path) == [("king", "queen", 8.5), ("apple", "pear", 2.0)]


@pytest.mark.parametrize("reader, text, message", [
    (wordvec.read_analogies, ": sec\nking queen man\n", r":2: expected ': section-name' or four words"),
    (wordvec.read_analogies, "\n\n", "no analogy questions"),
    (wordvec.read_similarity_pairs, "a\tb\t1\nc\td\thigh\n", r":2: expected 'word1<TAB>word2<TAB>score'"),
    (wordvec.read_similarity_pairs, "# only a comment\n", "no word pairs"),
], ids=["analogy_three_words", "analogy_empty", "similarity_bad_score", "similarity_empty"])
def test_evaluation_files_in_the_wrong_format_are_data_errors(tmp_path, reader, text, message):
    path = tmp_path / "eval.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        reader(path)


def test_export_word2vec_text_and_npy(tmp_path):
    wordvec.export_word2vec(VECTORS, VOCAB, tmp_path / "v.txt")
    lines = (tmp_path / "v.txt").read_text().splitlines()
    assert lines[0] == "6 2"
    assert lines[1].split()[0] == "king" and [float(x) for x in lines[1].split()[1:]] == [3.0, 1.0]
    words_path = wordvec.export_npy(VECTORS, VOCAB, tmp_path / "v.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), VECTORS)
    assert words_path.read_text().split() == WORDS


# -- through the CLI, on a real (tiny) training run -------------------------------------------
def tiny_run(tmp_path, model: str = "cbow") -> Path:
    from tests.test_cbow import tiny_language, write_corpus

    write_corpus(tmp_path / "data" / "tiny", tiny_language(200, 0))
    cfg = yaml.safe_load((CONFIGS / "tiny_cbow.yaml").read_text())
    if model == "ppmi_svd":
        cfg["model"] = {"type": "ppmi_svd", "vector_size": 4}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--data-dir", tmp_path / "data", "-q")
    assert result.exit_code == 0, result.output
    [run] = [p for p in (tmp_path / "runs").glob("*/*") if p.is_dir()]
    return run


@pytest.mark.parametrize("model", ["cbow", "ppmi_svd"])
def test_train_then_query_evaluate_and_export(tmp_path, model):
    run = tiny_run(tmp_path, model)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and np.isfinite(records[-1]["loss"])

    result = invoke("similar", run, "cat", "-k", "3")
    assert result.exit_code == 0, result.output
    assert "nearest to 'cat'" in result.output
    assert "│ 3 │" in result.output and "│ 4 │" not in result.output  # three ranked rows

    result = invoke("analogy", run, "cat", "grass", "hammer", "-k", "2")
    assert result.exit_code == 0, result.output

    questions = tmp_path / "q.txt"
    questions.write_text(": animals\ncat dog cow cat\ncat grass dog meat\ncat zebra dog lion\n")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("cat\tdog\t9\ncat\thammer\t1\nsaw\tdrill\t8\nfish\tcat\t2\nzebra\tcat\t5\n")
    result = invoke("eval", run, "--analogies", questions, "--similarity", pairs)
    assert result.exit_code == 0, result.output
    assert "animals" in result.output and "2 (66.67%)" in result.output  # coverage: 2 of 3 questions
    assert "4 (80.00%)" in result.output  # 4 of 5 pairs

    result = invoke("export", run, "--format", "word2vec", "-o", tmp_path / "vectors.txt")
    assert result.exit_code == 0, result.output
    header = (tmp_path / "vectors.txt").read_text().splitlines()[0].split()
    dim = 16 if model == "cbow" else 4
    assert header[1] == str(dim)


def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, toy_config):
    run = tiny_run(tmp_path)
    result = invoke("similar", run, "unicorn")
    assert result.exit_code == 5 and "'unicorn' is not in the vocabulary" in result.output
    assert len(result.output.strip().splitlines()) == 1

    bad = tmp_path / "bad.txt"
    bad.write_text("cat dog\n")
    result = invoke("eval", run, "--analogies", bad)
    assert result.exit_code == 3 and "four words" in result.output
    assert len(result.output.strip().splitlines()) == 1

    invoke("train", toy_config, "--runs-dir", tmp_path / "toy_runs")
    [toy_run] = [p for p in (tmp_path / "toy_runs").glob("*/*") if p.is_dir()]
    result = invoke("similar", toy_run, "cat")
    assert result.exit_code == 4 and "has no word vectors" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_window_too_large_stops_train_with_one_line(tmp_path):
    from tests.test_cbow import write_corpus

    write_corpus(tmp_path / "data" / "tiny", ["a b c", "d e"])
    result = invoke("train", CONFIGS / "tiny_cbow.yaml", "--set", "data.window=4",
                    "--runs-dir", tmp_path / "runs", "--data-dir", tmp_path / "data")
    assert result.exit_code == 3 and "window 4 is larger than the sentences allow" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
