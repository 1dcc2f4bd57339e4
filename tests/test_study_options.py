"""Options the book's comparison studies need: a fixed init std, and a small training subset."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl.data.idx import write_idx
from nnctl.experiment import build_data
from nnctl.models import MODELS


def mlp(init):
    return MODELS.build({"type": "mlp", "hidden_sizes": [400, 300], "init": init}, "model", input_shape=(28, 28, 1),
                        num_classes=10, rng=np.random.default_rng(0), dtype=np.float32)


def hidden_stds(model) -> list[float]:
    return [float(p.data.std()) for name, p in model.named_params().items() if name.endswith("W")][:-1]


def test_a_number_is_a_fixed_std_and_names_follow_fan_in():
    assert hidden_stds(mlp(0.01)) == pytest.approx([0.01, 0.01], rel=0.03)
    assert hidden_stds(mlp("he")) == pytest.approx([np.sqrt(2 / 784), np.sqrt(2 / 400)], rel=0.03)
    assert hidden_stds(mlp("xavier")) == pytest.approx([np.sqrt(1 / 784), np.sqrt(1 / 400)], rel=0.03)


def test_a_fixed_std_must_be_positive():
    with pytest.raises(Exception, match="init: must be > 0"):
        mlp(0.0)


@pytest.fixture
def mnist_dir(tmp_path):
    (tmp_path / "mnist").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("t10k", 30)):
        write_idx(tmp_path / "mnist" / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / "mnist" / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return tmp_path


def data(mnist_dir, **options):
    cfg = {"seed": 0, "data": {"type": "mnist", "download": False, "validation": 20, "batch_size": 10, **options}}
    return build_data(cfg, str(mnist_dir))


def test_train_examples_keeps_the_first_images_and_the_same_validation(mnist_dir):
    whole, small = data(mnist_dir), data(mnist_dir, train_examples=30)
    assert len(small.data["train"][1]) == 30 and len(whole.data["train"][1]) == 100
    np.testing.assert_array_equal(small.data["train"][0], whole.data["train"][0][:30])
    np.testing.assert_array_equal(small.data["valid"][0], whole.data["valid"][0])
    assert small.num_batches("train") == 3


def test_train_examples_must_be_positive(mnist_dir):
    with pytest.raises(Exception, match="data.train_examples: must be > 0"):
        data(mnist_dir, train_examples=0)
