"""`nnctl train`: parse the options, run `nnctl.run.train`, print how it ended."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import typer

from nnctl.cli.app import app, fail, user_errors
from nnctl.cli.options import DATA_DIR_HELP, SET_HELP


@app.command()
def train(
    config: Optional[Path] = typer.Argument(None, help="Experiment YAML file, e.g. configs/lstm_ptb.yaml."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder from its "
                                          "checkpoints/last.npz, exactly where it stopped."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are created."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final summary."),
):
    """Train the model an experiment file describes, writing a run folder.

    The folder `runs/<name>/<YYYYmmdd-HHMMSS>/` gets the resolved config.yaml, metrics.jsonl,
    train.log and checkpoints/best.npz + last.npz. Ctrl-C (or SIGTERM) saves `last` and
    stops; `--resume` continues from it.

    Example: `nnctl train configs/cnn_fashion_mnist.yaml --set train.epochs=3 --data-dir ~/data`

    Resume: `nnctl train --resume runs/cnn_fashion_mnist/20261130-101500`

    Several processes (MPI, `pip install "nnctl[mpi]"`): `mpirun -n 4 nnctl train CONFIG`
    shares each global batch over the 4 processes; only the first writes the run folder.
    """
    from nnctl import distributed
    from nnctl import run as run_mod
    from nnctl.cli.app import set_error_output
    from nnctl.console import console
    from nnctl.trainer import TrainingStopped

    with user_errors():
        # under mpirun every rank meets the same config error; one line is enough
        set_error_output(distributed.get_communicator().rank == 0)
        try:  # a usage mistake (CONFIG and --resume, or neither) is a ConfigError too: exit 2
            result = run_mod.train(config, overrides=set_, resume=resume, runs_dir=runs_dir,
                                   data_dir=data_dir, quiet=quiet)
        except TrainingStopped as error:
            fail(str(error), 1)
        if result.state == "interrupted":
            if result.resume_command is not None:
                console().print(f"interrupted: saved {result.path / 'checkpoints' / 'last.npz'}\n"
                                f"resume with: {result.resume_command}")
            raise typer.Exit(143 if result.signum == signal.SIGTERM else 130)
