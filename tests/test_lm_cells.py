"""The language model with each recurrent cell: `cell: lstm | gru | rnn`, every other option
unchanged. Whole-model gradient checks, learning, checkpoints and configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nnctl import checkpoint
from conftest import write_sentence_corpus
from nnctl.cli import app
from nnctl.errors import ConfigError
from nnctl.models import MODELS
from nnctl.models.lstm_lm import LSTMLanguageModel
from nnctl.open_run import rebuild_model
from test_lstm import LossOf, check

CONFIGS = Path(__file__).parent.parent / "configs"
runner = CliRunner(env={"COLUMNS": "200"})
CELL_OPTIONS = [  # (tie, dropout, layers, sparse)
    (True, 0.0, 2, False), (False, 0.3, 2, False), (False, 0.0, 1, True),
]


def tiny_model(cell, tie=True, dropout=0.0, layers=2, sparse=False, dtype=np.float64):
    return LSTMLanguageModel(embed_dim=4, hidden_dim=4, num_layers=layers, dropout=dropout, tie_weights=tie,
                             init_scale=0.5, sparse_embedding=sparse, cell=cell, vocab_size=7,
                             rng=np.random.default_rng(0), dtype=dtype)


def copy_state(state):
    return [tuple(s.copy() for s in layer) if isinstance(layer, tuple) else layer.copy() for layer in state]


@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize("tie, dropout, layers, sparse", CELL_OPTIONS, ids=["tied", "untied_dropout", "sparse"])
def test_whole_model_gradient_over_a_carried_window(cell, tie, dropout, layers, sparse):
    model = tiny_model(cell, tie, dropout, layers, sparse)
    ids = np.random.default_rng(1).integers(0, 7, (2, 6))
    _, state = model.loss((ids[:, :3], ids[:, 1:4]), None)
    check(LossOf(model, ids[:, 1:], copy_state(state)), ids[:, :5])


def test_parameter_names_follow_the_cell_and_lstm_keeps_its_old_names():
    """Checkpoints saved before `cell` existed name the LSTM layers 'lstms.N'; they still load."""
    assert {n.split(".")[0] for n in tiny_model("lstm").named_params()} == {"embedding", "lstms", "decoder"}
    assert "grus.1.bh_n" in tiny_model("gru").named_params()
    assert "rnns.0.Wh" in tiny_model("rnn").named_params()
    assert [type(c).__name__ for c in tiny_model("gru").cells] == ["GRU", "GRU"]


def test_an_unknown_cell_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"model\.cell: 'gur' is not allowed \(did you mean 'gru'\?\)"):
        MODELS.build({"type": "lstm_lm", "cell": "gur"}, "model", vocab_size=10,
                      rng=np.random.default_rng(0), dtype=np.float32)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_each_cell_learns_a_repetitive_corpus(cell):
    """SGD on a cyclic 'sentence' stream: perplexity falls at least 4-fold in 150 steps."""
    from nnctl.data.lm import batchify, windows

    stream = np.tile(np.array([0, 1, 2, 3, 4, 5, 1, 6, 2]), 60)
    model = LSTMLanguageModel(embed_dim=16, hidden_dim=16, num_layers=1, dropout=0.0, tie_weights=True,
                              cell=cell, vocab_size=7, rng=np.random.default_rng(0))

    def perplexity():
        model.eval()
        total = count = 0
        state = None
        for x, y in windows(batchify(stream, 4), 9):
            out, state = model.loss((x, y), state)
            total, count = total + out.loss_sum, count + out.count
        model.train()
        return float(np.exp(total / count))

    before = perplexity()
    for _ in range(10):
        state = None
        for x, y in windows(batchify(stream, 4), 9):
            model.zero_grad()
            _, state = model.loss((x, y), state)
            model.backward()
            for p in model.params():
                p.data -= np.float32(2.0) * p.grad
    after = perplexity()
    assert before > 5
    assert after < before / 4, (before, after)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_sentence_corpus(tmp_path_factory.mktemp("cells_corpus"), {"train": 120, "valid": 20, "test": 20})


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_train_resume_eval_and_generate_with_each_cell(corpus, tmp_path, cell):
    """A run of the tiny config with another cell: its checkpoint rebuilds that cell, an
    interrupted-and-resumed run's weights equal an uninterrupted one's, generate works."""
    def train(*extra):
        return runner.invoke(app, ["train", str(CONFIGS / "tiny_lstm.yaml"), "--data-dir", str(corpus), "-q",
                                   "--set", f"model.cell={cell}", *extra], catch_exceptions=False)

    whole = train("--runs-dir", str(tmp_path / "whole"))
    assert whole.exit_code == 0, whole.output
    (run,) = (tmp_path / "whole" / "tiny_lstm").iterdir()
    ckpt = checkpoint.load(run / "checkpoints" / "last.npz")
    assert ckpt.meta["config"]["model"]["cell"] == cell
    model = rebuild_model(ckpt)
    assert model.cell == cell and any(name.startswith(f"{cell}s.") for name in model.named_params())

    # one epoch, then resume to the configured two: the state carried is the cell's
    first = train("--runs-dir", str(tmp_path / "parts"), "--set", "train.epochs=1")
    assert first.exit_code == 0, first.output
    (part,) = (tmp_path / "parts" / "tiny_lstm").iterdir()
    resumed = runner.invoke(app, ["train", "--resume", str(part), "--data-dir", str(corpus), "-q",
                                  "--set", "train.epochs=2"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    whole_arrays = checkpoint.load(run / "checkpoints" / "last.npz").group("model")
    resumed_arrays = checkpoint.load(part / "checkpoints" / "last.npz").group("model")
    for name, array in whole_arrays.items():
        np.testing.assert_array_equal(resumed_arrays[name], array, err_msg=name)

    sample = runner.invoke(app, ["generate", str(run), "--length", "5", "--seed", "1"], catch_exceptions=False)
    words = sample.output.rstrip("\n").replace("\n", " <eos> ").split()  # <eos> prints as a line break
    assert sample.exit_code == 0 and len(words) >= 5, sample.output


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gradcheck_command_covers_each_cell(cell):
    result = runner.invoke(app, ["gradcheck", str(CONFIGS / "tiny_lstm.yaml"), "--set", f"model.cell={cell}",
                                 "--max-elements", "30"])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and f"{cell}s.0.Wh" in result.output


def test_shipped_configs_without_cell_resolve_to_lstm():
    from nnctl import config

    cfg = config.load(CONFIGS / "lstm_ptb_small.yaml", [])
    assert cfg["model"]["cell"] == "lstm"
    assert "cell" not in yaml.safe_load((CONFIGS / "lstm_ptb_small.yaml").read_text())["model"]
