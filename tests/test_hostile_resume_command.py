"""Hostile use: the resume command printed at Ctrl-C resumes, as printed.

Runs whose data is found through --data-dir, with run names and folders holding brackets,
spaces, quotes and `$`, are interrupted; the printed command is split as a shell would and
run (with `--set train.epochs` so that it ends), and must finish the run. The command
itself is also checked by hypothesis for any folder name: a shell reads back exactly
the words nnctl meant.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import SENTENCES, few, nnctl_process, write_yaml
from nnctl.run import resume_command

AWKWARD = [("lstm[v2] it's \"b\";x=1", "data [x*] $HOME q'uote")]  # brackets, quotes, spaces, $, ;, *


def start(tmp_path: Path, name: str, data_name: str) -> tuple[subprocess.Popen, Path]:
    data_dir = tmp_path / data_name
    data_dir.mkdir()
    for split in ("train", "valid", "test"):
        (data_dir / f"{split}.txt").write_text(SENTENCES * 20)
    cfg = {"name": name, "data": {"type": "text", "train": "train.txt", "valid": "valid.txt", "test": "test.txt",
                                  "batch_size": 2, "bptt": 3},
           "model": {"type": "lstm_lm", "embed_dim": 4, "hidden_dim": 4, "num_layers": 1},
           "optimizer": {"type": "sgd", "lr": 0.5}, "train": {"epochs": 100000, "log_every": 1}}
    config = write_yaml(tmp_path / f"{len(name)}-{abs(hash(name))}.yaml", cfg)
    # from a folder where train.txt is *not*: only --data-dir finds the data
    process = nnctl_process(["train", config, "--data-dir", data_dir, "--runs-dir", tmp_path / "runs"],
                            cwd=tmp_path)
    return process, data_dir


def test_the_printed_resume_command_resumes(tmp_path):
    cases, resumes = [], []
    try:
        for i, (name, data_name) in enumerate(AWKWARD):
            folder = tmp_path / str(i)
            folder.mkdir()
            cases.append((folder, *start(folder, name, data_name)))
        interrupt_and_resume(cases, resumes)
    finally:
        for process in [c[1] for c in cases] + [r[1] for r in resumes]:
            if process.poll() is None:
                process.kill()
                process.wait()


def interrupt_and_resume(cases, resumes):
    for folder, process, _ in cases:
        process.stdout.readline()  # "training ..." : the run folder exists and training has begun
        process.stdout.readline()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130 and "Traceback" not in err, (out, err)
        (line,) = [x for x in out.splitlines() if x.startswith("resume with: ")]
        words = shlex.split(line.removeprefix("resume with: "))
        assert words[:3] == ["nnctl", "train", "--resume"] and "--data-dir" in words, words
        run = Path(folder / words[3]) if not Path(words[3]).is_absolute() else Path(words[3])
        assert run.is_dir(), (run, line)
        epoch = json.loads((run / "status.json").read_text())["progress"]["epoch"]
        command = [sys.executable, "-m", "nnctl", *words[1:], "--set", f"train.epochs={epoch + 1}", "-q"]
        resumes.append((run, subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})))
    for run, process in resumes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (run, out, err)
        assert json.loads((run / "status.json").read_text())["state"] == "finished"


@few(300)
@given(run=st.text(min_size=1, max_size=30), data=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
       processes=st.integers(1, 64))
def test_the_resume_command_reads_back_as_the_same_words(run, data, processes):
    command = resume_command(Path(run), None if data is None else Path(data), processes)
    words = shlex.split(command)
    expected = ["mpirun", "-n", str(processes)] if processes > 1 else []
    expected += ["nnctl", "train", "--resume", str(Path(run))] + ([] if data is None else ["--data-dir", str(Path(data))])
    assert words == expected
