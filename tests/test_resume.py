"""Nothing lost: exact resume, safe interruption, atomic checkpoints under SIGKILL, failed writes."""

from __future__ import annotations

import errno
import json
import os
import signal
import time

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import TOY_CONFIG, cli_subprocess
from nnctl import checkpoint
from nnctl.cli import app
from nnctl.errors import CheckpointError

runner = CliRunner(env={"COLUMNS": "200"})

# Slow enough to be interrupted mid-epoch, with every kind of state resume must restore:
# Adam moments and step count, a plateau schedule, dropout RNG, shuffling, best metric.
SLOW = {**TOY_CONFIG, "data": {"type": "toy_blobs", "batch_size": 2, "size": 1500, "noise": 2.0},
        "model": {"type": "toy_softmax", "dropout": 0.3},
        "optimizer": {"type": "adam", "lr": 0.01}, "schedule": {"type": "plateau", "factor": 0.5},
        "train": {"epochs": 3, "checkpoint_every": 50, "eval_every": 200}}


def write_config(tmp_path, cfg, name="slow.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def comparable_metrics(run):
    return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed", "throughput")}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def model_weights(path):
    ckpt = checkpoint.load(path)
    return ckpt.group("model"), ckpt.group("optim")


def one_run(runs_dir):
    (run,) = [p for p in runs_dir.glob("*/*") if p.is_dir()]
    return run


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    config = write_config(tmp_path, SLOW)
    straight = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "a"), "-q"])
    assert straight.exit_code == 0, straight.output
    run_a = one_run(tmp_path / "a")

    child = cli_subprocess(["train", config, "--runs-dir", tmp_path / "b"])
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "b").glob("*/*/metrics.jsonl")):
        time.sleep(0.01)
    # At once, after the first evaluation (step 200 of the first epoch's 750, checkpoints
    # every 50): a fast host trains the three epochs in a quarter of a second, so a pause
    # here would miss the run.
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert "resume with: nnctl train --resume" in out
    run_b = one_run(tmp_path / "b")
    assert json.loads((run_b / "status.json").read_text())["state"] == "interrupted"
    assert "interrupted" in runner.invoke(app, ["runs", str(tmp_path / "b")]).output

    before = [json.loads(line)["elapsed"] for line in (run_b / "metrics.jsonl").read_text().splitlines()]
    resumed = runner.invoke(app, ["train", "--resume", str(run_b), "-q"])
    assert resumed.exit_code == 0, resumed.output
    after = [json.loads(line)["elapsed"] for line in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert after == sorted(after) and after[len(before)] >= max(before)  # training time keeps counting
    assert comparable_metrics(run_b) == comparable_metrics(run_a)
    (model_a, optim_a), (model_b, optim_b) = (model_weights(r / "checkpoints/last.npz") for r in (run_a, run_b))
    assert model_a.keys() == model_b.keys() and optim_a.keys() == optim_b.keys()
    for key in model_a:
        np.testing.assert_array_equal(model_a[key], model_b[key])
    for key in optim_a:
        np.testing.assert_array_equal(optim_a[key], optim_b[key])


def test_sigterm_saves_last_and_exits_143(tmp_path):
    config = write_config(tmp_path, {**SLOW, "train": {"epochs": 50}})
    child = cli_subprocess(["train", config, "--runs-dir", tmp_path / "runs"])
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/*/metrics.jsonl")):
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 143, out + err
    run = one_run(tmp_path / "runs")
    checkpoint.load(run / "checkpoints/last.npz")  # complete and valid
    assert not list(run.glob("checkpoints/*.tmp")) and not list(run.glob("checkpoints/.*.tmp"))


def test_resume_refuses_to_change_the_experiment(toy_config, tmp_path):
    runner.invoke(app, ["train", str(toy_config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    run = one_run(tmp_path / "runs")
    result = runner.invoke(app, ["train", "--resume", str(run), "--set", "model.scale=2"])
    assert result.exit_code == 2 and "only train.* keys" in result.output
    longer = runner.invoke(app, ["train", "--resume", str(run), "--set", "train.epochs=4", "-q"])
    assert longer.exit_code == 0, longer.output
    epochs = [r["epoch"] for r in comparable_metrics(run) if r["split"] == "train"]
    assert epochs == [1, 2, 3, 4]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 4


def test_resume_of_a_folder_without_checkpoint_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 4 and "no checkpoints/last.npz" in result.output


def _save_forever(path, seed):
    """Child of a fork: keep replacing one checkpoint until killed."""
    from nnctl.layers.base import Layer, Param

    class Big(Layer):
        def __init__(self, value):
            self.W = Param.init(np.full((300, 300), value))

    i = seed * 1000  # distinct per child, so the parent can tell whose save it loaded
    while True:
        i += 1
        checkpoint.save(path, Big(float(i)), {"config": {}, "i": i})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    from nnctl.layers.base import Layer, Param

    class First(Layer):
        def __init__(self):
            self.W = Param.init(np.zeros((300, 300)))

    path = tmp_path / "last.npz"
    checkpoint.save(path, First(), {"config": {}, "i": 0})  # from here on a checkpoint must always load
    rng = np.random.default_rng(0)
    kills = loaded = 0
    versions = set()
    for attempt in range(120):
        pid = os.fork()
        if pid == 0:  # the child: save until killed
            try:
                _save_forever(path, attempt + 1)
            finally:
                os._exit(0)
        time.sleep(float(rng.uniform(0.0, 0.08)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        ckpt = checkpoint.load(path)  # raises if the file were torn
        assert ckpt.group("model")["W"].shape == (300, 300)
        versions.add(ckpt.meta["i"])
        loaded += 1
    assert kills == loaded == 120
    assert len(versions) > 10  # the children did replace the file between kills
    print(f"SIGKILL test: {kills} kills, {loaded} checkpoints loaded, {len(versions)} distinct versions")


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from nnctl.layers.base import Layer, Param

    class Tiny(Layer):
        def __init__(self, value):
            self.W = Param.init(np.full((3,), value))

    path = tmp_path / "last.npz"
    checkpoint.save(path, Tiny(1.0), {"config": {}})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError):
        checkpoint.save(path, Tiny(2.0), {"config": {}})
    monkeypatch.undo()
    assert checkpoint.load(path).group("model")["W"].tolist() == [1.0, 1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]  # no temporary file left


def test_disk_full_during_training_is_one_line(toy_config, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    result = runner.invoke(app, ["train", str(toy_config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert "Traceback" not in result.output
    run = one_run(tmp_path / "runs")
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


@pytest.mark.parametrize("damage", ["truncate", "random bytes", "flip a byte"])
def test_damaged_checkpoints_are_rejected_with_one_line(toy_config, tmp_path, damage):
    runner.invoke(app, ["train", str(toy_config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    path = one_run(tmp_path / "runs") / "checkpoints" / "best.npz"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "random bytes":
        data = bytearray(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    else:  # inside the first stored array's bytes: only the checksum can tell
        data[200] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        checkpoint.load(path)
    result = runner.invoke(app, ["eval", str(path)])
    assert result.exit_code == 4 and len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("clip", [[], ["--set", "train.clip_grad_norm=1.0"]], ids=["no clipping", "clipping"])
def test_nonfinite_loss_stops_and_names_the_step(toy_config, tmp_path, clip):
    """With clipping on, the finiteness check is the clipping norm's: it must catch the same steps."""
    result = runner.invoke(app, ["train", str(toy_config), "--runs-dir", str(tmp_path / "runs"),
                                 "--set", "optimizer.lr=1e38", "--set", "model.scale=1e30", *clip])
    assert result.exit_code == 1, result.output
    assert "non-finite loss or gradient at epoch" in result.output and "last good checkpoint" in result.output


def test_nonfinite_skip_counts_skipped_batches(toy_config, tmp_path):
    result = runner.invoke(app, ["train", str(toy_config), "--runs-dir", str(tmp_path / "runs"), "-q",
                                 "--set", "optimizer.lr=1e38", "--set", "model.scale=1e30",
                                 "--set", "train.on_nonfinite=skip"])
    assert result.exit_code == 0, result.output
    records = comparable_metrics(one_run(tmp_path / "runs"))
    assert max(r.get("nonfinite_skips", 0) for r in records) > 0
