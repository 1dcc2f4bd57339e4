"""`nnctl runs` stays readable in an 80-column terminal: a run's name is never broken."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nnctl.cli import app

NAMES = ["lstm_ptb_book_size_dropout05_tied", "cbow_text8_window5_negative_sampling",
         "seq2seq_addition_attention_peeky", "toy"]
STATES = ["finished", "interrupted", "running", "failed"]


def make_runs(root):
    """Run folders as `nnctl train` leaves them (config, status, metrics), without training."""
    folders = []
    for i, (name, state) in enumerate(zip(NAMES, STATES)):
        folder = root / name / f"20261201-12000{i}"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(
            f"name: {name}\nmodel: {{type: lstm_language_model}}\ndata: {{type: fashion_mnist}}\n")
        (folder / "status.json").write_text(json.dumps({"state": state}))
        records = [{"epoch": 1, "step": 10, "split": split, "loss": 4.8, "perplexity": 123.45, "lr": 1.0,
                    "elapsed": 12345.6} for split in ("train", "valid", "test")]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        folders.append(folder)
    return folders


@pytest.mark.parametrize("columns", [80, 60])
def test_names_are_whole_and_lines_fit_when_narrow(tmp_path, columns):
    folders = make_runs(tmp_path / "runs")
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= columns for line in lines), result.output
    for folder, state in zip(folders, STATES):
        name = str(folder.relative_to(tmp_path / "runs"))
        (at,) = [i for i, line in enumerate(lines) if line.strip() == name]  # the name alone on its line
        assert state in lines[at + 1] and "123.45" in lines[at + 1], result.output


def test_80_columns_keep_model_and_data(tmp_path):
    make_runs(tmp_path / "runs")
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["runs", str(tmp_path / "runs")])
    assert "lstm_language_model" in result.output and "fashion_mnist" in result.output, result.output


def test_a_wide_terminal_gets_the_table(tmp_path):
    folders = make_runs(tmp_path / "runs")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "wall time" in result.output
    for folder, state in zip(folders, STATES):
        name = str(folder.relative_to(tmp_path / "runs"))
        assert any(name in line and state in line for line in result.output.splitlines()), result.output
