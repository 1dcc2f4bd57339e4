"""`nnctl runs`: the table of runs under a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nnctl.cli.app import app, fail, user_errors


@app.command()
def runs(
    runs_dir: Path = typer.Argument(Path("runs"), help="Folder of runs (default: runs/)."),
    target: Optional[float] = typer.Option(None, "--target", help="A sweep folder: also give the steps each "
                                           "setting's validation metric took to reach this value (e.g. 0.85)."),
):
    """List the runs under a folder: model, data, epochs, best validation and test metric, wall time, state.

    A sweep folder (made by `nnctl sweep`) gets one row per setting instead: mean ± std over
    seeds of the best validation and the test metric, best first.

    Example: `nnctl runs runs/`
    """
    from nnctl.console import print_table
    from nnctl.metrics import format_value
    from nnctl.runs import find_runs, summarise_run
    from nnctl.sweep import SWEEP_FILE, Sweep

    with user_errors():
        if not runs_dir.is_dir():
            fail(f"{runs_dir}: no such folder; runs are created by `nnctl train` under runs/", 2)
        if (runs_dir / SWEEP_FILE).is_file():
            from nnctl.cli.sweep import print_settings

            print_settings(Sweep.open(runs_dir), target)  # read from the trials' run folders
            return
        if target is not None:
            fail(f"--target {target}: only for a sweep folder (one with sweep.yaml)", 2)
        rows = []
        for path in find_runs(runs_dir):
            run = summarise_run(path)
            rows.append([str(run.path.relative_to(runs_dir)), run.model_type, run.data_type, run.epochs,
                         format_value(run.metric, run.best_valid), format_value(run.metric, run.test),
                         f"{run.elapsed:.0f}s", run.state])
        if not rows:
            fail(f"{runs_dir}: no runs found (no */config.yaml below it)", 1)
        print_table(None, ["run", "model", "data", "epochs", "best valid", "test", "wall time", "state"], rows,
                    stacked=["run", "model", "data", "ep", "valid", "test", "time", "state"])
