"""Seeing gradients: `nnctl gradflow` (||dL_T/dh_t|| through time), `train.log_grad_norms`
and `nnctl plot --grads`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_sentence_corpus
from nnctl.cli import app
from nnctl.gradflow import gradient_flow, largest_singular_values
from nnctl.layers.rnn import RNN
from nnctl.models.lstm_lm import LSTMLanguageModel

CONFIGS = Path(__file__).parent.parent / "configs"
runner = CliRunner(env={"COLUMNS": "200"})


def lm(cell, hidden=8, layers=2, vocab=11, seed=0):
    return LSTMLanguageModel(embed_dim=hidden, hidden_dim=hidden, num_layers=layers, dropout=0.3, cell=cell,
                             vocab_size=vocab, rng=np.random.default_rng(seed), dtype=np.float64)


def gradient_reaching(model, ids, t):
    """||dL_T/dh_t|| of the top layer, the fast way: run the window's first t steps, then the
    rest from that state, and read the fast layer's gradient with respect to its incoming state."""
    (cell,) = model.cells
    model.eval()
    x = model.embedding.forward(ids[:, :-1])
    _, state = cell.forward(x[:, :t])
    y, _ = cell.forward(x[:, t:], state)
    model.decoder.forward(y[:, -1:], ids[:, -1:])
    dy = np.zeros_like(y)
    dy[:, -1:] = model.decoder.backward(1.0)
    cell.backward(dy)
    dh = cell.dstate[0] if isinstance(cell.dstate, tuple) else cell.dstate
    model.zero_grad()
    return np.linalg.norm(dh, axis=1).mean()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_flow_equals_the_gradient_the_fast_layer_sends_into_its_state(cell):
    """The reference twins' dh_t agree with an independent computation through the fast layer."""
    model = lm(cell, layers=1)
    ids = np.random.default_rng(1).integers(0, 11, (3, 9))
    flow = gradient_flow(model, ids)
    assert flow.steps == 8 and flow.sequences == 3 and len(flow.layers) == 1
    for t in range(1, 8):  # the gradient reaching h_t, t = 1..7 (1-based)
        assert flow.layers[0].norms[t - 1] == pytest.approx(gradient_reaching(model, ids, t), rel=1e-10)
    assert all(float(np.abs(p.grad).max()) == 0 for p in model.params())  # only a measurement


def test_flow_of_an_untrained_rnn_falls_by_orders_of_magnitude():
    model = lm("rnn", hidden=64, layers=1, vocab=50)
    ids = np.random.default_rng(2).integers(0, 50, (10, 36))
    (layer,) = gradient_flow(model, ids).layers
    assert layer.name == "rnns.0" and layer.norms.shape == (35,)
    assert layer.decay < 1e-3, layer.norms
    assert np.all(np.diff(np.log(layer.norms)) > 0)  # smaller at every step further back


def test_largest_singular_values_by_gate():
    model = lm("lstm")
    values = largest_singular_values(model.cells[0])
    assert list(values) == ["i", "f", "o", "g"]
    H = 8
    Wh = model.cells[0].Wh.data
    assert values["f"] == pytest.approx(np.linalg.svd(Wh[:, H:2 * H], compute_uv=False)[0])
    rnn = RNN(3, 5, rng=np.random.default_rng(0), dtype=np.float64)
    assert list(largest_singular_values(rnn)) == [""]


# -- through the CLI ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_sentence_corpus(tmp_path_factory.mktemp("gradflow_corpus"), {"train": 120, "valid": 30, "test": 20})


