"""The Typer application and the one place where errors become a line and an exit code.

Each command module (`nnctl/cli/train.py`, `generate.py`, `wordvec.py`, ...) adds its
commands with `@app.command()` and wraps its body in `with user_errors():`, so a mistake
a user can fix prints one line and exits with the error's code, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys

import typer

from nnctl.errors import NnctlError

app = typer.Typer(
    name="nnctl",
    help="Deep learning from first principles on NumPy, driven by YAML experiment files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)


_print_errors = True


def set_error_output(enabled: bool) -> None:
    """Under mpirun every rank meets the same error; only rank 0 prints it (all still exit with its code)."""
    global _print_errors
    _print_errors = enabled


def fail(message: str, exit_code: int = 1) -> None:
    """Print one error line on stderr and exit."""
    from nnctl.console import error_console

    if _print_errors:
        error_console().print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


@contextlib.contextmanager
def user_errors():
    """Turn NnctlError (and a few OS-level failures) into one line + exit code."""
    try:
        yield
    except NnctlError as error:
        fail(str(error), error.exit_code)
    except MemoryError:
        fail("out of memory; try a smaller batch_size or model", 1)
    except OSError as error:  # a full disk, a permission problem
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        fail(f"{where}{error.strerror or error}", 1)
    except BrokenPipeError:  # `nnctl ... | head`
        sys.exit(0)
