"""Hostile use: text from the user (a word, a path, a run name) is never read as Rich markup.

Hypothesis draws strings made of markup's own characters ([, ], /, =, #, spaces); each is
used as a query word, a file name, a run name and a prompt word, through the real CLI,
and must come back verbatim: never a MarkupError, never cut.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import TOY, assert_one_error_line, few, run_batch, train_runs, write_yaml

MARKUP = st.text(alphabet="[]/=#abx:", min_size=1, max_size=12).filter(lambda s: "[" in s)
FIXED = ["[/x]", "[bold]", "lstm[v2]", "[/]", "[red]x[/red]", "[link=x]y", "a[b]c", "[[x]]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A word-vector run and a language-model run, trained once for the module."""
    root = tmp_path_factory.mktemp("markup")
    return root, *train_runs(root, "w2v", "lm")


def cases_for(text: str, root, w2v, lm) -> list[tuple[dict, int, str]]:
    """(case, expected exit code, text that must appear verbatim on stderr)."""
    missing = root / f"{text}.yaml"
    return [
        ({"args": ["similar", w2v, text]}, 5, text),  # an unknown word
        ({"args": ["analogy", w2v, text, "cat", "dog"]}, 5, text),
        ({"args": ["config", "show", missing]}, 2, str(missing)),  # a missing file, named as typed
        ({"args": ["eval", w2v, "--analogies", root / f"{text}.txt"]}, 3, str(root / f"{text}.txt")),
        ({"args": ["eval", root / text]}, 4, str(root / text)),
        ({"args": ["generate", lm, "--prompt", f"the {text}", "--length", "2", "--seed", "1"]}, 0, text),  # a warning
        ({"args": ["train", "--resume", root / text]}, 2, str(root / text)),
    ]


def check(texts: list[str], runs) -> int:
    root, w2v, lm = runs
    planned = [c for text in texts for c in cases_for(text, root, w2v, lm)]
    results = run_batch([case for case, _, _ in planned])
    for (case, code, expected), result in zip(planned, results):
        if code == 0:  # generate: the unknown word comes back verbatim in the one warning line
            assert result.code == 0 and "Traceback" not in result.stderr, str(result)
            assert result.stderr.count("\n") == 1 and expected in result.stderr, str(result)
        else:
            assert_one_error_line(result, code, expected)
    return len(planned)


@few(1)
@given(texts=st.lists(MARKUP, min_size=8, max_size=8, unique=True))
def test_markup_strings_come_back_verbatim(texts, runs):
    """8 fixed and 8 generated strings, 7 commands each: 112 cases in one child."""
    assert check(FIXED + [t for t in texts if t not in FIXED], runs) <= 7 * 16


@few(1)
@given(names=st.lists(st.text(alphabet="[]=#ab_-" + string.digits, min_size=1, max_size=10)
                      .filter(lambda s: "[" in s and not s.startswith((".", "-"))), min_size=4, max_size=4, unique=True))
def test_run_names_with_brackets_are_printed_and_listed_verbatim(names, tmp_path_factory):
    """A run named `lstm[v2]`: its folder, the `runs` table and a config error all say it as it is;
    and the GPU install hint keeps its `nnctl[gpu]`."""
    root = tmp_path_factory.mktemp("names")
    cases = []
    for name in names:
        config = write_yaml(root / f"{name}.yaml", {**TOY, "name": name, "train": {"epochs": 1}})
        cases.append({"args": ["train", config, "--runs-dir", root / "runs"]})
        cases.append({"args": ["train", config, "--runs-dir", root / "runs", "--set", "train.epochs=0"]})
    cases.append({"args": ["runs", root / "runs"]})
    gpu = write_yaml(root / "gpu.yaml", {**TOY, "device": "gpu"})
    cases.append({"args": ["train", gpu, "--runs-dir", root / "gpu-runs"], "env": {"CUDA_VISIBLE_DEVICES": ""}})
    results = run_batch(cases)
    for name, trained, bad in zip(names, results[0:-2:2], results[1:-2:2]):
        assert trained.code == 0 and f"{root / 'runs' / name}" in trained.stdout, str(trained)
        assert_one_error_line(bad, 2, f"{name}.yaml")
    table, gpu_result = results[-2:]
    assert table.code == 0, str(table)
    for name in names:
        assert name in table.stdout, (name, table.stdout)
    if gpu_result.code != 0:  # (a machine with a GPU trains)
        line = assert_one_error_line(gpu_result, 2)
        assert "pip install" not in line or "nnctl[gpu]" in line, line
        assert not (root / "gpu-runs").exists()
