"""End-to-end: `nnctl train / eval / config show / runs / gradcheck` on the toy model, and bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from nnctl.cli import app

runner = CliRunner(env={"COLUMNS": "200"})


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def only_run(runs_dir):
    runs = [p for p in runs_dir.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_train_writes_a_complete_run_directory(toy_config, tmp_path):
    result = invoke("train", toy_config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run = only_run(tmp_path / "runs")
    for name in ("config.yaml", "metrics.jsonl", "train.log", "status.json",
                 "checkpoints/best.npz", "checkpoints/last.npz"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records] == ["train", "valid"] * 3 + ["test"]
    assert records[-1]["accuracy"] > 0.9  # three well-separated clusters
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == 3
    assert resolved["train"]["clip_grad_norm"] is None  # defaults are filled in


def test_same_config_and_seed_give_identical_metrics(toy_config, tmp_path):
    for i in range(2):
        assert invoke("train", toy_config, "--runs-dir", tmp_path / f"r{i}").exit_code == 0
    strip = lambda run: [{k: v for k, v in json.loads(l).items() if k not in ("elapsed", "throughput")}
                         for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert strip(only_run(tmp_path / "r0")) == strip(only_run(tmp_path / "r1"))


def test_set_overrides_reach_the_resolved_config(toy_config, tmp_path):
    result = invoke("config", "show", toy_config, "--set", "optimizer.lr=0.01", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["optimizer"]["lr"] == 0.01 and shown["train"]["epochs"] == 1
    assert shown["schedule"] == {"type": "constant"}


def test_eval_reproduces_the_trainers_test_figure(toy_config, tmp_path):
    invoke("train", toy_config, "--runs-dir", tmp_path / "runs")
    run = only_run(tmp_path / "runs")
    test = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()][-1]
    result = invoke("eval", run, "--split", "test")
    assert result.exit_code == 0, result.output
    assert f"{100 * test['accuracy']:.2f}%" in result.output


def test_runs_lists_the_run(toy_config, tmp_path):
    invoke("train", toy_config, "--runs-dir", tmp_path / "runs")
    result = invoke("runs", tmp_path / "runs")
    assert result.exit_code == 0 and "toy_softmax" in result.output and "finished" in result.output


def test_gradcheck_command_passes(toy_config):
    result = invoke("gradcheck", toy_config)
    assert result.exit_code == 0, result.output
    assert "pass" in result.output


BASE = "data: {type: toy_blobs}\nmodel: {type: toy_softmax}\noptimizer: {type: sgd, lr: 0.1}\n"

# (case, the config text, two fragments the one error line must contain)
BAD_CONFIGS = [
    ("unknown model key", BASE.replace("toy_softmax}", "toy_softmax, scael: 1}"),
     "model.scael: unknown key", "did you mean 'scale'"),
    ("unknown type", BASE.replace("toy_softmax", "toy_softmx"),
     "model.type: 'toy_softmx' is not a registered model", "toy_softmax"),
    ("wrong type", BASE.replace("lr: 0.1", "lr: fast"), "optimizer.lr: expected float", "str 'fast'"),
    ("impossible value", BASE.replace("lr: 0.1", "lr: -1"), "optimizer.lr: must be", "-1"),
    ("unknown section", BASE + "trian: {epochs: 1}\n", "trian: unknown section", "did you mean 'train'"),
    ("malformed yaml", BASE + "train: {epochs: [\n", "malformed YAML", "line"),
    ("python tag", BASE + "seed: !!python/object/apply:os.system ['echo hi']\n", "YAML tag not allowed", "python"),
    ("bad epochs", BASE + "train: {epochs: 0}\n", "train: epochs must be >= 1", ""),
    ("missing section", "data: {type: toy_blobs}\nmodel: {type: toy_softmax}\n", "optimizer: required section", ""),
    ("not a mapping", "- just\n- a list\n", "not a mapping of sections", ""),
]


@pytest.mark.parametrize("case, text, first, second", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_one_line_exit_2_and_no_run_dir(tmp_path, case, text, first, second):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    assert first in message and second in message, message
    assert not (tmp_path / "runs").exists()


def test_missing_config_file_is_one_line(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output


def test_eval_of_a_run_without_checkpoint_is_one_line(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    result = runner.invoke(app, ["eval", str(tmp_path / "run")])
    assert result.exit_code == 4 and "no checkpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_corrupt_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "best.npz"
    path.write_bytes(b"PK\x03\x04 this is not a real zip")
    result = runner.invoke(app, ["eval", str(path)])
    assert result.exit_code == 4 and "unreadable checkpoint" in result.output


def test_usage_mistakes_are_one_line_each(toy_config, tmp_path):
    invoke("train", toy_config, "--runs-dir", tmp_path / "runs", "-q")
    run = only_run(tmp_path / "runs")
    (tmp_path / "empty").mkdir()
    cases = [
        (["eval", run, "--split", "dev"], 2, "this data set has the splits train, valid, test"),
        (["train", toy_config, "--resume", run], 2, "not both"),
        (["train"], 2, "missing CONFIG"),
        (["runs", tmp_path / "nowhere"], 2, "no such folder"),
        (["runs", tmp_path / "empty"], 1, "no runs found"),
        (["config", "show", toy_config, "--set", "optimizer.lr"], 2, "expected KEY=VALUE"),
        (["config", "show", toy_config, "--set", "seed.x=1"], 2, "seed is not a section"),
    ]
    for args, code, fragment in cases:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == code, (args, result.output)
        assert fragment in result.output and len(result.output.strip().splitlines()) == 1, (args, result.output)
        assert "Traceback" not in result.output
