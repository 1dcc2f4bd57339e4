"""`nnctl.run.train`: a whole run from Python, the same run `nnctl train` makes."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from conftest import TOY_CONFIG
from nnctl import run
from nnctl.cli import app
from nnctl.errors import ConfigError

runner = CliRunner(env={"COLUMNS": "200"})


def metrics_of(path):
    """metrics.jsonl without the wall-clock fields."""
    return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed", "throughput")}
            for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_a_run_from_python_is_the_run_the_command_makes(tmp_path, toy_config):
    result = run.train(toy_config, runs_dir=tmp_path / "lib", quiet=True)
    assert result.state == "finished"
    assert result.summary["epochs"] == 3 and "test" in result.summary
    cli = runner.invoke(app, ["train", str(toy_config), "--runs-dir", str(tmp_path / "cli"), "-q"])
    assert cli.exit_code == 0, cli.output
    (cli_run,) = (tmp_path / "cli" / "toy").iterdir()
    assert metrics_of(result.path) == metrics_of(cli_run)
    assert sorted(p.name for p in result.path.iterdir()) == sorted(p.name for p in cli_run.iterdir())
    assert json.loads((result.path / "status.json").read_text())["state"] == "finished"


def test_a_config_mapping_with_overrides(tmp_path):
    result = run.train(TOY_CONFIG, overrides=["train.epochs=1", "name=from_python"], runs_dir=tmp_path, quiet=True)
    assert result.path.parent.name == "from_python" and result.summary["epochs"] == 1
    text = (result.path / "config.yaml").read_text()
    assert text.startswith("# written by nnctl") and "a config given from Python" in text.splitlines()[0]
    assert yaml.safe_load(text)["train"]["epochs"] == 1


def test_resume_from_python_continues_exactly(tmp_path):
    whole = run.train(TOY_CONFIG, runs_dir=tmp_path / "whole", quiet=True)
    part = run.train(TOY_CONFIG, overrides=["train.epochs=1"], runs_dir=tmp_path / "parts", quiet=True)
    more = run.train(resume=part.path, overrides=["train.epochs=3"], quiet=True)
    assert more.state == "finished" and more.path == part.path
    assert metrics_of(more.path) == metrics_of(whole.path)


class Recorder:
    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.events.append(name)


def test_a_listener_hears_the_run_and_train_log_is_still_written(tmp_path):
    listener = Recorder()
    result = run.train(TOY_CONFIG, runs_dir=tmp_path, listener=listener)
    assert listener.events[0] == "on_fit_start" and listener.events[-1] == "on_fit_end"
    assert listener.events.count("on_epoch_end") == 3
    log = (result.path / "train.log").read_text()
    assert "training" in log and "test" in log


def test_a_stop_requested_before_the_first_step_returns_an_interrupted_run(tmp_path, monkeypatch):
    """A signal that arrives while the run is set up stops it before its first step, resumable."""
    import signal

    from nnctl.trainer import Trainer

    original = Trainer.fit

    def fit_after_a_signal(self):
        self.request_stop(signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(Trainer, "fit", fit_after_a_signal)
    result = run.train(TOY_CONFIG, runs_dir=tmp_path, quiet=True)
    assert result.state == "interrupted" and result.signum == signal.SIGTERM
    assert result.resume_command == f"nnctl train --resume {result.path}"
    assert (result.path / "checkpoints" / "last.npz").is_file()
    assert json.loads((result.path / "status.json").read_text())["state"] == "interrupted"
    monkeypatch.setattr(Trainer, "fit", original)
    assert run.train(resume=result.path, quiet=True).state == "finished"


@pytest.mark.parametrize("kwargs, words", [
    ({"config": TOY_CONFIG, "resume": "runs/x"}, "not both"),
    ({}, "missing CONFIG"),
])
def test_usage_mistakes_are_config_errors(tmp_path, kwargs, words):
    with pytest.raises(ConfigError, match=words):
        run.train(runs_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())
