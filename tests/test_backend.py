"""The array backend's CPU path, model.to(device), the device check, and the data-parallel pieces
that need no MPI (batch shards, state gather/shard, the one-line errors)."""

from __future__ import annotations

import numpy as np
import pytest

import toyparts  # noqa: F401
from conftest import TOY_CONFIG
from nnctl import backend, distributed, experiment
from nnctl.config import resolve
from nnctl.data.base import Dataset, batch_length, shard_rows
from nnctl.data.windows import ContextBatch
from nnctl.errors import ConfigError
from nnctl.models import MODELS


def test_cpu_path_of_the_handle():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert backend.get_xp(x) is np
    assert backend.get_xp(np.float32(1)) is np
    back = backend.to_device(x, "cpu")
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, x)
    with pytest.raises(ValueError, match="choose cpu or gpu"):
        backend.to_device(x, "tpu")


def test_tree_to_device_keeps_structure_and_named_tuples():
    batch = ContextBatch(np.ones((2, 4), np.int64), np.ones((2, 4), bool), np.zeros(2, np.int64))
    moved = backend.tree_to_device(batch, "cpu")
    assert isinstance(moved, ContextBatch)
    state = [(np.zeros((2, 3)), np.ones((2, 3)))]
    moved_state = backend.tree_to_device(state, "cpu")
    assert isinstance(moved_state, list) and isinstance(moved_state[0], tuple)
    np.testing.assert_array_equal(moved_state[0][1], state[0][1])
    assert backend.tree_to_device(None, "cpu") is None


def lstm_lm():
    return MODELS.build({"type": "lstm_lm", "embed_dim": 4, "hidden_dim": 4, "num_layers": 1, "dropout": 0.0},
                        "model", vocab_size=7, rng=np.random.default_rng(0), dtype=np.float32)


def test_model_to_cpu_round_trips_params_and_keeps_tied_weights_shared():
    model = lstm_lm()
    before = {n: p.data.copy() for n, p in model.named_params().items()}
    assert model.to("cpu") is model
    for name, p in model.named_params().items():
        np.testing.assert_array_equal(p.data, before[name])
        assert p.grad.shape == p.data.shape
    assert model.decoder.W is model.embedding.W  # still one Param after the move


def test_model_to_moves_buffers_too():
    from nnctl.layers import BatchNorm

    bn = BatchNorm(3)
    bn.running_mean += 1
    bn.to("cpu")
    np.testing.assert_array_equal(bn.running_mean, np.ones(3, np.float32))


@pytest.mark.skipif(backend.gpu_available(), reason="a GPU is present: device: gpu is valid here")
def test_gpu_without_cupy_or_gpu_is_one_config_line():
    cfg = resolve({**TOY_CONFIG, "device": "gpu"})
    with pytest.raises(ConfigError) as error:
        experiment.build(cfg)
    assert "\n" not in str(error.value)
    assert "pip install 'nnctl[gpu]'" in str(error.value) and "device: cpu" in str(error.value)


def test_dtype_key_builds_float64_and_rejects_others():
    cfg = resolve({**TOY_CONFIG, "dtype": "float64"})
    exp = experiment.build(cfg)
    assert all(p.data.dtype == np.float64 for p in exp.model.params())
    with pytest.raises(ConfigError, match="dtype: 'float16' is not a supported precision"):
        resolve({**TOY_CONFIG, "dtype": "float16"})


@pytest.mark.parametrize("n, size", [(16, 2), (9, 2), (10, 4), (1, 3), (20, 1)])
def test_shards_cover_the_batch_once_in_order(n, size):
    blocks = [shard_rows(n, rank, size) for rank in range(size)]
    rows = np.concatenate([np.arange(n)[b] for b in blocks])
    np.testing.assert_array_equal(rows, np.arange(n))
    lengths = [b.stop - b.start for b in blocks]
    assert max(lengths) - min(lengths) <= 1


def test_dataset_shard_cuts_every_array_of_tuples_and_named_tuples():
    data = Dataset()
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    part = data.shard((x, y), 1, 2)
    np.testing.assert_array_equal(part[0], x[5:])
    np.testing.assert_array_equal(part[1], y[5:])
    batch = ContextBatch(np.arange(12).reshape(6, 2), np.ones((6, 2), bool), np.arange(6))
    piece = data.shard(batch, 0, 3)
    assert isinstance(piece, ContextBatch) and batch_length(piece) == 2
    np.testing.assert_array_equal(piece.target, [0, 1])


class FakeRank(distributed.SingleProcess):
    """Rank `rank` of `size`, without MPI: for the pieces that do not communicate."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    shard_state = distributed.MPICommunicator.shard_state


def test_a_sharded_state_concatenates_back_to_the_global_one():
    h = np.arange(30.0).reshape(5, 6)
    state = [(h, -h)]
    shards = [FakeRank(r, 2).shard_state(state) for r in range(2)]
    glued = distributed._zip_leaves(shards, lambda leaves: np.concatenate(leaves, axis=0))
    np.testing.assert_array_equal(glued[0][0], h)
    np.testing.assert_array_equal(glued[0][1], -h)


def test_uneven_global_batch_and_closed_form_models_are_refused_on_several_ranks():
    exp = experiment.build(resolve({**TOY_CONFIG, "data": {"type": "toy_blobs", "batch_size": 15}}))
    distributed.check_shardable(FakeRank(0, 1), exp.data, exp.model, "toy_softmax")  # one process: fine
    with pytest.raises(ConfigError, match="batch_size 15 cannot be split evenly over 2 processes"):
        distributed.check_shardable(FakeRank(0, 2), exp.data, exp.model, "toy_softmax")
    exp.model.trainable = False
    with pytest.raises(ConfigError, match="run it without mpirun"):
        distributed.check_shardable(FakeRank(0, 3), exp.data, exp.model, "ppmi_svd")


def test_mpirun_without_mpi4py_is_one_config_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mpi4py(name, *args, **kwargs):
        if name.startswith("mpi4py"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setattr(builtins, "__import__", no_mpi4py)
    with pytest.raises(ConfigError, match=r"4 processes, but mpi4py is not installed; pip install 'nnctl\[mpi\]'"):
        distributed.get_communicator()


def test_a_plain_run_is_a_single_process(monkeypatch):
    for var in distributed._LAUNCHER_SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    comm = distributed.get_communicator()
    assert (comm.rank, comm.size) == (0, 1)
