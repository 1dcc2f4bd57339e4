"""`nnctl gradflow`: how far back the gradient of a recurrent LM reaches (nnctl/gradflow.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nnctl.cli.app import app, user_errors
from nnctl.cli.options import DATA_DIR_HELP, SET_HELP

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
    from nnctl.gradflow import first_window, gradient_flow, open_source

    with user_errors():
        flows, labels = [], []
        for source in sources:
            label, model, data = open_source(source, set_, str(data_dir) if data_dir else None)
            flows.append(gradient_flow(model, first_window(data, split, steps)))
            labels.append(label)
        _print_flows(flows, labels)
        if output is not None:
            plot_mod.plot_gradient_flow(flows, labels, output)
            console().print(f"wrote {output}", markup=False, highlight=False)


def _print_flows(flows, labels) -> None:
    import numpy as np

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
