"""How far back a recurrent LM's gradient reaches: ||dL_T / dh_t|| for every step t.

The lesson of Bengio et al. 1994 and Pascanu et al. 2013, measured on a real model: take
one window of T steps, score only the prediction made at the last step, back-propagate
that one loss through time, and look at the gradient reaching each hidden state h_t. In a
vanilla RNN every step back multiplies it by diag(1 - h_t^2) Wh.T, so it shrinks (or
grows) about geometrically with the distance T - t, at a rate set by Wh's largest singular
value; the LSTM's additive cell path and the GRU's update gate let it through.

The window runs through the readable per-step cells (nnctl/layers/reference.py), which
keep the gradient reaching each h_t; nothing here changes the model's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnctl.backend import as_numpy
from nnctl.errors import ConfigError
from nnctl.layers.reference import reference_of

# Gate blocks of each cell's recurrent matrix Wh (H, k*H), in column order.
GATES = {"RNN": [""], "GRU": ["r", "z", "n"], "LSTM": ["i", "f", "o", "g"]}


@dataclass
class LayerFlow:
    name: str  # the layer's parameter prefix, e.g. "grus.0"
    norms: np.ndarray  # (T,): mean over the sequences of ||dL_T / dh_t||, t = 1..T
    singular_values: dict[str, float]  # the largest singular value of each gate block of Wh

    @property
    def decay(self) -> float:
        """||dL/dh_1|| / ||dL/dh_T||: below 1 the gradient fades going back, above 1 it grows."""
        return float(self.norms[0] / self.norms[-1]) if self.norms[-1] > 0 else float("nan")


@dataclass
class GradientFlow:
    cell: str
    steps: int
    sequences: int
    layers: list[LayerFlow]


def open_source(source: Path, overrides: list[str], data_dir: str | None):
    """(label, model in float64, data) of a config (the model as initialised) or a run or .npz (as trained)."""
    from nnctl import config, experiment
    from nnctl.models import MODELS
    from nnctl.open_run import open_run, wrong_kind

    if source.suffix in (".yaml", ".yml"):
        cfg = config.load(source, overrides)
        if not hasattr(MODELS.get(cfg["model"]["type"], "model.type"), "cells"):
            raise ConfigError(wrong_kind(source, cfg["model"]["type"], "recurrent"))
        data = experiment.build_data(cfg, data_dir)
        model = experiment.build_model(cfg, {**data.extras(), "vocab": data.vocab}, dtype=np.float64)
        return f"{cfg['name']} {model.cell} (untrained)", model, data
    run = open_run(source, needs="recurrent", dtype=np.float64)
    data = experiment.build_data(run.config, data_dir, vocab=run.vocab)
    epochs = (run.checkpoint.meta.get("progress") or {}).get("epoch")
    trained = f"trained, {epochs} epochs" if epochs else "trained"
    return f"{run.config.get('name', source.name)} {run.model.cell} ({trained})", run.model, data


def first_window(data, split: str, steps: int, batch_size: int | None = None) -> np.ndarray:
    """The first T + 1 words of each of a split's streams (N, T + 1), as training batches them."""
    if steps < 1:
        raise ConfigError(f"--steps {steps}: the window needs at least 1 step; give --steps 1 or more")
    if split not in data.splits:
        raise ConfigError(f"--split {split}: this data set has the splits {', '.join(data.splits)}")
    streams = data.streams(split, batch_size or data.batch_size)
    if steps + 1 > streams.shape[1]:
        raise ConfigError(f"--steps {steps}: the {split} split gives {streams.shape[0]} streams of "
                          f"{streams.shape[1]} words, enough for --steps {streams.shape[1] - 1} at most")
    return streams[:, : steps + 1]


def largest_singular_values(layer) -> dict[str, float]:
    """σ_max of each gate's block of the recurrent matrix ("" for the RNN's single block)."""
    Wh = as_numpy(layer.Wh.data).astype(np.float64)
    gates = GATES[type(layer).__name__]
    blocks = np.split(Wh, len(gates), axis=1)
    return {gate: float(np.linalg.norm(block, 2)) for gate, block in zip(gates, blocks)}


def gradient_flow(model, ids: np.ndarray) -> GradientFlow:
    """ids (N, T + 1) word ids: read ids[:, :T] from a zero state, score only the prediction of ids[:, T].

    Each sequence's own loss is back-propagated (the sum over sequences, not the mean), so
    the norms do not depend on how many sequences there are. Dropout is off (eval mode).
    """
    ids = np.asarray(ids)
    inputs, last_target = ids[:, :-1], ids[:, -1:]
    N, T = inputs.shape
    model.eval()
    twins = [reference_of(cell) for cell in model.cells]
    x = model.embedding.forward(inputs)
    for twin in twins:
        x, _ = twin.forward(x, None)
    model.decoder.forward(x[:, -1:], last_target)
    dx = np.zeros_like(x)
    dx[:, -1:] = model.decoder.backward(1.0)
    for twin in reversed(twins):
        dx = twin.backward(dx)
    model.zero_grad()  # the twins added into the model's gradients; this was only a measurement
    names = {id(layer): name for name, layer in model.named_layers()}
    layers = [LayerFlow(names[id(cell)], np.array([np.linalg.norm(dh, axis=1).mean() for dh in twin.dh]),
                        largest_singular_values(cell))
              for cell, twin in zip(model.cells, twins)]
    return GradientFlow(getattr(model, "cell", "lstm"), T, N, layers)
