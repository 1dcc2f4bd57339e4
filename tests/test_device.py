"""The GPU path, on a device every CI machine has: `device: strict` (tests/strict_device.py).

Every GPU-capable tiny config trains on the device, evaluates, checkpoints and resumes,
and equals the CPU run in float64; dropout masks are drawn on the device, from a stream
checkpoints keep. NNCTL_TEST_DEVICE=gpu runs the same tests on a real GPU
(benchmarks/gpu_check.py does); the stand-in's own checks are then skipped.
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import strict_device
from nnctl import backend, checkpoint, experiment
from nnctl.cli import app
from nnctl.config import resolve
from nnctl.errors import ConfigError
from nnctl.models import MODELS
from nnctl.open_run import rebuild_model
from test_images import write_tiny_set

DEVICE = os.environ.get("NNCTL_TEST_DEVICE", "strict")
CONFIGS = Path(__file__).parent.parent / "configs"
runner = CliRunner(env={"COLUMNS": "200"})
on_stand_in = pytest.mark.skipif(DEVICE != "strict", reason="checks the stand-in itself")
if DEVICE == "gpu" and not backend.gpu_available():
    pytestmark = pytest.mark.skip(reason=f"NNCTL_TEST_DEVICE=gpu: {backend.gpu_problem()}")

WORDS = "the cat sat on the mat . a dog ran to the park . the bird sang in the tree .".split()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The tiny configs' data: idx files for mnist, text files for the LMs."""
    root = tmp_path_factory.mktemp("device-data")
    write_tiny_set(root / "mnist")
    rng = np.random.default_rng(0)
    for split, lines in (("train", 24), ("valid", 6), ("test", 6)):
        text = "\n".join(" ".join(rng.choice(WORDS, size=8)) for _ in range(lines))
        (root / f"{split}.txt").write_text(text + "\n")
    return root


def model_class(cfg):
    return MODELS.get(cfg["model"]["type"], "model.type")


def cell_choices(cls) -> tuple[str, ...]:
    """The values a model's `cell` option takes (lstm_lm: lstm, gru, rnn), or () without one."""
    hint = typing.get_type_hints(cls.__init__).get("cell")
    return typing.get_args(hint) if hint is not None else ()


