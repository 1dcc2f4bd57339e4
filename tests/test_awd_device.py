"""Issue 14's techniques on a device (the `strict` stand-in of tests/strict_device.py; a real GPU
with NNCTL_TEST_DEVICE=gpu): every mask is drawn there and a resumed run equals an
uninterrupted one; without masks the device run equals the CPU run."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

import strict_device
from test_device import data_dir  # noqa: F401 (the fixture)
from test_device import DEVICE, assert_checkpoints_close, assert_records_close, float64, records, resume, train

TINY = yaml.safe_load((Path(__file__).parent.parent / "configs/tiny_lstm.yaml").read_text())
REGULARISERS = {"dropout": 0.2, "dropout_between": 0.1, "locked_dropout": True, "embedding_dropout": 0.1,
                "weight_drop": 0.3, "activation_reg": 1.0, "temporal_activation_reg": 0.5}


def awd(optimizer, masks=True, cell="lstm"):
    cfg = copy.deepcopy(TINY)
    cfg["data"].update({"variable_bptt": True, "min_bptt": 2, "max_bptt": 8})
    model = REGULARISERS if masks else {"dropout": 0.0, "activation_reg": 1.0, "temporal_activation_reg": 0.5}
    cfg["model"].update({**model, "cell": cell})
    cfg["optimizer"] = optimizer
    return float64(cfg, epochs=4)


NTASGD = {"type": "ntasgd", "lr": 5.0, "nonmono": 1}
ADAMW = {"type": "adamw", "lr": 0.01, "weight_decay": 0.1}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("optimizer", [NTASGD, ADAMW], ids=["ntasgd", "adamw"])
def test_device_masks_are_drawn_there_and_resume_exactly(optimizer, cell, data_dir, tmp_path):
    cfg = {**awd(optimizer, cell=cell), "device": DEVICE}
    draws = strict_device.StrictGenerator.draws
    straight = train(cfg, data_dir, tmp_path / "straight")
    if DEVICE == "strict":
        assert strict_device.StrictGenerator.draws > draws
    split = train(cfg, data_dir, tmp_path / "split", "train.epochs=2")
    resume(split, data_dir, "train.epochs=4")
    tol = 0.0 if DEVICE == "strict" else 1e-9
    assert_records_close(records(split), records(straight), tol)
    for which in ("last", "best"):
        assert_checkpoints_close(straight / f"checkpoints/{which}.npz", split / f"checkpoints/{which}.npz", tol)


@pytest.mark.parametrize("optimizer", [NTASGD, ADAMW], ids=["ntasgd", "adamw"])
def test_device_run_without_masks_equals_the_cpu_run(optimizer, data_dir, tmp_path):
    cfg = awd(optimizer, masks=False)
    cpu = train({**cfg, "device": "cpu"}, data_dir, tmp_path / "cpu")
    dev = train({**cfg, "device": DEVICE}, data_dir, tmp_path / "dev")
    assert_records_close(records(dev), records(cpu), 1e-6)
    for which in ("last", "best"):
        assert_checkpoints_close(cpu / f"checkpoints/{which}.npz", dev / f"checkpoints/{which}.npz", 1e-6)
