"""The image classifiers learn: loss falls on a tiny separable image set, and a whole
`nnctl train` of the tiny configs runs on idx files written in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.data.idx import write_idx
from nnctl.errors import ConfigError
from nnctl.models import MODELS
from nnctl.optim import OPTIMIZERS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def bars(n: int, size: int = 12, classes: int = 4, seed: int = 0):
    """Images (n, size, size, 1): class k is a bright horizontal bar in band k, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.uniform(0, 0.3, (n, size, size, 1))
    band = size // classes
    rows = (y[:, None] * band + np.arange(band)[None, :])  # (n, band): the rows of each image's bar
    x[np.arange(n)[:, None], rows] += 0.7
    return x.astype(np.float32), y


MODELS_TO_TRAIN = [
    ("mlp", {"type": "mlp", "hidden_sizes": [32]}),
    ("mlp_bn_dropout_tanh", {"type": "mlp", "hidden_sizes": [32, 32], "batch_norm": True, "dropout": 0.1,
                             "activation": "tanh"}),
    ("cnn_default", {"type": "cnn"}),
    ("cnn_blocks", {"type": "cnn", "blocks": [{"conv": 8, "kernel": 3, "padding": "same", "batch_norm": True},
                                              {"pool": 2}, {"conv": 8, "kernel": 3, "stride": 2},
                                              {"dropout": 0.1}, {"dense": 16}]}),
]


@pytest.mark.parametrize("name, cfg", MODELS_TO_TRAIN, ids=[c[0] for c in MODELS_TO_TRAIN])
def test_loss_falls_twentyfold_in_forty_steps(name, cfg):
    x, y = bars(64)
    model = MODELS.build(cfg, "model", input_shape=(12, 12, 1), num_classes=4,
                         rng=np.random.default_rng(0), dtype=np.float32)
    optimizer = OPTIMIZERS.build({"type": "adam", "lr": 0.01}, "optimizer", params=model.named_params())
    model.train()
    losses = []
    for step in range(40):
        rows = np.arange(step * 16, step * 16 + 16) % 64
        model.zero_grad()
        out, state = model.loss((x[rows], y[rows]), None)
        model.backward()
        optimizer.step()
        losses.append(out.loss_sum / out.count)
        assert state is None and out.count == 16
    model.eval()
    out, _ = model.loss((x, y), None)
    assert out.loss_sum / out.count < losses[0] / 20, (losses[0], losses[-1], out.loss_sum / out.count)
    assert out.correct == 64


@pytest.mark.parametrize("blocks, message", [
    ([{"conf": 8}], "blocks[0]: unknown block kind 'conf' (did you mean 'conv'?)"),
    ([{"conv": 8}, {"pool": 2, "strid": 2}], "blocks[1]: unknown key 'strid' for a pool block (did you mean 'stride'?)"),
    ([{"dense": 8}, {"conv": 4}], "blocks[1]: a conv block cannot follow a dense block"),
    ([{"conv": 4, "kernel": 20}], "blocks[0]: kernel 20 does not fit the 12x12 input"),
    ([{"conv": 0}], "blocks[0]: conv channels must be an integer >= 1, got 0"),
    ([{"conv": 4, "pool": 2}], "blocks[0]: one block has one kind, got conv, pool"),
    ([{"dropout": 1.0}], "blocks[0]: dropout must be in [0, 1), got 1.0"),
])
def test_bad_blocks_are_one_line_config_errors(blocks, message):
    with pytest.raises(ConfigError) as err:
        MODELS.build({"type": "cnn", "blocks": blocks}, "model", input_shape=(12, 12, 1), num_classes=4,
                     rng=np.random.default_rng(0), dtype=np.float32)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_pooling_is_placed_before_the_activation_and_first_conv_skips_dx():
    model = MODELS.build({"type": "cnn"}, "model", input_shape=(28, 28, 1), num_classes=10,
                         rng=np.random.default_rng(0), dtype=np.float32)
    kinds = [type(layer).__name__ for layer in model.net.layers]
    assert kinds == ["Conv2d", "MaxPool2d", "ReLU", "Flatten", "Linear", "ReLU", "Linear"]
    assert model.net.layers[0].needs_input_grad is False


@pytest.mark.parametrize("config", ["tiny_mlp_mnist.yaml", "tiny_cnn_mnist.yaml"])
def test_tiny_config_trains_end_to_end(config, tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for split, n in (("train", 60), ("t10k", 20)):
        x, y = bars(n, size=28, seed=n)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", (x[..., 0] * 255).astype(np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["train", str(CONFIGS / config), "--data-dir", str(tmp_path / "data"),
              "--runs-dir", str(tmp_path / "runs"), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = next(p for p in (tmp_path / "runs").glob("*/*") if p.is_dir())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and 0.0 <= records[-1]["accuracy"] <= 1.0
    assert (run / "checkpoints" / "best.npz").is_file()


@pytest.mark.parametrize("config", ["mlp_mnist.yaml", "cnn_mnist.yaml", "mlp_fashion_mnist.yaml",
                                    "cnn_fashion_mnist.yaml"])
def test_gradcheck_command_passes_on_the_shipped_configs(config):
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["gradcheck", str(CONFIGS / config),
                                                            "--max-elements", "20"])
    assert result.exit_code == 0, result.output
    assert "pass" in result.output and "FAIL" not in result.output
