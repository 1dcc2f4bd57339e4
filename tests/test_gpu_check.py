"""benchmarks/gpu_check.py's host side, cheaply: tiny sizes on the stand-in device, peers on the CPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl import backend
from test_images import write_tiny_set

BENCH = Path(__file__).parent.parent / "benchmarks"
WORDS = "the cat sat on the mat . a dog ran to the park .".split()


def gpu_check():
    sys.path[:0] = [str(BENCH)]
    spec = importlib.util.spec_from_file_location("gpu_check", BENCH / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "ptb").mkdir()
    for split, lines in (("train", 40), ("valid", 10), ("test", 10)):
        text = "\n".join(" ".join(rng.choice(WORDS, size=10)) for _ in range(lines))
        (tmp_path / "ptb" / f"ptb.{split}.txt").write_text(text + "\n")
    write_tiny_set(tmp_path / "fashion-mnist")
    return tmp_path


def test_the_check_runs_end_to_end_on_the_stand_in(tiny_data, tmp_path, capsys):
    rc = gpu_check().main(["--data-dir", str(tiny_data), "--out", str(tmp_path / "out"), "--device", "strict",
                           "--tiny", "--skip-tests", "--no-peers", "--steps", "3", "--eval-batches", "2",
                           "--warmup", "1", "--seconds", "0.05", "--eval-seconds", "0.05"])
    assert rc == 0, capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    text = (tmp_path / "out" / "gpu_check.txt").read_text()
    for name in ("lm_small", "lm_medium"):  # the stand-in computes what the CPU does: equal losses
        c = report["losses"][name]
        assert c["agree"] and c["max_rel_diff"] < 1e-6 and len(c["strict"]["train_losses"]) == 3
        assert f"losses {name}: 3 steps" in text
    for name, unit in (("lm_small", "tokens"), ("lm_medium", "tokens"), ("cnn", "images")):
        assert report["speed"][name]["nnctl"]["train_per_s"] > 0 and report["speed"][name]["unit"] == unit
        assert report["speed"][name]["torch"] == {"skipped": "--no-peers"}
    assert "lm_medium" in text and "torch: --no-peers" in text


def test_the_peer_gets_the_same_work_on_the_asked_device(tiny_data, monkeypatch):
    check = gpu_check()
    monkeypatch.setattr(check, "torch_installed", lambda: True)
    cfg = check.load_config("lm_small", "cpu", tiny=True)
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"] = command
        return subprocess.CompletedProcess(command, 0, 'RESULT {"train_per_s": 5.0, "eval_per_s": 9.0}\n', "")

    monkeypatch.setattr(check.subprocess, "run", fake_run)
    result = check.peer_speed("lm_small", cfg, 2, tiny_data, "cpu", 1, 0.1, 0.1, timeout=10)
    assert result == {"train_per_s": 5.0, "eval_per_s": 9.0}
    command = " ".join(seen["command"])
    assert "peers/lm_torch.py" in command and command.endswith("--device cpu")
    assert "--hidden 16 " in command and "--batch-size 4 " in command and "--bptt 5 " in command


def test_without_a_gpu_it_says_why_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", ModuleNotFoundError("No module named 'cupy'", name="cupy"))
    assert gpu_check().main(["--data-dir", str(tmp_path)]) == 2
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and out.startswith("gpu_check: device: gpu needs CuPy")
    assert "nnctl[gpu-cuda13]" in out
