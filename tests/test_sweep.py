"""`nnctl sweep`: plans, trial folders, Ctrl-C and --resume, the settings table and plot, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nnctl import sweep as sweep_mod
from nnctl.cli import app
from nnctl.data.idx import write_idx
from nnctl.errors import ConfigError

runner = CliRunner(env={"COLUMNS": "200"})

# A tiny MLP on bar images: a few seconds a trial, slow enough to be stopped in the middle.
MLP = {"name": "sweepy", "seed": 1,
       "data": {"type": "mnist", "batch_size": 4, "validation": 40, "download": False},
       "model": {"type": "mlp", "hidden_sizes": [16], "dropout": 0.1},
       "optimizer": {"type": "adam", "lr": 0.01},
       "train": {"epochs": 10}}


def bar_images(n: int, seed: int):
    """Class k is a bright horizontal band k of a 28 x 28 image, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.uniform(0, 0.3, (n, 28, 28))
    for k in range(4):
        x[y == k, 7 * k:7 * k + 7] += 0.7
    return (x * 255).clip(0, 255).astype(np.uint8), y.astype(np.uint8)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "mnist").mkdir()
    for split, n in (("train", 400), ("t10k", 40)):
        x, y = bar_images(n, seed=n)
        write_idx(root / "mnist" / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(root / "mnist" / f"{split}-labels-idx1-ubyte.gz", y)
    return root


@pytest.fixture
def mlp_config(tmp_path) -> Path:
    path = tmp_path / "sweepy.yaml"
    path.write_text(yaml.safe_dump(MLP, sort_keys=False))
    return path


def sweep_dirs(runs_dir: Path) -> list[Path]:
    return sorted(p.parent for p in runs_dir.glob("*/sweeps/*/sweep.yaml"))


def trial_metrics(sweep_dir: Path) -> dict[str, list[dict]]:
    """Each trial's metrics.jsonl, without the wall-clock fields."""
    out = {}
    for trial in sweep_mod.Sweep.open(sweep_dir).trials:
        (run,) = (sweep_dir / trial.name).iterdir()
        out[trial.name] = [{k: v for k, v in json.loads(line).items() if k not in ("elapsed", "throughput")}
                           for line in (run / "metrics.jsonl").read_text().splitlines()]
    return out


def nnctl(*args, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnctl", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})


# -- plans ---------------------------------------------------------------------------------------
def test_values_split_on_top_level_commas_only():
    assert sweep_mod.split_values("0.1, 0.01") == ["0.1", "0.01"]
    assert sweep_mod.split_values("[16],[32,32],{type: sgd, lr: 0.1}") == ["[16]", "[32,32]", "{type: sgd, lr: 0.1}"]


def test_a_grid_is_the_product_of_its_keys_times_the_seeds():
    grid = [sweep_mod.parse_grid("optimizer.lr=0.1,0.01"), sweep_mod.parse_grid("model.dropout=0,0.5")]
    trials = sweep_mod.plan_trials(grid, [], 10, [1, 2], 0, fixed=["train.epochs=2"])
    assert len(trials) == 8 and len({t.name for t in trials}) == 8
    assert trials[0].overrides == ["train.epochs=2", "optimizer.lr=0.1", "model.dropout=0", "seed=1"]
    assert {t.label for t in trials} == {f"optimizer.lr={a} model.dropout={b}" for a in ("0.1", "0.01")
                                        for b in ("0", "0.5")}


def test_random_search_draws_within_its_ranges_and_repeats_with_its_seed():
    samples = [sweep_mod.parse_sample("optimizer.lr=log:1e-4:1e-1"), sweep_mod.parse_sample("model.dropout=uniform:0:0.5"),
               sweep_mod.parse_sample("optimizer.type=choice:sgd,adam")]
    first = sweep_mod.plan_trials([], samples, 50, None, sweep_seed=7)
    again = sweep_mod.plan_trials([], samples, 50, None, sweep_seed=7)
    other = sweep_mod.plan_trials([], samples, 50, None, sweep_seed=8)
    assert [t.setting for t in first] == [t.setting for t in again] != [t.setting for t in other]
    lrs = [float(t.setting["optimizer.lr"]) for t in first]
    assert all(1e-4 <= v <= 1e-1 for v in lrs) and min(lrs) < 1e-3 < 1e-2 < max(lrs)  # spread over decades
    assert all(0 <= float(t.setting["model.dropout"]) <= 0.5 for t in first)
    assert {t.setting["optimizer.type"] for t in first} == {"sgd", "adam"}
    assert all(t.seed is None for t in first)


def test_cases_are_settings_listed_one_by_one_times_the_grid():
    cases = [sweep_mod.parse_case("model.dropout=0"), sweep_mod.parse_case("model.dropout=0.5 optimizer={type: sgd, lr: 1}")]
    assert cases[1] == {"model.dropout": "0.5", "optimizer": "{type: sgd, lr: 1}"}
    trials = sweep_mod.plan_trials([sweep_mod.parse_grid("train.epochs=1,2")], [], 10, None, 0, cases=cases)
    assert [t.setting for t in trials] == [{"model.dropout": "0", "train.epochs": "1"},
                                           {"model.dropout": "0", "train.epochs": "2"},
                                           {**cases[1], "train.epochs": "1"}, {**cases[1], "train.epochs": "2"}]
    with pytest.raises(ConfigError, match="both --case and --grid"):
        sweep_mod.plan_trials([sweep_mod.parse_grid("model.dropout=0,1")], [], 10, None, 0, cases=cases)
    for bad in ("", "model.dropout=", "model.dropout"):
        with pytest.raises(ConfigError, match="--case"):
            sweep_mod.parse_case(bad)


@pytest.mark.parametrize("text", ["optimizer.lr=", "optimizer.lr=0.1,,0.2", "=0.1", "optimizer.lr"])
def test_malformed_grids_are_refused(text):
    with pytest.raises(ConfigError, match="--grid"):
        sweep_mod.parse_grid(text)


@pytest.mark.parametrize("text", ["optimizer.lr=log:1", "optimizer.lr=log:0:1", "optimizer.lr=normal:0:1",
                                  "optimizer.lr=uniform:1:0", "optimizer.lr=choice:", "optimizer.lr=uniform:a:b"])
def test_malformed_samples_are_refused(text):
    with pytest.raises(ConfigError, match="--sample"):
        sweep_mod.parse_sample(text)


# -- running -------------------------------------------------------------------------------------
def test_a_sweep_trains_every_trial_and_ranks_the_settings(tmp_path, mlp_config, mnist_dir):
    result = runner.invoke(app, ["sweep", str(mlp_config), "--grid", "optimizer.lr=0.01,0.0001", "--seeds", "1,2",
                                 "--set", "train.epochs=2", "--jobs", "2", "--runs-dir", str(tmp_path / "runs"),
                                 "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    (sweep_dir,) = sweep_dirs(tmp_path / "runs")
    plan = sweep_mod.Sweep.open(sweep_dir)
    assert [t.state for t in plan.trials] == ["finished"] * 4
    for trial in plan.trials:  # an ordinary run folder, with the trial's settings in its config
        run = sweep_dir / trial.run
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["seed"] == trial.seed and cfg["train"]["epochs"] == 2
        assert str(cfg["optimizer"]["lr"]) == trial.setting["optimizer.lr"]
        assert (run / "checkpoints" / "best.npz").is_file()
    # the table: one row per setting, the better learning rate first, both seeds counted
    rows = [line for line in result.output.splitlines() if "optimizer.lr=" in line and "│" in line]
    assert len(rows) == 2 and "optimizer.lr=0.01 " in rows[0] and "2/2" in rows[0] and "±" in rows[0]
    again = runner.invoke(app, ["runs", str(sweep_dir)])
    assert again.exit_code == 0 and [l for l in again.output.splitlines() if "optimizer.lr=" in l] == rows
    results = sweep_mod.compare_settings(plan)
    assert results[0].mean_std("valid")[0] >= results[1].mean_std("valid")[0]
    pytest.importorskip("matplotlib")
    picture = runner.invoke(app, ["plot", str(sweep_dir), "-o", str(tmp_path / "sweep.png")])
    assert picture.exit_code == 0, picture.output
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ctrl_c_stops_every_trial_and_resume_finishes_them_exactly(tmp_path, mlp_config, mnist_dir):
    args = ["sweep", mlp_config, "--grid", "optimizer.lr=0.01,0.003", "--seeds", "1,2", "--jobs", "2",
            "--data-dir", mnist_dir]
    whole = nnctl(*args, "--runs-dir", tmp_path / "whole")
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err

    cut = nnctl(*args, "--runs-dir", tmp_path / "cut")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # stop once the first trials have trained an epoch or two
        records = list((tmp_path / "cut").glob("*/sweeps/*/trial-*/*/metrics.jsonl"))
        if len(records) >= 2 and min(len(p.read_text().splitlines()) for p in records) >= 4:
            break
        time.sleep(0.05)
    cut.send_signal(signal.SIGINT)
    out, err = cut.communicate(timeout=120)
    assert cut.returncode == 130 and "Traceback" not in err, (out, err)
    assert "nnctl sweep --resume" in out
    (sweep_dir,) = sweep_dirs(tmp_path / "cut")
    states = [t.state for t in sweep_mod.Sweep.open(sweep_dir).trials]
    assert "interrupted" in states and "finished" not in states[2:], states  # stopped in the middle

    resumed = nnctl("sweep", "--resume", sweep_dir, "--jobs", "2")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, (out, err)
    assert [t.state for t in sweep_mod.Sweep.open(sweep_dir).trials] == ["finished"] * 4
    (whole_dir,) = sweep_dirs(tmp_path / "whole")
    assert trial_metrics(sweep_dir) == trial_metrics(whole_dir)


def test_dry_run_prints_one_command_per_trial_and_makes_nothing(tmp_path, mlp_config):
    result = runner.invoke(app, ["sweep", str(mlp_config), "--grid", "optimizer.lr=0.1,0.01", "--seeds", "1,2",
                                 "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 4 and all(line.startswith(f"nnctl train {mlp_config} --set optimizer.lr=") for line in lines)
    assert lines[1].endswith("--set optimizer.lr=0.1 --set seed=2")
    assert not (tmp_path / "runs").exists()


# -- bad input: one line, a non-zero exit, no folder ---------------------------------------------
@pytest.mark.parametrize("args, code, words", [
    (["--grid", "optimizer.lrr=0.1,0.01"], 2, "did you mean 'lr'"),
    (["--grid", "optimizer.lr="], 2, "empty value"),
    (["--sample", "optimizer.lr=log:0.1"], 2, "--sample"),
    (["--grid", "optimizer.lr=0.1", "--jobs", "0"], 2, "--jobs 0"),
    (["--grid", "optimizer.lr=0.1", "--trials", "3"], 2, "needs --sample"),
    (["--grid", "optimizer.lr=0.1,abc"], 2, "optimizer.lr"),
    ([], 2, "nothing to sweep"),
])
def test_bad_sweeps_stop_before_any_trial(tmp_path, mlp_config, args, code, words):
    result = runner.invoke(app, ["sweep", str(mlp_config), *args, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == code, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_resume_on_a_folder_that_is_not_a_sweep(tmp_path):
    result = runner.invoke(app, ["sweep", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "not a sweep folder" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_resume_on_a_damaged_sweep_record(tmp_path):
    (tmp_path / "sweep.yaml").write_text("trials: [1, 2")
    result = runner.invoke(app, ["sweep", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "not a sweep record" in result.output


def test_a_failed_trial_is_reported_and_not_run_again(tmp_path, mlp_config, mnist_dir):
    args = ["sweep", str(mlp_config), "--grid", "optimizer.lr=0.01,1e30", "--set", "train.epochs=1",
            "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(mnist_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "trial-01 failed: non-finite loss" in result.output, result.output
    (sweep_dir,) = sweep_dirs(tmp_path / "runs")
    assert [t.state for t in sweep_mod.Sweep.open(sweep_dir).trials] == ["finished", "failed"]
    log = (sweep_dir / "logs" / "trial-01.txt").read_text()
    again = runner.invoke(app, ["sweep", "--resume", str(sweep_dir)])
    assert again.exit_code == 1 and (sweep_dir / "logs" / "trial-01.txt").read_text() == log  # not rerun
    assert len(list((sweep_dir / "trial-01").iterdir())) == 1


def test_one_process_runs_a_sweep_at_a_time(tmp_path, mlp_config):
    from nnctl.rundir import RunDir

    made = runner.invoke(app, ["sweep", str(mlp_config), "--seeds", "1", "--set", "data.type=no_such_data",
                               "--runs-dir", str(tmp_path / "runs")])
    assert made.exit_code == 2 and not (tmp_path / "runs").exists()  # checked before any folder
    plan = sweep_mod.Sweep.create(tmp_path / "runs", "sweepy", mlp_config, sweep_mod.plan_trials([], [], 1, [1], 0))
    holder = RunDir(plan.path)
    holder.lock()
    try:
        result = runner.invoke(app, ["sweep", "--resume", str(plan.path)])
    finally:
        holder.unlock()
    assert result.exit_code == 1 and "is training this run now" in result.output, result.output
    assert not (plan.path / "trial-00").exists()


def test_sweep_only_options_on_other_folders_and_empty_sweeps(tmp_path, mlp_config):
    run_folder = tmp_path / "runs" / "x" / "20261201-000000"
    run_folder.mkdir(parents=True)
    (run_folder / "config.yaml").write_text("name: x\n")
    for args in (["runs", str(tmp_path / "runs"), "--target", "0.5"],
                 ["plot", str(run_folder), "--target", "0.5", "-o", str(tmp_path / "x.png")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "only for a sweep folder" in result.output, result.output
    plan = sweep_mod.Sweep.create(tmp_path / "runs", "sweepy", mlp_config, sweep_mod.plan_trials([], [], 1, [1], 0))
    result = runner.invoke(app, ["plot", str(plan.path), "-o", str(tmp_path / "y.png")])
    assert result.exit_code == 1 and "no trial of this sweep has finished" in result.output
    assert not (tmp_path / "y.png").exists()
    both = runner.invoke(app, ["sweep", str(mlp_config), "--resume", str(plan.path)])
    assert both.exit_code == 2 and "--resume SWEEP_DIR continues a sweep" in both.output
