"""Hostile data files through the real CLI: one error line, a non-zero exit, no run folder."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from nnctl.cli import app

runner = CliRunner(env={"COLUMNS": "200"})

GOOD = "the cat sat on the mat\na dog ran\n"


def lm_config(tmp_path, train=GOOD, valid=GOOD, test=GOOD, raw: bytes | None = None):
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    if raw is not None:
        (tmp_path / "train.txt").write_bytes(raw)
    cfg = {"data": {"type": "text", "train": str(tmp_path / "train.txt"), "valid": str(tmp_path / "valid.txt"),
                    "test": str(tmp_path / "test.txt"), "batch_size": 2, "bptt": 2},
           "model": {"type": "lstm_lm", "embed_dim": 4, "hidden_dim": 4, "num_layers": 1, "dropout": 0.0},
           "optimizer": {"type": "sgd", "lr": 1.0}, "train": {"epochs": 1}}
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


CASES = {
    "empty train file": (dict(train=""), "the training text is empty"),
    "whitespace-only valid file": (dict(valid="  \n\n"), "the valid text is empty"),
    "only unknown words": (dict(train="<unk> <unk> <unk>\n<unk> <unk> <unk>\n"), "every word is <unk>"),
    "not UTF-8": (dict(raw=b"caf\xe9 au lait\n\xff\xfe\n"), "not UTF-8 text"),
    "missing split file": (dict(), "file not found"),
    "corpus too short for the batch": (dict(test="a\n"), "too few for batch size"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_corpus_is_one_line_and_no_run_folder(tmp_path, case):
    kwargs, expected = CASES[case]
    config = lm_config(tmp_path, **kwargs)
    if case == "missing split file":
        (tmp_path / "valid.txt").unlink()
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 3, (case, result.output)
    assert len(result.output.strip().splitlines()) == 1 and expected in result.output, result.output
    assert not (tmp_path / "runs").exists()


def test_empty_idx_files_are_one_line(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"")
    cfg = {"data": {"type": "fashion_mnist", "path": str(folder), "download": False},
           "model": {"type": "mlp", "hidden_sizes": [4]}, "optimizer": {"type": "sgd", "lr": 0.1}}
    path = tmp_path / "img.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 3 and len(result.output.strip().splitlines()) == 1, result.output
    assert "train-images-idx3-ubyte" in result.output
    assert not (tmp_path / "runs").exists()


def test_resume_with_an_altered_vocabulary_is_one_line(tmp_path):
    config = lm_config(tmp_path)
    assert runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"]).exit_code == 0
    (run,) = [p for p in (tmp_path / "runs").glob("*/*") if p.is_dir()]
    vocab = run / "vocab.txt"
    vocab.write_text(vocab.read_text().replace("cat\t", "dog2\t"))
    result = runner.invoke(app, ["train", "--resume", str(run), "--set", "train.epochs=2"])
    assert result.exit_code == 5, result.output
    assert "does not match the vocabulary" in result.output and len(result.output.strip().splitlines()) == 1
