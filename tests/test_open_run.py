"""One way to open a run (nnctl/open_run.py): every command that reads a trained model accepts
`runs/<name>` (its latest run), a run folder and a .npz, and says the same mistake the same way."""

from __future__ import annotations

import pytest

from hostile_cli import assert_one_error_line, run_batch, train_runs
from nnctl.errors import CheckpointError
from nnctl.open_run import NEEDS, find_checkpoint, open_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: {"w2v": cbow, "toy": a softmax classifier, "lm": lstm_lm} run folders."""
    root = tmp_path_factory.mktemp("open_run")
    return dict(zip(("w2v", "toy", "lm"), train_runs(root, "w2v", "toy", "lm")))


def forms(run):
    """The three ways to name one run."""
    return {"runs/<name>": run.parent, "run folder": run, ".npz": run / "checkpoints" / "best.npz"}


def command(name, path, tmp_path):
    return {"eval": ["eval", path, "--split", "test"],
            "generate": ["generate", path, "--prompt", "the", "-n", "3", "--seed", "1"],
            "similar": ["similar", path, "cat", "-k", "2"],
            "export": ["export", path, "-o", tmp_path / "vectors.txt"]}[name]


KIND_OF = {"eval": "lm", "generate": "lm", "similar": "w2v", "export": "w2v"}


def test_every_command_accepts_all_three_forms_of_a_run(runs, tmp_path):
    cases = [(name, form, command(name, path, tmp_path))
             for name, kind in KIND_OF.items() for form, path in forms(runs[kind]).items()]
    results = run_batch([{"args": args} for _, _, args in cases])
    for (name, form, _), result in zip(cases, results):
        assert result.code == 0, (name, form, str(result))
    for name in KIND_OF:  # the same run, however it is named, gives the same answer
        outputs = {result.stdout for (case, _, _), result in zip(cases, results) if case == name}
        assert len(outputs) == 1, (name, outputs)


def test_runs_name_means_the_latest_run(runs, tmp_path):
    older = runs["lm"].parent / "19990101-000000"  # a timestamp that sorts before the real run
    (older / "checkpoints").mkdir(parents=True)
    (older / "config.yaml").write_text("name: old\n")
    opened = open_run(runs["lm"].parent, needs="language model")
    assert opened.path == runs["lm"] / "checkpoints" / "best.npz"
    assert opened.vocab is not None and opened.config["model"]["type"] == "lstm_lm"
    assert find_checkpoint(runs["lm"], which="last") == runs["lm"] / "checkpoints" / "last.npz"


@pytest.mark.parametrize("args, lacks", [
    (["similar", "{run}", "cat"], "has no word vectors"),
    (["analogy", "{run}", "a", "b", "c"], "has no word vectors"),
    (["export", "{run}", "-o", "{tmp}/v.txt"], "has no word vectors"),
    (["plot-vectors", "{run}", "--words", "a", "b", "-o", "{tmp}/w.png"], "has no word vectors"),
    (["generate", "{run}", "--prompt", "the"], "is not a language model"),
])
def test_a_run_of_the_wrong_kind_is_one_line_and_the_same_exit_code(runs, tmp_path, args, lacks):
    args = [a.format(run=runs["toy"], tmp=tmp_path) for a in args]
    (result,) = run_batch([{"args": args}])
    line = assert_one_error_line(result, CheckpointError.exit_code, f"{runs['toy']}: model 'toy_softmax' {lacks}")
    need = next(n for n in NEEDS.values() if n.lacks == lacks)
    assert line.endswith(need.fix)  # one wording per mistake, whichever command meets it


def test_generate_on_word_vectors_says_so(runs):
    (result,) = run_batch([{"args": ["generate", runs["w2v"], "--prompt", "the"]}])
    assert_one_error_line(result, CheckpointError.exit_code, "model 'cbow' is not a language model")


@pytest.mark.parametrize("name", ["eval", "generate", "similar", "export", "plot-vectors"])
def test_a_missing_path_is_one_line(tmp_path, name):
    missing = tmp_path / "nowhere"
    args = {"plot-vectors": ["plot-vectors", missing, "--words", "a", "b"]}.get(name) or command(name, missing, tmp_path)
    (result,) = run_batch([{"args": args}])
    assert_one_error_line(result, CheckpointError.exit_code, f"{missing}: no such run folder or checkpoint file")


def test_a_folder_without_runs_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (result,) = run_batch([{"args": ["eval", tmp_path / "empty"]}])
    assert_one_error_line(result, CheckpointError.exit_code, "not a run folder")


def test_k_means_how_many_in_every_command_and_old_names_still_work(runs, tmp_path):
    w2v = runs["w2v"]
    cases = [["similar", w2v, "cat", "-k", "2"], ["similar", w2v, "cat", "--top", "2"],
             ["analogy", w2v, "cat", "dog", "mat", "-k", "2"], ["analogy", w2v, "cat", "dog", "mat", "--top", "2"],
             ["plot-vectors", w2v, "-k", "3", "-o", tmp_path / "k.png"],
             ["plot-vectors", w2v, "--top", "3", "-o", tmp_path / "top.png"]]
    results = run_batch([{"args": args} for args in cases])
    for result in results:
        assert result.code == 0, str(result)
    for result in results[:4]:  # a table row per answer: "#", word, cosine
        rows = [line for line in result.stdout.splitlines() if line.strip("│ ")[:1].isdigit()]
        assert len(rows) == 2, str(result)
    for result in results[4:]:
        assert "3 words" in result.stdout or "3 word vectors" in result.stdout, str(result)


def test_an_unknown_need_is_a_programming_error(runs):
    with pytest.raises(ValueError, match="needs='images'"):
        open_run(runs["toy"], needs="images")
