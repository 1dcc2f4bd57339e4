"""`nnctl` command line. Each module below registers its commands on `app`."""

from nnctl.cli.app import app, run
from nnctl.cli import train as _train  # noqa: F401  train, eval, gradcheck, config show, runs
from nnctl.cli import generate as _generate  # noqa: F401,E402  generate
from nnctl.cli import wordvec as _wordvec  # noqa: F401  similar, analogy, export
from nnctl.cli import plot as _plot  # noqa: F401  plot, compare, plot-vectors
from nnctl.cli import gradflow as _gradflow  # noqa: F401  gradflow


def main() -> None:
    from nnctl.backend import keep_freed_memory

    keep_freed_memory()
    run()
