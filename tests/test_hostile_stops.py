"""Hostile use: stops are honoured and leave no debris.

- Ctrl-C at a random instant of a run (hypothesis draws the delays, so they fall before,
  during and after the run folder is made): every run folder left behind has a
  checkpoint to resume from and says `interrupted` or `finished`; none is `running` or
  unknown, none has an empty checkpoints/.
- Ctrl-C during the final test evaluation: exit 130, `interrupted`, no test record; the
  resume runs the test only.
- A run that stopped early, or finished its epochs, is not trained again by `--resume`
  (one line, exit 1, nothing changed) unless the option that stopped it is changed.
- A full disk (a file-size limit) while the run folder is made: one line naming the file
  and what to do, exit 1, no folder.
"""

from __future__ import annotations

import json
import signal

from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import (TOY, assert_one_error_line, few, lm_config, nnctl_process, only_run, run_batch,
                         text_data, tree_digest, write_yaml)


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_ctrl_c_at_any_instant_leaves_a_resumable_run_or_none(rand, tmp_path_factory):
    delays = [rand.uniform(0.02, 0.5) for _ in range(7)]
    root = tmp_path_factory.mktemp("sigint")
    config = write_yaml(root / "toy.yaml", {**TOY, "train": {"epochs": 15}})
    runs = root / "runs"
    delays = delays + [0.07 * i for i in range(1, 8)]  # and a fixed spread over the whole run
    results = run_batch([{"args": ["train", config, "--runs-dir", runs, "-q"], "sigint_after": d} for d in delays])
    for result in results:
        assert result.code in (130, 0), str(result)
        assert "Traceback" not in result.stderr, str(result)
    folders = [p for p in runs.glob("*/*")] if runs.exists() else []
    assert not (runs.exists() and list(runs.glob("*/.*")))  # no hidden half-made folder
    for folder in folders:
        state = json.loads((folder / "status.json").read_text())["state"]
        assert state in ("interrupted", "finished"), (folder, state)
        assert (folder / "checkpoints" / "last.npz").is_file(), folder
        assert not folder.name.startswith(".")
    (listing,) = run_batch([{"args": ["runs", runs]}]) if folders else [None]
    if listing is not None:
        assert "unknown" not in listing.stdout and "running" not in listing.stdout, listing.stdout


def test_ctrl_c_during_the_final_test_is_honoured(tmp_path):
    cfg = lm_config(tmp_path)
    cfg["data"].update(text_data(tmp_path / "data", repeat=4, test_repeat=900))  # a long test split
    config = write_yaml(tmp_path / "lm.yaml", cfg)
    process = nnctl_process(["train", config, "--runs-dir", tmp_path / "runs"])
    try:
        for line in process.stdout:
            if " valid " in line:  # the last epoch's validation: what follows is the test
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "Traceback" not in err, (out, err)
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any(r["split"] == "test" for r in records)
    (resumed,) = run_batch([{"args": ["train", "--resume", run, "-q"]}])
    assert resumed.code == 0, str(resumed)
    after = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in after] == [r["split"] for r in records] + ["test"]  # the test only
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_finished_and_early_stopped_runs_are_not_trained_again(tmp_path):
    cases, runs = [], {}
    for patience in (1, 2):  # lr so small that no epoch improves: early stopping ends each run
        config = write_yaml(tmp_path / f"e{patience}.yaml", {
            **TOY, "name": f"early{patience}", "optimizer": {"type": "sgd", "lr": 1e-12},
            "train": {"epochs": 30, "early_stopping": patience}})
        cases.append({"args": ["train", config, "--runs-dir", tmp_path / "runs", "-q"]})
    finished = write_yaml(tmp_path / "done.yaml", {**TOY, "name": "done"})
    cases.append({"args": ["train", finished, "--runs-dir", tmp_path / "runs", "-q"]})
    assert all(r.code == 0 for r in run_batch(cases))
    for name in ("early1", "early2", "done"):
        runs[name] = next((tmp_path / "runs" / name).iterdir())
    refused = []
    for name in ("early1", "early2"):
        for extra in ([], ["--set", "train.epochs=50"], ["--set", "train.clip_grad_norm=1"],
                      ["--set", "train.early_stopping=1"]):
            refused.append((runs[name], "early stopping", ["train", "--resume", runs[name], *extra]))
    for extra in ([], ["--set", "train.epochs=2"], ["--set", "train.epochs=1"], ["--set", "train.log_every=3"]):
        refused.append((runs["done"], "finished its", ["train", "--resume", runs["done"], *extra]))
    before = {run: tree_digest(run) for run, _, _ in refused}
    results = run_batch([{"args": args} for _, _, args in refused])
    for (run, expected, _), result in zip(refused, results):
        assert_one_error_line(result, 1, "already finished", expected)
        assert tree_digest(run) == before[run]
    on = run_batch([{"args": ["train", "--resume", runs["early1"], "--set", "train.early_stopping=null",
                              "--set", "train.epochs=4", "-q"]},
                    {"args": ["train", "--resume", runs["done"], "--set", "train.epochs=3", "-q"]}])
    assert all(r.code == 0 for r in on), [str(r) for r in on]
    assert len(refused) == 12


def test_a_full_disk_while_the_run_folder_is_made_leaves_nothing(tmp_path):
    config = write_yaml(tmp_path / "lm.yaml", lm_config(tmp_path))
    limits = (0, 1, 64, 200, 400)
    results = run_batch([{"args": ["train", config, "--runs-dir", tmp_path / "runs" / str(limit)], "fsize": limit}
                         for limit in limits])
    for result in results:
        line = assert_one_error_line(result, 1, "no space left", "free space")
        assert ".tmp" not in line and str(tmp_path / "runs") in line, line
    assert not (tmp_path / "runs").exists()
