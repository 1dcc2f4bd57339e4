"""`nnctl gradflow`: how far back the gradient of a recurrent LM reaches (nnctl/gradflow.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from nnctl.cli.app import app, user_errors
from nnctl.cli.train import DATA_DIR_HELP, SET_HELP

NOT_RECURRENT = "gradflow needs a recurrent language model (lstm_lm, with cell lstm, gru or rnn)"


def _open_source(source: Path, overrides: list[str], data_dir: str | None):
    """(label, float64 model, data): a config builds its model untrained, a run or .npz loads it trained."""
    from nnctl import checkpoint, config, experiment
    from nnctl.errors import CheckpointError, ConfigError
    from nnctl.models import MODELS
    from nnctl.runs import resolve_run

    if source.suffix in (".yaml", ".yml"):
        cfg = config.load(source, overrides)
        if not hasattr(MODELS.get(cfg["model"]["type"], "model.type"), "cells"):
            raise ConfigError(f"{source}: model '{cfg['model']['type']}' is not recurrent; {NOT_RECURRENT}")
        data = experiment.build_data(cfg, data_dir)
        extras = {**data.extras(), "vocab": data.vocab}
        model = experiment.build_model(cfg, extras, dtype=np.float64)
        return f"{cfg['name']} {model.cell} (untrained)", model, data
    ckpt = checkpoint.load(checkpoint.resolve_path(resolve_run(source) if source.is_dir() else source))
    model = checkpoint.build_model(ckpt, dtype=np.float64)
    if not hasattr(model, "cells"):
        raise CheckpointError(f"{source}: model '{ckpt.meta.get('model_type')}' is not recurrent; {NOT_RECURRENT}")
    data = experiment.build_data(ckpt.meta["config"], data_dir, vocab=ckpt.vocab)
    epoch = (ckpt.meta.get("progress") or {}).get("epoch")
    return f"{ckpt.meta['config'].get('name', source.name)} {model.cell} (trained{f', {epoch} epochs' if epoch else ''})", \
        model, data


@app.command()
def gradflow(
    sources: list[Path] = typer.Argument(..., help="Experiment YAML files (the model as configured, untrained) "
                                         "or run folders / .npz files (trained); several are compared."),
    steps: int = typer.Option(35, "--steps", "-T", help="Length T of the window back-propagated through."),
    split: str = typer.Option("valid", "--split", help="Which split the window's words come from."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP + " Applies to the YAML files."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Also draw the curves to an image (.png, .svg, .pdf; needs matplotlib)."),
):
    """Gradient flow through time: back-propagate the loss of the LAST step of one window and
    print ||dL_T/dh_t|| for every step t and layer, plus the largest singular value of each
    gate block of the recurrent matrices.

    In a vanilla RNN the norm falls by orders of magnitude going back from t = T; in an LSTM
    or GRU much less. The norms are means over the window's sequences (each sequence's own
    loss), from a zero state, with dropout off.

    Example: `nnctl gradflow configs/studies/cells_ptb.yaml --set model.cell=rnn runs/cells_ptb_lstm -o flow.png`
    """
    from nnctl import plot as plot_mod
    from nnctl.console import console
    from nnctl.gradflow import first_window, gradient_flow

    with user_errors():
        flows, labels = [], []
        for source in sources:
            label, model, data = _open_source(source, set_, str(data_dir) if data_dir else None)
            flows.append(gradient_flow(model, first_window(data, split, steps)))
            labels.append(label)
        _print_flows(flows, labels)
        if output is not None:
            plot_mod.plot_gradient_flow(flows, labels, output)
            console().print(f"wrote {output}", markup=False, highlight=False)


def _print_flows(flows, labels) -> None:
    """A column of ||dL_T/dh_t|| per model and layer, then one summary row per layer."""
    from rich.table import Table
    from rich.text import Text

    from nnctl.console import console
    from nnctl.plot import sparkline

    out = console()
    for k, label in enumerate(labels):
        out.print(Text(f"[{k + 1}] {label}"))
    T = max(flow.steps for flow in flows)
    per_step = Table(box=None, title=f"||dL_T / dh_t||, the loss of step T = {T} alone",
                     title_justify="left")
    per_step.add_column("t", justify="right")
    columns = []
    for k, flow in enumerate(flows):
        for layer in flow.layers:
            per_step.add_column(Text(f"[{k + 1}] {layer.name}"), justify="right")
            columns.append(layer.norms)
    for t in range(T):
        per_step.add_row(str(t + 1), *[f"{norms[t]:.2e}" if t < len(norms) else "" for norms in columns])
    out.print(per_step)

    summary = Table(box=None, title="per layer: σ_max of Wh by gate; the norms, t = 1..T, log scale", title_justify="left")
    for column, justify in (("layer", "left"), ("σ_max Wh", "left"), ("t = 1..T", "left"), ("t = 1", "right"),
                            ("t = T", "right"), ("1 / T", "right")):
        summary.add_column(column, justify=justify, no_wrap=True)
    for k, flow in enumerate(flows):
        for layer in flow.layers:
            gates = "/".join(layer.singular_values)
            values = "/".join(f"{value:.2f}" for value in layer.singular_values.values())
            summary.add_row(Text(f"[{k + 1}] {layer.name}"), f"{values}" + (f" ({gates})" if gates else ""),
                            sparkline(np.log10(np.maximum(layer.norms, 1e-300)), 16),
                            f"{layer.norms[0]:.1e}", f"{layer.norms[-1]:.1e}", f"{layer.decay:.1e}")
    out.print(summary)