@pytest.fixture(scope="module")
def logged_run(corpus):
    """The tiny LM trained with gradient norms logged every 3 steps and a clipping threshold it exceeds."""
    result = runner.invoke(app, ["train", str(CONFIGS / "tiny_lstm.yaml"), "--data-dir", str(corpus), "-q",
                                 "--runs-dir", str(corpus / "runs"), "--set", "train.log_grad_norms=true",
                                 "--set", "train.log_every=3", "--set", "train.clip_grad_norm=0.01"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (corpus / "runs" / "tiny_lstm").iterdir()
    return run


def grads_records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["split"] == "grads"]


def test_log_grad_norms_writes_each_parameters_norm_before_clipping(logged_run):
    records = grads_records(logged_run)
    steps = [r["step"] for r in records]
    assert steps[0] == 1 and all(s % 3 == 0 for s in steps[1:]) and len(steps) > 5
    for rec in records:
        assert set(rec["grad_norms"]) >= {"embedding.W", "lstms.0.Wh", "lstms.1.b", "decoder.b"}
        assert rec["grad_norm"] == pytest.approx(np.sqrt(sum(v * v for v in rec["grad_norms"].values())))
        assert rec["clip_grad_norm"] == 0.01
    assert all(rec["grad_norm"] > 0.01 for rec in records)  # before clipping, or none could exceed it


def test_logging_grad_norms_changes_nothing_else_and_resumes_exactly(corpus, tmp_path, logged_run):
    def train(runs_dir, *extra):
        return runner.invoke(app, ["train", str(CONFIGS / "tiny_lstm.yaml"), "--data-dir", str(corpus), "-q",
                                   "--runs-dir", str(runs_dir), "--set", "train.clip_grad_norm=0.01", *extra],
                             catch_exceptions=False)

    assert train(tmp_path / "plain").exit_code == 0
    (plain,) = (tmp_path / "plain" / "tiny_lstm").iterdir()
    logged = [rec for rec in map(json.loads, (logged_run / "metrics.jsonl").read_text().splitlines())
              if rec["split"] != "grads"]
    unlogged = list(map(json.loads, (plain / "metrics.jsonl").read_text().splitlines()))
    drop = ("elapsed", "throughput")
    assert [{k: v for k, v in r.items() if k not in drop} for r in logged] == \
        [{k: v for k, v in r.items() if k not in drop} for r in unlogged]

    logging = ("--set", "train.log_grad_norms=true", "--set", "train.log_every=3")
    assert train(tmp_path / "parts", *logging, "--set", "train.epochs=1").exit_code == 0
    (part,) = (tmp_path / "parts" / "tiny_lstm").iterdir()
    resumed = runner.invoke(app, ["train", "--resume", str(part), "--data-dir", str(corpus), "-q",
                                  "--set", "train.epochs=2"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert grads_records(part) == grads_records(logged_run)


def test_plot_grads_draws_the_logged_norms(logged_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "grads.png"
    result = runner.invoke(app, ["plot", str(logged_run), "--grads", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_grads_without_matplotlib_prints_sparklines(logged_run, tmp_path, monkeypatch):
    import nnctl.cli.plot as cli_plot

    monkeypatch.setattr(cli_plot, "_has_matplotlib", lambda: False)
    result = runner.invoke(app, ["plot", str(logged_run), "--grads", "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
    assert "lstms.0.Wh" in result.output and "global norm" in result.output
    assert not (tmp_path / "g.png").exists()


def test_plot_grads_on_a_run_that_logged_none_names_the_key(corpus, tmp_path):
    assert runner.invoke(app, ["train", str(CONFIGS / "tiny_lstm.yaml"), "--data-dir", str(corpus), "-q",
                               "--runs-dir", str(tmp_path), "--set", "train.epochs=1"]).exit_code == 0
    (run,) = (tmp_path / "tiny_lstm").iterdir()
    result = runner.invoke(app, ["plot", str(run), "--grads", "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 1
    assert "train.log_grad_norms: true" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gradflow_command_on_a_config_and_on_a_run(corpus, logged_run, tmp_path, cell):
    out = tmp_path / "flow.png"
    result = runner.invoke(app, ["gradflow", str(CONFIGS / "tiny_lstm.yaml"), str(logged_run), "--data-dir",
                                 str(corpus), "--set", f"model.cell={cell}", "--steps", "6", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"tiny_lstm {cell} (untrained)" in result.output and "tiny_lstm lstm (trained, 2 epochs)" in result.output
    assert f"[1] {cell}s.1" in result.output and "[2] lstms.0" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.split()[:1] in (["1"], ["6"])]
    assert len(rows) == 2 and all(len(row) == 5 for row in rows)  # t and 2 models x 2 layers
    if out.exists():
        assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, expected", [
    (["--steps", "0"], "--steps 0: the window needs at least 1 step"),
    (["--steps", "-3"], "--steps -3: the window needs at least 1 step"),
    (["--steps", "100000"], "enough for --steps"),
    (["--split", "dev"], "--split dev: this data set has the splits"),
])
def test_gradflow_bad_options_are_one_line(corpus, args, expected):
    result = runner.invoke(app, ["gradflow", str(CONFIGS / "tiny_lstm.yaml"), "--data-dir", str(corpus), *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output and len(result.output.strip().splitlines()) == 1


def test_gradflow_on_a_model_that_is_not_recurrent(corpus):
    result = runner.invoke(app, ["gradflow", str(CONFIGS / "tiny_mlp_mnist.yaml")])
    assert result.exit_code == 2
    assert "is not recurrent" in result.output and len(result.output.strip().splitlines()) == 1


def test_open_forget_gates_carry_the_gradient_back_where_the_rnn_loses_it():
    """At PyTorch's initialisation the LSTM's forget gates sit near 0.5, and its gradient fades
    about as fast as the RNN's; with forget_bias 1 (Jozefowicz et al. 2015) it reaches back."""
    ids = np.random.default_rng(3).integers(0, 50, (10, 36))

    def decay(cell, **options):
        model = LSTMLanguageModel(embed_dim=64, hidden_dim=64, num_layers=1, cell=cell, vocab_size=50,
                                  rng=np.random.default_rng(0), dtype=np.float64, **options)
        return gradient_flow(model, ids).layers[0].decay

    rnn, lstm, open_lstm = decay("rnn"), decay("lstm"), decay("lstm", forget_bias=1.0)
    assert rnn < 1e-3 and lstm < 1e-3
    assert open_lstm > 100 * max(rnn, lstm), (rnn, lstm, open_lstm)


def test_forget_bias_shifts_only_the_forget_gates_and_zero_changes_nothing():
    from nnctl.errors import ConfigError
    from nnctl.layers.recurrent import LSTM
    from nnctl.models import MODELS

    plain = LSTM(3, 4, rng=np.random.default_rng(0))
    shifted = LSTM(3, 4, rng=np.random.default_rng(0), forget_bias=2.0)
    np.testing.assert_allclose(shifted.b.data - plain.b.data, np.r_[np.zeros(4), np.full(4, 2.0), np.zeros(8)],
                               atol=1e-6)
    np.testing.assert_array_equal(LSTM(3, 4, rng=np.random.default_rng(0), forget_bias=0.0).b.data, plain.b.data)
    with pytest.raises(ConfigError, match=r"model\.forget_bias: .*cell: lstm"):
        MODELS.build({"type": "lstm_lm", "cell": "gru", "forget_bias": 1.0}, "model", vocab_size=10,
                     rng=np.random.default_rng(0), dtype=np.float32)
