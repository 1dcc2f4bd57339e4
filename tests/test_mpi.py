"""Data-parallel training under mpirun equals training on one process with the same global batch.

Skipped where mpi4py or mpirun is missing (`.ci/run` installs both, so CI runs it).
Everything is float64 and dropout-free, so the only differences allowed are summation order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import TOY_CONFIG
from nnctl import checkpoint

pytest.importorskip("mpi4py")
MPIRUN = shutil.which("mpirun") or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="mpirun not installed (apt-get install openmpi-bin)")

TESTS = Path(__file__).parent
ROOT = TESTS.parent
LAUNCH = ("import sys; sys.path[:0] = [%r, %r]; import toyparts; from nnctl.cli import main; "
          "sys.argv = ['nnctl'] + sys.argv[1:]; main()") % (str(TESTS), str(ROOT))


def mpirun_prefix(processes: int) -> list[str]:
    if processes == 1:
        return []
    flags = []
    version = subprocess.run([MPIRUN, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        flags = ["--oversubscribe"]  # CI machines may have fewer cores than ranks
    return [MPIRUN, "-n", str(processes), *flags]


def nnctl(processes: int, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = mpirun_prefix(processes) + [sys.executable, "-c", LAUNCH, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    return result


def train(tmp_path, cfg, processes: int, name: str) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = nnctl(processes, "train", config, "--runs-dir", tmp_path / name, "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = [p for p in (tmp_path / name).glob("*/*") if p.is_dir()]  # only rank 0 made a folder
    return run


def assert_same_weights(run_a: Path, run_b: Path, tol: float = 1e-5) -> None:
    a, b = (checkpoint.load(r / "checkpoints" / "last.npz") for r in (run_a, run_b))
    for group in ("model", "optim"):
        arrays_a, arrays_b = a.group(group), b.group(group)
        assert arrays_a.keys() == arrays_b.keys()
        for key in arrays_a:
            np.testing.assert_allclose(arrays_a[key], arrays_b[key], rtol=0, atol=tol, err_msg=f"{group}/{key}")
    assert a.meta["progress"]["step"] == b.meta["progress"]["step"] > 3


def train_losses(run: Path) -> list[float]:
    import json

    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["split"] in ("train", "valid")]


def lm_config(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    for split, lines in (("train", 40), ("valid", 12), ("test", 12)):
        text = "\n".join(" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(lines))
        (tmp_path / f"{split}.txt").write_text(text + "\n")
    return {"name": "lm", "seed": 5, "dtype": "float64",
            "data": {"type": "text", "train": str(tmp_path / "train.txt"), "valid": str(tmp_path / "valid.txt"),
                     "test": str(tmp_path / "test.txt"), "batch_size": 4, "bptt": 5},
            "model": {"type": "lstm_lm", "embed_dim": 6, "hidden_dim": 6, "num_layers": 2, "dropout": 0.0},
            "optimizer": {"type": "sgd", "lr": 1.0},
            "train": {"epochs": 2, "clip_grad_norm": 0.5, "eval_batch_size": 3}}


# toy: Adam, and 89 points in batches of 16, so the last batch (9) splits unevenly (5 + 4)
TOY = {**TOY_CONFIG, "dtype": "float64", "data": {"type": "toy_blobs", "batch_size": 16, "size": 89},
       "optimizer": {"type": "adam", "lr": 0.05}, "train": {"epochs": 2}}


@pytest.mark.parametrize("which", ["toy_softmax_adam", "lstm_lm_streams"])
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, which):
    cfg = TOY if which == "toy_softmax_adam" else lm_config(tmp_path)
    one = train(tmp_path, cfg, 1, "one")
    two = train(tmp_path, cfg, 2, "two")
    assert_same_weights(one, two)
    np.testing.assert_allclose(train_losses(two), train_losses(one), rtol=1e-9)


def test_resume_under_mpirun_continues_like_an_uninterrupted_run(tmp_path):
    cfg = lm_config(tmp_path)
    straight = train(tmp_path, cfg, 1, "straight")
    first = train(tmp_path, {**cfg, "train": {**cfg["train"], "epochs": 1}}, 2, "resumed")
    result = nnctl(2, "train", "--resume", first, "--set", "train.epochs=2", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_weights(straight, first)


def test_a_batch_that_does_not_split_over_the_processes_is_one_line(tmp_path):
    config = tmp_path / "odd.yaml"
    config.write_text(yaml.safe_dump({**TOY, "data": {"type": "toy_blobs", "batch_size": 15}}))
    result = nnctl(2, "train", config, "--runs-dir", tmp_path / "runs")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: data.batch_size 15 cannot be split evenly over 2 processes; use a multiple of 2 "
                      "(it is the global batch, shared by all processes)"], result.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made
