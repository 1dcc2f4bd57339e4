"""The Typer application and the one place where errors become a line and an exit code.

Each command module (`nnctl/cli/train.py`, `generate.py`, `wordvec.py`, ...) adds its
commands with `@app.command()` and wraps its body in `with user_errors():`, so a mistake
a user can fix prints one line and exits with the error's code, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
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


def _print_error(message: str) -> None:
    from nnctl.console import print_error

    if _print_errors:
        print_error(" ".join(str(message).split()))  # one line, whatever the message held


def fail(message: str, exit_code: int = 1) -> None:
    """Print one error line on stderr and exit."""
    _print_error(message)
    raise typer.Exit(exit_code)


def os_error_line(error: OSError) -> str:
    """'<path>: <what went wrong>[; what to do]' for an OSError that reached the CLI."""
    where = f"{error.filename}: " if getattr(error, "filename", None) else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"{where}no space left to write ({error.strerror}); free space on that disk or write "
                "elsewhere (e.g. --runs-dir), then run the command again")
    return f"{where}{error.strerror or error}"


@contextlib.contextmanager
def user_errors():
    """Turn NnctlError (and a few OS-level failures) into one line + exit code."""
    try:
        yield
    except NnctlError as error:
        fail(str(error), error.exit_code)
    except MemoryError:
        fail("out of memory; try a smaller batch_size or model", 1)
    except BrokenPipeError:  # `nnctl ... | head`: the reader has all it wanted
        _quiet_stdout()
        raise typer.Exit(0) from None
    except OSError as error:  # a full disk, a permission problem
        fail(os_error_line(error), 1)


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so Python's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def usage_line(error) -> str:
    """Click's usage error (an unknown option, a value out of range) as one line naming the fix."""
    ctx = getattr(error, "ctx", None)
    command = ctx.command_path if ctx is not None else "nnctl"
    return f"{error.format_message().rstrip('.')}; see `{command} --help`"


def run(args: list[str] | None = None) -> None:
    """Run the application: every way out is an exit code, and every error is one line on stderr.

    Click and Typer would print a usage box for a bad option; here it is one line (the box
    belongs to `--help`), exit 2, like any other mistake in what was asked.
    """
    try:  # Typer 0.2x carries its own copy of Click
        from typer._click import exceptions as click_errors
    except ImportError:
        from click import exceptions as click_errors

    try:
        code = app(args=args, prog_name="nnctl", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as error:  # plain `nnctl` or `nnctl config`: the help
        help_text = error.ctx.get_help()  # Typer prints its rich help itself and returns ""
        if help_text:
            typer.echo(help_text)
        code = 0
    except click_errors.UsageError as error:
        _print_error(usage_line(error))
        code = 2
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C before a command has started, or at a prompt
        code = 130
    except BrokenPipeError:
        _quiet_stdout()
        code = 0
    sys.exit(code if isinstance(code, int) else 0)
