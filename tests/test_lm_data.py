"""Language-model data: BPTT batching, vocabulary rules, and one-line errors for bad corpora."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl.data import DATASETS
from nnctl.data.lm import batchify, windows
from nnctl.data.text import EOS, UNK
from nnctl.errors import ConfigError, DataError


def write_corpus(folder, train="a b c\nd e\n", valid="a b\nc d e\n", test="e d\nc b a\n"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def text_data(folder, **keys):
    cfg = {"type": "text", "train": str(folder / "train.txt"), "valid": str(folder / "valid.txt"),
           "test": str(folder / "test.txt"), "batch_size": 2, "bptt": 2, **keys}
    return DATASETS.build(cfg, "data", data_dir=None, dtype=np.float32)


def test_batchify_cuts_parallel_streams_in_order():
    ids = np.arange(26)
    streams = batchify(ids, 4)
    assert streams.shape == (4, 6)  # the two leftover tokens are dropped
    assert streams[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert streams[1].tolist() == [6, 7, 8, 9, 10, 11]
    assert streams[3].tolist() == [18, 19, 20, 21, 22, 23]


def test_windows_shift_targets_and_keep_a_short_last_window():
    streams = batchify(np.arange(26), 4)
    got = list(windows(streams, 2))
    assert [x.shape for x, _ in got] == [(4, 2), (4, 2), (4, 1)]
    x, y = got[0]
    assert x[1].tolist() == [6, 7] and y[1].tolist() == [7, 8]
    x, y = got[-1]
    assert x[:, 0].tolist() == [4, 10, 16, 22] and y[:, 0].tolist() == [5, 11, 17, 23]
    # every position but the first of each stream is predicted exactly once, in order
    targets = np.concatenate([y for _, y in got], axis=1)
    np.testing.assert_array_equal(targets, streams[:, 1:])


def test_text_data_set_batches_in_corpus_order(tmp_path):
    train = " ".join(f"w{i}" for i in range(30)) + "\n"
    data = text_data(write_corpus(tmp_path, train=train, valid=train, test=train), batch_size=3, bptt=4)
    ids = data.corpus.ids["train"]  # 30 words + <eos>
    assert data.vocab.decode(ids[-1:]) == [EOS]
    batches = list(data.batches("train", rng=np.random.default_rng(0)))
    assert len(batches) == data.num_batches("train") == 3  # 31 // 3 = 10 steps: windows 4, 4, 1
    x, y = batches[0]
    assert x.shape == (3, 4) and x.dtype.kind == "i"
    np.testing.assert_array_equal(x[1], ids[10:14])
    np.testing.assert_array_equal(y[1], ids[11:15])
    assert sum(y.size for _, y in batches) == data.num_tokens("train") == 27
    assert data.extras() == {"vocab_size": len(data.vocab)}
    assert data.unit == "tokens"


def test_vocab_max_size_and_min_count_with_unk_and_eos(tmp_path):
    train = "a a a a b b b c c d\na a b\n"
    folder = write_corpus(tmp_path, train=train, valid="a zz\n", test="b c\n")
    data = text_data(folder, min_count=3, batch_size=1, bptt=1)
    assert set(data.vocab.words) == {"a", "b", EOS, UNK}  # c (2) and d (1) fall below min_count
    assert data.vocab.words[0] == "a"  # ids by decreasing frequency
    assert data.vocab.decode(data.corpus.ids["valid"]) == ["a", UNK, EOS]
    data = text_data(folder, max_vocab=4, batch_size=1, bptt=1)
    assert set(data.vocab.words) == {"a", "b", EOS, UNK}  # the commonest two words, <eos> and <unk>
    assert data.vocab.counts[data.vocab.index[UNK]] == 3  # c, c, d


def test_vocab_given_from_a_run_is_used_as_is(tmp_path):
    folder = write_corpus(tmp_path)
    first = text_data(folder)
    other = write_corpus(tmp_path / "other", train="x y z\nz z\n")
    cfg = {"type": "text", "train": str(other / "train.txt"), "valid": str(folder / "valid.txt"),
           "test": str(folder / "test.txt"), "batch_size": 2, "bptt": 2}
    rebuilt = DATASETS.build(cfg, "data", data_dir=None, dtype=np.float32, vocab=first.vocab)
    assert rebuilt.vocab is first.vocab


def test_relative_paths_are_found_in_the_data_dir(tmp_path):
    write_corpus(tmp_path / "corpus")
    cfg = {"type": "text", "train": "corpus/train.txt", "valid": "corpus/valid.txt", "test": "corpus/test.txt",
           "batch_size": 2, "bptt": 2}
    data = DATASETS.build(cfg, "data", data_dir=str(tmp_path), dtype=np.float32)
    assert len(data.corpus.ids["train"]) == 7


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_empty_split_is_one_line(tmp_path, split):
    folder = write_corpus(tmp_path, **{split: "\n  \n"})
    with pytest.raises(DataError) as info:
        text_data(folder)
    assert "empty" in one_line(info) and f"{split}.txt" in str(info.value)


def test_missing_split_file_is_one_line(tmp_path):
    folder = write_corpus(tmp_path)
    (folder / "valid.txt").unlink()
    with pytest.raises(DataError) as info:
        text_data(folder)
    assert "valid.txt" in one_line(info) and "not found" in str(info.value)


def test_missing_split_key_is_a_config_error(tmp_path):
    folder = write_corpus(tmp_path)
    with pytest.raises(ConfigError) as info:
        DATASETS.build({"type": "text", "train": str(folder / "train.txt"), "valid": str(folder / "valid.txt")},
                       "data", data_dir=None, dtype=np.float32)
    assert "data.test" in one_line(info)


def test_bptt_longer_than_the_data_allows_is_one_line(tmp_path):
    folder = write_corpus(tmp_path)  # valid: 7 tokens -> 2 streams of 3 -> 2 steps each
    with pytest.raises(DataError) as info:
        text_data(folder, bptt=5)
    message = one_line(info)
    assert "bptt 5" in message and "lower data.bptt" in message


def test_batch_size_larger_than_the_data_allows_is_one_line(tmp_path):
    folder = write_corpus(tmp_path)
    with pytest.raises(DataError) as info:
        text_data(folder, batch_size=5, bptt=1)
    assert "batch size 5" in one_line(info)


def test_evaluation_batch_size_too_large_is_one_line(tmp_path):
    data = text_data(write_corpus(tmp_path), bptt=1)
    with pytest.raises(DataError) as info:
        list(data.batches("valid", batch_size=50))
    assert "batch size 50" in one_line(info)


@pytest.mark.parametrize("key, value", [("batch_size", 0), ("bptt", 0), ("min_count", 0), ("max_vocab", 1)])
def test_bad_values_name_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError) as info:
        text_data(write_corpus(tmp_path), **{key: value})
    assert key in one_line(info)


def test_ptb_reads_the_three_files_from_a_folder(tmp_path):
    folder = tmp_path / "ptb"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"ptb.{split}.txt").write_text(" the cat sat \n a dog <unk> ran \n", encoding="utf-8")
    data = DATASETS.build({"type": "ptb", "batch_size": 2, "bptt": 3}, "data", data_dir=str(tmp_path),
                          dtype=np.float32)
    assert len(data.corpus.ids["train"]) == 9 and UNK in data.vocab
    assert data.vocab.decode(data.corpus.ids["test"][:4]) == ["the", "cat", "sat", EOS]


def test_ptb_with_an_explicit_path_missing_files_is_one_line(tmp_path):
    with pytest.raises(DataError) as info:
        DATASETS.build({"type": "ptb", "path": str(tmp_path / "nowhere")}, "data", data_dir=None, dtype=np.float32)
    assert "ptb.train.txt" in one_line(info)