def gpu_cases() -> list:
    """(id, config) for every configs/tiny_*.yaml whose model runs on a GPU, each cell of it, and
    the LM with a sparse embedding."""
    cases = []
    for path in sorted(CONFIGS.glob("tiny_*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        cls = model_class(cfg)
        if "gpu" not in getattr(cls, "devices", ()):
            continue
        cells = cell_choices(cls)
        for cell in cells or [None]:
            case = json.loads(json.dumps(cfg))
            if cell is not None:
                case["model"]["cell"] = cell
            cases.append(pytest.param(case, id=path.stem + (f"-{cell}" if cell else "")))
        if cfg["model"]["type"] == "lstm_lm":  # the book config's sparse embedding, with Adam's lazy rows
            case = json.loads(json.dumps(cfg))
            case["model"].update(tie_weights=False, sparse_embedding=True)
            case["optimizer"] = {"type": "adam", "lr": 0.01}
            cases.append(pytest.param(case, id=path.stem + "-sparse-adam"))
    return cases


def test_every_gpu_model_has_a_tiny_config_the_device_tests_train():
    """A model nnctl registers as GPU-capable is trained on the device by the tests below only
    through a configs/tiny_*.yaml; a new model without one would go untested there."""
    covered = {yaml.safe_load(path.read_text())["model"]["type"] for path in CONFIGS.glob("tiny_*.yaml")}
    for name in MODELS.names():
        cls = MODELS.get(name)
        if cls.__module__.startswith("nnctl.") and "gpu" in getattr(cls, "devices", ()):
            assert name in covered, (f"model '{name}' runs on the GPU but no configs/tiny_*.yaml trains it; add "
                                     f"a seconds-long one so tests/test_device.py trains it on the stand-in")


def without_dropout(value):
    """The config with every `dropout:` set to 0, so CPU and device draw no masks at all."""
    if isinstance(value, dict):
        return {k: (0.0 if k == "dropout" else without_dropout(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [without_dropout(v) for v in value]
    return value


def train(cfg, data_dir, runs, *sets) -> Path:
    path = runs.parent / f"{runs.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = runner.invoke(app, ["train", str(path), "--data-dir", str(data_dir), "--runs-dir", str(runs), "-q",
                                 *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    (run,) = (runs / cfg["name"]).iterdir()
    return run


def resume(run, data_dir, *sets) -> None:
    result = runner.invoke(app, ["train", "--resume", str(run), "--data-dir", str(data_dir), "-q",
                                 *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output


def records(run):
    return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed", "throughput")}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_records_close(got, want, tol):
    assert [(r["split"], r["epoch"], r["step"]) for r in got] == [(r["split"], r["epoch"], r["step"]) for r in want]
    for g, w in zip(got, want):
        for key in ("loss", "accuracy", "perplexity"):
            if key in w:
                assert g[key] == pytest.approx(w[key], rel=tol, abs=tol), (g, w)


def assert_checkpoints_close(a: Path, b: Path, tol):
    ca, cb = checkpoint.load(a), checkpoint.load(b)
    assert ca.arrays.keys() == cb.arrays.keys()
    for name, value in ca.arrays.items():
        assert isinstance(cb.arrays[name], np.ndarray)  # checkpoints are NumPy whatever the device
        np.testing.assert_allclose(cb.arrays[name], value, rtol=tol, atol=tol, err_msg=name)


def float64(cfg, epochs=2):
    return {**cfg, "dtype": "float64", "train": {**cfg["train"], "epochs": epochs}}


@pytest.mark.parametrize("cfg", gpu_cases())
def test_device_run_with_a_resume_equals_the_cpu_run(cfg, data_dir, tmp_path):
    """Train, evaluate, checkpoint: on the CPU for 2 epochs; on the device 1 epoch, then resumed
    for the 2nd. Same records and weights in float64 within 1e-6; the device's last
    checkpoint then loads and scores on the CPU."""
    cfg = float64(without_dropout(cfg))
    cpu = train({**cfg, "device": "cpu"}, data_dir, tmp_path / "cpu")
    dev = train({**cfg, "device": DEVICE}, data_dir, tmp_path / "dev", "train.epochs=1")
    resume(dev, data_dir, "train.epochs=2")
    assert_records_close(records(dev), records(cpu), 1e-6)
    for which in ("last", "best"):
        assert_checkpoints_close(cpu / f"checkpoints/{which}.npz", dev / f"checkpoints/{which}.npz", 1e-6)

    ckpt = checkpoint.load(dev / "checkpoints/last.npz")  # trained on the device, used on the CPU
    model = rebuild_model(ckpt)
    assert all(type(p.data) is np.ndarray for p in model.params())
    exp = experiment.build(resolve({**cfg, "device": "cpu"}), str(data_dir), vocab=ckpt.vocab)
    from nnctl.trainer import score

    totals = score(model, exp.data.batches("valid", rng=None, batch_size=exp.train.eval_batch_size))
    last_valid = [r for r in records(cpu) if r["split"] == "valid"][-1]
    assert totals.loss_sum / totals.count == pytest.approx(last_valid["loss"], rel=1e-9)


@pytest.mark.parametrize("cfg", gpu_cases())
def test_device_dropout_is_drawn_there_and_resumes_exactly(cfg, data_dir, tmp_path):
    """With dropout on, the device draws its masks itself; an interrupted-and-resumed device
    run equals an uninterrupted one, so the masks' stream survives the checkpoint. (Exactly
    on the stand-in; on a GPU to 1e-9, as CuPy's add.at sums repeated words' embedding
    gradients in whatever order its atomic additions land.)"""
    cfg = float64({**cfg, "device": DEVICE})
    draws = strict_device.StrictGenerator.draws
    straight = train(cfg, data_dir, tmp_path / "straight")
    if DEVICE == "strict":
        assert strict_device.StrictGenerator.draws > draws  # masks came from xp.random
    split = train(cfg, data_dir, tmp_path / "split", "train.epochs=1")
    resume(split, data_dir, "train.epochs=2")
    tol = 0.0 if DEVICE == "strict" else 1e-9
    assert_records_close(records(split), records(straight), tol)
    if DEVICE == "strict":
        assert records(split) == records(straight)
    assert_checkpoints_close(straight / "checkpoints/last.npz", split / "checkpoints/last.npz", tol)


@on_stand_in
@pytest.mark.parametrize("cfg", gpu_cases())
def test_a_training_step_copies_only_its_batch_to_the_device(cfg, data_dir):
    """Weights, state, masks and optimizer state stay on the device: per step, the batch's two
    arrays go there, and what comes back is scalars (the loss, each gradient's squared norm
    for clipping, a range check), never an array."""
    from nnctl.trainer import Trainer

    cfg = resolve({**cfg, "device": "strict"})
    exp = experiment.build(cfg, str(data_dir))
    trainer = Trainer(exp.model, exp.data, exp.optimizer, exp.schedule, exp.train, cfg, exp.model_extras,
                      device="strict")
    first, second = list(exp.data.batches("train", rng=np.random.default_rng(0)))[:2]
    trainer.step(first)
    moved, back = strict_device.HostTransfers.to_device, strict_device.HostTransfers.count
    get = strict_device.StrictArray.get
    try:  # .get() is how a whole array would come back: none may
        strict_device.StrictArray.get = lambda self: pytest.fail("an array was copied back to the host")
        trainer.step(second)
    finally:
        strict_device.StrictArray.get = get
    assert strict_device.HostTransfers.to_device - moved == 2
    assert strict_device.HostTransfers.count - back <= len(exp.model.params()) + 3


def test_dropout_on_a_device_takes_one_key_from_its_stream_per_mask():
    from nnctl.layers import Dropout

    xp = backend.get_xp(backend.to_device(np.zeros(1), DEVICE))
    layer = Dropout(0.5, rng=np.random.default_rng(7), dtype=np.float64)
    x = backend.to_device(np.ones((4, 6)), DEVICE)
    y = layer.forward(x)
    assert backend.get_xp(y) is xp and backend.get_xp(layer.scale) is xp  # drawn there, kept there
    twin = np.random.default_rng(7)
    twin.integers(2**63)  # what the layer took: one integer
    assert layer.rng.bit_generator.state == twin.bit_generator.state
    values = set(np.unique(backend.as_numpy(y)).tolist())
    assert values <= {0.0, 2.0} and len(values) == 2
    dx = layer.backward(backend.to_device(np.ones((4, 6)), DEVICE))
    np.testing.assert_array_equal(backend.as_numpy(dx), backend.as_numpy(y))
    cpu = Dropout(0.5, rng=np.random.default_rng(7), dtype=np.float64)
    cpu.forward(np.ones((4, 6)))  # the CPU draws its masks from the host stream itself, as before
    np.testing.assert_array_equal(cpu.scale, (np.random.default_rng(7).random((4, 6)) >= 0.5) * 2.0)


# -- layers one by one, against the CPU --------------------------------------------------------
def layer_cases():
    from nnctl.layers import BatchNorm, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sigmoid, Tanh
    from nnctl.layers.embedding import Embedding, OutputProjection
    from nnctl.layers.gru import GRU
    from nnctl.layers.recurrent import LSTM
    from nnctl.layers.rnn import RNN

    rng = np.random.default_rng(0)
    img = rng.standard_normal((2, 7, 7, 3))
    seq = rng.standard_normal((2, 4, 5))
    make = lambda cls, *a, **k: (lambda: cls(*a, rng=np.random.default_rng(1), dtype=np.float64, **k))  # noqa: E731
    return [
        ("linear", make(Linear, 5, 3), seq),
        ("relu", ReLU, seq), ("sigmoid", Sigmoid, seq), ("tanh", Tanh, seq), ("flatten", Flatten, img),
        ("batchnorm", lambda: BatchNorm(3, dtype=np.float64), img),
        ("conv", make(Conv2d, 3, 4, 3, 2, 1), img),
        ("maxpool2", lambda: MaxPool2d(2), img), ("maxpool3", lambda: MaxPool2d(3, 2), img),
        ("embedding", make(Embedding, 9, 4), rng.integers(0, 9, (3, 5))),
        ("projection", make(OutputProjection, 5, 9), seq),
        ("lstm", make(LSTM, 5, 6), seq), ("gru", make(GRU, 5, 6), seq), ("rnn", make(RNN, 5, 6), seq),
    ]


@pytest.mark.parametrize("name, build, x", layer_cases(), ids=[c[0] for c in layer_cases()])
def test_each_layer_on_the_device_equals_the_cpu(name, build, x):
    cpu, dev = build(), build().to(DEVICE)
    y = cpu.forward(x)
    y_dev = dev.forward(backend.to_device(x, DEVICE))
    if isinstance(y, tuple):  # recurrent layers: (outputs, state)
        y, y_dev = y[0], y_dev[0]
    np.testing.assert_allclose(backend.as_numpy(y_dev), y, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx, dx_dev = cpu.backward(dy), dev.backward(backend.to_device(dy, DEVICE))
    if dx is not None:
        np.testing.assert_allclose(backend.as_numpy(dx_dev), dx, rtol=1e-12, atol=1e-12)
    for (n, p), p_dev in zip(cpu.named_params().items(), dev.params()):
        np.testing.assert_allclose(backend.as_numpy(p_dev.grad), p.grad, rtol=1e-12, atol=1e-12, err_msg=n)


def test_fused_decoder_loss_on_the_device_equals_the_cpu():
    from nnctl.layers.decoder_loss import DecoderCrossEntropy

    rng = np.random.default_rng(0)
    h, y = rng.standard_normal((3, 4, 5)), rng.integers(0, 9, (3, 4))
    cpu = DecoderCrossEntropy(5, 9, rng=np.random.default_rng(1), dtype=np.float64)
    dev = DecoderCrossEntropy(5, 9, rng=np.random.default_rng(1), dtype=np.float64).to(DEVICE)
    loss, loss_dev = cpu.forward(h, y), dev.forward(backend.to_device(h, DEVICE), backend.to_device(y, DEVICE))
    assert float(loss_dev) == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(backend.as_numpy(dev.backward(0.5)), cpu.backward(0.5), rtol=1e-12)
    np.testing.assert_allclose(backend.as_numpy(dev.W.grad), cpu.W.grad, rtol=1e-12, atol=1e-12)


# -- the stand-in itself -----------------------------------------------------------------------
@on_stand_in
def test_the_stand_in_refuses_what_cupy_refuses():
    xp = strict_device.strict
    x = xp.asarray(np.arange(6.0).reshape(2, 3))
    host = np.ones(3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        host[...] = x[0]
    for mixed in (lambda: x + host, lambda: host * x, lambda: xp.maximum(x, host), lambda: x[np.array([0])]):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            mixed()
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.tanh(x)  # a NumPy function on a device array
    with pytest.raises(TypeError, match="numpy.concatenate called on a strict device array"):
        np.concatenate([x, x])
    with pytest.raises(TypeError, match=r"float\(\) of a \(2, 3\) strict device array"):
        float(x)
    assert not hasattr(xp, "add_docstring") and not hasattr(xp, "ma")  # NumPy has them, CuPy does not
    # what stays open: explicit transfers, scalars, 0-d results, NumPy scalars as operands
    assert float(x.sum()) == 15.0 and x.sum().ndim == 0 and x[1, 2].item() == 5.0
    np.testing.assert_array_equal(x.get(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(xp.asnumpy(x * np.float64(2) + 1), np.arange(6.0).reshape(2, 3) * 2 + 1)
    assert backend.get_xp(x) is xp and isinstance(backend.as_numpy(x), np.ndarray)


@on_stand_in
def test_the_stand_in_is_known_only_inside_the_tests():
    cfg = {"name": "t", "data": {"type": "toy_blobs"}, "model": {"type": "toy_softmax"},
           "optimizer": {"type": "sgd"}, "device": "strict"}
    assert resolve(cfg)["device"] == "strict"  # registered by tests/conftest.py
    saved = dict(backend._test_devices)
    backend._test_devices.clear()
    try:
        with pytest.raises(ConfigError, match="device: 'strict' is not a device; choose cpu or gpu"):
            resolve(cfg)
    finally:
        backend._test_devices.update(saved)


@pytest.mark.skipif(backend.gpu_available(), reason="a GPU is present: device: gpu is valid here")
def test_gpu_without_cupy_says_which_and_how_to_install(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", ModuleNotFoundError("No module named 'cupy'", name="cupy"))
    line = backend.gpu_problem()
    assert "CuPy is not installed" in line and "nnctl[gpu]" in line and "nnctl[gpu-cuda13]" in line
    assert "\n" not in line

    class OldDriver:  # CuPy for CUDA 13 imported, but the driver runs CUDA 12.2 only
        class cuda:
            class runtime:
                driver = 12020

                @staticmethod
                def getDeviceCount():
                    raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

                @classmethod
                def driverGetVersion(cls):
                    return cls.driver

                @staticmethod
                def runtimeGetVersion():
                    return 13000

    monkeypatch.setattr(backend, "_cupy", OldDriver)
    line = backend.gpu_problem()
    assert "CuPy is installed but no usable NVIDIA driver" in line and "cudaErrorInsufficientDriver" in line
    assert ("this CuPy is built for CUDA 13.0 but the driver runs CUDA up to 12.2: uninstall it and "
            "pip install 'nnctl[gpu]' (cupy-cuda12x)") in line and "\n" not in line
    OldDriver.cuda.runtime.driver = 0  # no driver at all
    assert "install the NVIDIA driver (nvidia-smi must list the GPU)" in backend.gpu_problem()
    OldDriver.cuda.runtime.driver = 13020  # versions that fit: something else is wrong
    assert "the driver (CUDA 13.2) should run this CuPy (CUDA 13.0): check nvidia-smi" in backend.gpu_problem()
    cfg = resolve({"name": "t", "data": {"type": "toy_blobs"}, "model": {"type": "toy_softmax"},
                   "optimizer": {"type": "sgd"}, "device": "gpu"})
    with pytest.raises(ConfigError, match="no usable NVIDIA driver"):
        experiment.build(cfg)
