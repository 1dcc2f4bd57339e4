"""From a resolved config to live objects: data set, model, optimizer, schedule.

Order matters for "nothing half-made": everything here is built (and every file read)
before the CLI creates a run directory, so any mistake stops the run with nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnctl import streams
from nnctl.config import TrainConfig
from nnctl.errors import ConfigError


@dataclass
class Experiment:
    config: dict[str, Any]
    data: Any
    model: Any
    optimizer: Any
    schedule: Any
    train: TrainConfig
    model_extras: dict[str, Any]


def jsonable(value: Any) -> Any:
    """Tuples -> lists, NumPy scalars -> Python: for meta JSON and YAML dumps."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def model_rng(seed: int) -> np.random.Generator:
    """The generator for weight init and dropout; separate streams from data shuffling."""
    return streams.stream(seed, streams.MODEL)


def config_dtype(cfg: dict[str, Any]) -> np.dtype:
    """The experiment's `dtype:` key (float32 unless it says float64)."""
    return np.dtype(cfg.get("dtype", "float32"))


def check_device(cfg: dict[str, Any], model_cls) -> str:
    """The device the config asks for, after checking it can be used; one ConfigError line if not."""
    device = cfg.get("device", "cpu")
    if device == "cpu":
        return device
    from nnctl.backend import device_kind, gpu_problem

    problem = gpu_problem() if device == "gpu" else None  # a test device stands in for a GPU
    if problem:
        raise ConfigError(problem)
    if device_kind(device) not in getattr(model_cls, "devices", ("cpu", "gpu")):
        raise ConfigError(f"device: gpu is not available for model '{cfg['model']['type']}' "
                          f"(it runs on the CPU only); set device: cpu")
    return device


def build_data(cfg: dict[str, Any], data_dir: str | None = None, vocab=None, dtype=None):
    from nnctl.data import DATASETS

    dtype = config_dtype(cfg) if dtype is None else dtype
    extras = {"data_dir": data_dir, "dtype": dtype, "rng": streams.stream(cfg["seed"], streams.DATA)}
    if vocab is not None:
        extras["vocab"] = vocab
    return DATASETS.build(cfg["data"], "data", **extras)


def build_model(cfg: dict[str, Any], model_extras: dict[str, Any], dtype=None, rng=None):
    """The one way to make a model from an experiment's config and the data's extras (sizes, vocab).

    Used for training, for gradient checks and, with the weights then restored, for opening a
    trained run (nnctl/open_run.py). dtype: the config's `dtype:` unless given; rng: the
    seed's model stream unless given (a checkpoint's config need not hold a seed).
    """
    from nnctl.models import MODELS

    dtype = config_dtype(cfg) if dtype is None else dtype
    rng = model_rng(cfg["seed"]) if rng is None else rng
    return MODELS.build(cfg["model"], "model", rng=rng, dtype=dtype,
                        vocab=model_extras.get("vocab"), **{k: v for k, v in model_extras.items() if k != "vocab"})


def build(cfg: dict[str, Any], data_dir: str | None = None, dtype=None, vocab=None) -> Experiment:
    """Build every part of an experiment; `vocab` (from a checkpoint) keeps a resumed run's word ids.

    With `device: gpu` the model's Params and buffers move to the GPU before the optimizer
    is built (its state arrays are made like the Params); the data stays on the host and
    the Trainer moves each batch once per step.
    """
    from nnctl.models import MODELS
    from nnctl.optim import OPTIMIZERS
    from nnctl.schedules import SCHEDULES

    device = check_device(cfg, MODELS.get(cfg["model"]["type"], "model.type"))
    dtype = config_dtype(cfg) if dtype is None else dtype
    train = TrainConfig(**cfg["train"])
    data = build_data(cfg, data_dir, vocab=vocab, dtype=dtype)
    model_extras = jsonable(data.extras())
    extras_for_model = dict(model_extras)
    if data.vocab is not None:
        extras_for_model["vocab"] = data.vocab
    model = build_model(cfg, extras_for_model, dtype)
    if device != "cpu":
        model.to(device)
    optimizer = OPTIMIZERS.build(cfg["optimizer"], "optimizer", params=model.named_params())
    schedule = SCHEDULES.build(cfg["schedule"], "schedule", base_lr=optimizer.lr,
                               steps_per_epoch=max(data.num_batches("train"), 1), epochs=train.epochs)
    preflight(data, schedule, train)
    return Experiment(cfg, data, model, optimizer, schedule, train, model_extras)


def preflight(data, schedule, train: TrainConfig) -> None:
    """What can go wrong later in the run, checked now, before any run folder exists."""
    from nnctl.errors import NnctlError

    try:
        schedule.check()
    except ValueError as error:
        raise ConfigError(f"schedule: {error}") from None
    if train.eval_batch_size is not None:
        for split in [s for s in data.splits if s != "train"]:  # train is scored with its own batches
            try:  # a data set checks a batch size when its batches are asked for
                data.batches(split, rng=None, batch_size=train.eval_batch_size)
            except NnctlError as error:
                raise ConfigError(f"train.eval_batch_size: {error}") from None
