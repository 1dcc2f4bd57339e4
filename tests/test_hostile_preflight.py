"""Hostile use: every value that would crash a run later is refused before any run folder exists.

Non-finite numbers at every float key, evaluation batch sizes too large for the data, and
schedules whose learning rate overflows, on a new run (exit 2, no `runs/` at all) and on
`--resume` of a finished run (exit 2, and not one byte of the run folder changes: it is
still `finished`, its config is not rewritten).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import TOY, assert_one_error_line, few, lm_config, only_run, run_batch, tree_digest, write_yaml

NON_FINITE = [".nan", ".inf", "-.inf", "1e999", "-1e999", ".NaN"]
FLOAT_KEYS = ["train.clip_grad_norm", "model.scale", "optimizer.lr", "model.dropout", "optimizer.momentum",
              "data.noise"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished language-model run (its data is long enough for one batch size, not for 1000)."""
    root = tmp_path_factory.mktemp("preflight")
    config = write_yaml(root / "lm.yaml", lm_config(root))
    (result,) = run_batch([{"args": ["train", config, "--runs-dir", root / "runs", "-q"]}])
    assert result.code == 0, str(result)
    return root, config, only_run(root / "runs")


def overflowing_schedules(factor_exponent: int, epochs: int) -> list[str]:
    return ["--set", "schedule.type=step", "--set", f"schedule.factor=1e{factor_exponent}",
            "--set", f"train.epochs={epochs}"]


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_values_that_crash_later_are_refused_before_any_folder(rand, finished, tmp_path_factory):
    schedules = []
    while len(schedules) < 10:  # factor 10^e for `epochs` epochs: lr * factor ** (epochs - 1) overflows
        exponent, epochs = rand.randint(20, 300), rand.randint(2, 200)
        if exponent * (epochs - 1) > 320:
            schedules.append((exponent, epochs))
    root, lm, run = finished
    toy = write_yaml(root / "toy.yaml", TOY)
    new_runs = tmp_path_factory.mktemp("none") / "runs"
    before = tree_digest(run)
    cases = []
    for key in FLOAT_KEYS:  # every float key of the toy experiment, every non-finite spelling
        for value in NON_FINITE:
            cases.append(({"args": ["train", toy, "--runs-dir", new_runs, "--set", f"{key}={value}"]}, key))
    for value in NON_FINITE[:3]:
        cases.append(({"args": ["train", lm, "--runs-dir", new_runs, "--set", f"model.init_scale={value}"]},
                      "model.init_scale"))
        cases.append(({"args": ["train", "--resume", run, "--set", f"train.clip_grad_norm={value}"]},
                      "train.clip_grad_norm"))
    for size in (1000, 10**6, 10**12):
        for args in (["train", lm, "--runs-dir", new_runs], ["train", "--resume", run, "--set", "train.epochs=3"]):
            cases.append(({"args": [*args, "--set", f"train.eval_batch_size={size}"]}, "train.eval_batch_size"))
    for exponent, epochs in schedules:  # lr * factor ** (epochs - 1) is past float's range
        cases.append(({"args": ["train", toy, "--runs-dir", new_runs, *overflowing_schedules(exponent, epochs)]},
                      "schedule"))
    results = run_batch([case for case, _ in cases])
    for (_, key), result in zip(cases, results):
        assert_one_error_line(result, 2, key)
    assert not new_runs.exists()
    assert tree_digest(run) == before  # still finished, config.yaml as it was
    assert len(cases) >= 55
