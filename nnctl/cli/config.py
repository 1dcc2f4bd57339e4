"""`nnctl config show` and `nnctl gradcheck`: look at an experiment before training it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from nnctl.cli.app import app, fail, user_errors
from nnctl.cli.options import SET_HELP

config_app = typer.Typer(help="Inspect experiment files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    config: Path = typer.Argument(..., help="Experiment YAML file."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Print the resolved experiment: every default filled in, overrides applied.

    Example: `nnctl config show configs/lstm_ptb.yaml --set model.dropout=0.3`
    """
    from nnctl import config as config_mod

    with user_errors():
        print(config_mod.dump(config_mod.load(config, set_)), end="")


@app.command()
def gradcheck(
    config: Path = typer.Argument(..., help="Experiment YAML file whose model is checked."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    max_elements: int = typer.Option(200, "--max-elements", help="Elements checked per parameter (random sample)."),
):
    """Check the configured model's gradients against central differences, in float64 at a small size.

    Prints each parameter's largest relative error and exits non-zero if any exceeds 1e-6.

    Example: `nnctl gradcheck configs/cnn_fashion_mnist.yaml`
    """
    from nnctl import config as config_mod
    from nnctl import experiment
    from nnctl.console import console
    from nnctl.gradcheck import check_model
    from nnctl.models import MODELS
    from rich.table import Table
    from rich.text import Text

    with user_errors():
        cfg = config_mod.load(config, set_)
        cls = MODELS.get(cfg["model"]["type"], "model.type")
        try:
            small_model_cfg, extras, batch = cls.gradcheck_case(cfg["model"], np.random.default_rng(cfg["seed"]))
        except NotImplementedError as error:
            fail(str(error), 1)
        small = {**cfg, "model": small_model_cfg}
        model = experiment.build_model(small, extras, dtype=np.float64)
        report = check_model(model, batch, max_elements=max_elements)
        table = Table(title=f"gradient check: model '{cfg['model']['type']}' (float64, small size)")
        for column in ("parameter", "shape", "max rel. error", "result"):
            table.add_column(column)
        for r in report.results:
            ok = r.max_rel_error < 1e-6
            table.add_row(r.name, str(r.shape), f"{r.max_rel_error:.2e}",
                          Text("pass", style="green") if ok else Text("FAIL", style="red"))
        console().print(table)
        if report.max_rel_error >= 1e-6:
            fail(f"gradient check failed: {report.worst()}", 1)
