"""Shared fixtures: the toy experiment (tests/toyparts.py) and helpers to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import toyparts  # noqa: F401  registers toy_blobs / toy_softmax
import strict_device
from nnctl import threads

strict_device.register()  # `device: strict`, the GPU stand-in (tests/strict_device.py)

TESTS = Path(__file__).parent

TOY_CONFIG = {
    "name": "toy",
    "seed": 3,
    "data": {"type": "toy_blobs", "batch_size": 16},
    "model": {"type": "toy_softmax"},
    "optimizer": {"type": "sgd", "lr": 0.5},
    "train": {"epochs": 3},
}


@pytest.fixture(autouse=True)
def thread_count_as_it_was():
    """Every test leaves nnctl's thread count as it found it. A run with `train.threads`, or a
    tuner that switched, sets the count for the whole process, and the next in-process run's
    tuner starts from it: its records' `threads` would then differ from a fresh process's."""
    before = threads._chosen
    yield
    if threads._chosen != before:
        threads._chosen = None  # num_threads(): then a variable's count, else the cores, as at start
        threads.use_threads(before if before is not None else threads.num_threads())
        threads._chosen = before


@pytest.fixture
def toy_config(tmp_path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(TOY_CONFIG, sort_keys=False))
    return path


def cli_subprocess(args: list[str], **popen_kwargs) -> subprocess.Popen:
    """`nnctl ARGS` in a child process that knows the toy parts (for signal tests)."""
    code = ("import sys; sys.path.insert(0, %r); import toyparts; from nnctl.cli import main; "
            "sys.argv = ['nnctl'] + sys.argv[1:]; main()") % str(TESTS)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs)


SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "the stock market fell today"]


def write_sentence_corpus(root: Path, lines: dict[str, int], seed: int = 0) -> Path:
    """train.txt / valid.txt / test.txt of `lines[split]` sentences drawn from three, for the tiny LM configs."""
    rng = np.random.default_rng(seed)
    for split, count in lines.items():
        text = "\n".join(SENTENCES[i] for i in rng.integers(0, len(SENTENCES), count)) + "\n"
        (root / f"{split}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def step_products_made(monkeypatch):
    """A list that grows by one for every StepProduct the recurrent layers make (the per-step
    copy of Wh, nnctl/layers/step_product.py): to count the copies that weights_fixed saves."""
    from nnctl.layers import step_product

    made: list[int] = []
    real = step_product.StepProduct
    monkeypatch.setattr(step_product, "StepProduct", lambda *a, **k: made.append(1) or real(*a, **k))
    return made
