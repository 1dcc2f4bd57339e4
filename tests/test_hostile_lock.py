"""Hostile use: one run, one trainer.

While a process trains a run, every other `--resume` of it (named in any spelling: the
path, with a trailing slash, through `.`, through a symlink; with or without --set) is
exit 1 with one line naming the holder, and changes nothing; after the trainer is killed
(no chance to clean up), the stale lock does not block the next resume.
"""

from __future__ import annotations

import json
import os
import signal

from hostile_cli import TOY, assert_one_error_line, nnctl_process, only_run, run_batch, write_yaml


def spellings(tmp_path, run):
    link = tmp_path / "link"
    link.symlink_to(run, target_is_directory=True)
    relative = os.path.relpath(run, tmp_path)
    return [str(run), f"{run}/", str(run / "." / "checkpoints" / ".."), str(link), relative, f"./{relative}/"]


def test_one_run_one_trainer_and_no_stale_lock(tmp_path):
    config = write_yaml(tmp_path / "toy.yaml", {**TOY, "train": {"epochs": 1}})
    (result,) = run_batch([{"args": ["train", config, "--runs-dir", tmp_path / "runs", "-q"]}])
    assert result.code == 0, str(result)
    run = only_run(tmp_path / "runs")
    process = nnctl_process(["train", "--resume", run, "--set", "train.epochs=1000000", "--set",
                             "train.log_every=1"])
    try:
        process.stdout.readline()  # "training ...": it holds the lock from here on
        second_trainers(tmp_path, run, process)
        process.kill()  # SIGKILL: no handler runs, the lock file stays behind
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (run / ".lock").read_text().strip() == str(process.pid)
    epoch = json.loads((run / "status.json").read_text()).get("progress", {}).get("epoch", 1)
    (result,) = run_batch([{"args": ["train", "--resume", run, "--set", f"train.epochs={max(epoch, 1) + 1}", "-q"]}])
    assert result.code == 0, str(result)  # the stale lock did not block
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


def second_trainers(tmp_path, run, process):
    cases = []
    for path in spellings(tmp_path, run):
        for extra in ([], ["--set", "train.epochs=5"], ["--set", "train.clip_grad_norm=1", "-q"]):
            cases.append({"args": ["train", "--resume", path, *extra], "cwd": tmp_path})
    os.kill(process.pid, signal.SIGSTOP)  # the holder pauses, so the folder stands still while we look
    try:
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        results = run_batch(cases)
        after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    finally:
        os.kill(process.pid, signal.SIGCONT)
    for result in results:
        assert_one_error_line(result, 1, "is training this run now", str(process.pid))
    assert after == before
    assert len(cases) == 18
