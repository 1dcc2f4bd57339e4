"""Hostile use: a mistake in the command line is one line naming the option and the fix.

Every command's integer and choice options get values out of range or of the wrong kind,
unknown options and commands, missing arguments, under terminal widths that Rich cannot
draw in (COLUMNS=0, 1, -3, "abc", ""): exit 2, one line that names the option (or
command) and points at `--help`. A closed stdout (`| head -1`) ends quietly with exit 0,
and `--split` is refused for word-vector runs.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import assert_one_error_line, few, run_batch, train_runs

WIDTHS = ["0", "1", "-3", "abc", "", "200"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    return root, *train_runs(root, "w2v", "toy", "lm")


def bad_option_cases(rand, root, w2v, toy):
    """(args, the text the line must name)."""
    ints = [  # (command prefix, option, the smallest allowed value or None, the largest or None)
        (["generate", toy], "--length", 0, 1_000_000), (["generate", toy], "--top-k", 1, None),
        (["generate", toy], "--num-samples", 1, 10_000), (["generate", toy], "--seed", 0, None),
        (["similar", w2v, "cat"], "--top", 1, None), (["analogy", w2v, "a", "b", "c"], "--top", 1, None),
        (["plot", toy], "--dpi", 20, 600), (["plot-vectors", w2v], "--top", 2, None),
        (["eval", toy], "--batch-size", 1, None), (["gradcheck", root / "toy.yaml"], "--max-elements", None, None),
    ]
    cases = []
    for prefix, option, low, high in ints:
        values = [rand.choice(["x", "1.5", "", "1e3", "--", "nan"])]
        if low is not None:
            values.append(str(low - rand.randint(1, 10**6)))
        if high is not None:
            values.append(str(high + rand.randint(1, 10**12)))
        cases += [([*prefix, option, value], option) for value in values]
    cases += [(["export", w2v, "-o", root / "x", "--format", rand.choice(["bogus", "NPY", "txt", ""])], "--format"),
              (["generate", toy, "--temperature", "hot"], "--temperature"), (["generate", toy, "--top-p", "2"], "--top-p"),
              (["eval", toy, "--bogus"], "--bogus"), (["train", "--sett", "a=1"], "--sett"),
              ([rand.choice(["bogus", "trian", "evaluate", "Train"])], "No such command"),
              (["config", "shw", "x"], "No such command"), (["eval"], "Missing argument"),
              (["analogy", w2v, "a"], "Missing argument"), (["export", w2v], "--output")]
    return cases


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_option_errors_are_one_line_at_any_width(rand, runs):
    root, w2v, toy, lm = runs
    planned = [(args, name, width) for args, name in bad_option_cases(rand, root, w2v, toy)
               for width in rand.sample(WIDTHS, 2)]
    planned += [(["eval", w2v, "--split", split], "--split", "0") for split in ("test", "bogus", "valid")]
    results = run_batch([{"args": args, "env": {"COLUMNS": width}} for args, _, width in planned])
    for (args, name, _), result in zip(planned, results):
        line = assert_one_error_line(result, 2, name)
        assert "--help" in line or name == "--split", line
    assert len(planned) >= 60


def test_a_closed_pipe_ends_quietly(runs):
    root, w2v, toy, lm = runs
    commands = [["runs", root], ["config", "show", root / "toy.yaml"], ["compare", toy, toy], ["similar", w2v, "cat"],
                ["eval", toy], ["generate", lm, "--length", "300"]]
    results = run_batch([{"args": args, "closed_stdout": True} for args in commands])
    for result in results:
        assert result.code == 0 and result.stderr == "", str(result)
    # and in a process of its own, reading stops after one line
    child = subprocess.run(f"{sys.executable} -m nnctl generate {lm} --length 300 --num-samples 40 | head -c 10",
                           shell=True, capture_output=True, text=True, timeout=60)
    assert child.stderr == "", child.stderr
