"""`nnctl` command line. Each module below registers its commands on `app`."""

from nnctl.cli.app import app
from nnctl.cli import train as _train  # noqa: F401  train, eval, gradcheck, config show, runs
from nnctl.cli import plot as _plot  # noqa: F401  plot, compare, plot-vectors


def main() -> None:
    app()
