"""`nnctl` command line. Each module below registers its commands on `app`."""

from nnctl.cli.app import app, run
from nnctl.cli import train as _train  # noqa: F401  train
from nnctl.cli import evaluate as _evaluate  # noqa: F401  eval
from nnctl.cli import config as _config  # noqa: F401  config show, gradcheck
from nnctl.cli import runs as _runs  # noqa: F401  runs
from nnctl.cli import sweep as _sweep  # noqa: F401  sweep
from nnctl.cli import generate as _generate  # noqa: F401,E402  generate
from nnctl.cli import wordvec as _wordvec  # noqa: F401  similar, analogy, export
from nnctl.cli import plot as _plot  # noqa: F401  plot, compare, plot-vectors
from nnctl.cli import gradflow as _gradflow  # noqa: F401  gradflow


def main() -> None:
    from nnctl.backend import keep_freed_memory

    keep_freed_memory()
    run()
