"""From a resolved config to live objects: data set, model, optimizer, schedule.

Order matters for "nothing half-made": everything here is built (and every file read)
before the CLI creates a run directory, so any mistake stops the run with nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

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
    return np.random.default_rng([seed, 0])


def build_data(cfg: dict[str, Any], data_dir: str | None = None, vocab=None, dtype=np.float32):
    from nnctl.data import DATASETS

    extras = {"data_dir": data_dir, "dtype": dtype, "rng": np.random.default_rng([cfg["seed"], 2])}
    if vocab is not None:
        extras["vocab"] = vocab
    return DATASETS.build(cfg["data"], "data", **extras)


def build_model(cfg: dict[str, Any], model_extras: dict[str, Any], dtype=np.float32):
    from nnctl.models import MODELS

    return MODELS.build(cfg["model"], "model", rng=model_rng(cfg["seed"]), dtype=dtype,
                        vocab=model_extras.get("vocab"), **{k: v for k, v in model_extras.items() if k != "vocab"})


def build(cfg: dict[str, Any], data_dir: str | None = None, dtype=np.float32, vocab=None) -> Experiment:
    """Build every part of an experiment; `vocab` (from a checkpoint) keeps a resumed run's word ids."""
    from nnctl.optim import OPTIMIZERS
    from nnctl.schedules import SCHEDULES

    if cfg.get("device", "cpu") != "cpu":
        from nnctl.backend import gpu_available

        if not gpu_available():
            raise ConfigError("device: gpu needs CuPy and an NVIDIA GPU; pip install 'nnctl[gpu]' or set device: cpu")
        raise ConfigError("device: gpu is not supported yet by this nnctl version; set device: cpu")
    train = TrainConfig(**cfg["train"])
    data = build_data(cfg, data_dir, vocab=vocab, dtype=dtype)
    model_extras = jsonable(data.extras())
    extras_for_model = dict(model_extras)
    if data.vocab is not None:
        extras_for_model["vocab"] = data.vocab
    model = build_model(cfg, extras_for_model, dtype)
    optimizer = OPTIMIZERS.build(cfg["optimizer"], "optimizer", params=model.named_params())
    schedule = SCHEDULES.build(cfg["schedule"], "schedule", base_lr=optimizer.lr,
                               steps_per_epoch=max(data.num_batches("train"), 1), epochs=train.epochs)
    return Experiment(cfg, data, model, optimizer, schedule, train, model_extras)
