"""The errors nnctl reports to a person: each one is a single line that names the problem and the fix.

`cli` turns any `NnctlError` into that one line and the error's `exit_code`; nothing
below the CLI prints or exits by itself.
"""


class NnctlError(Exception):
    """A mistake a user can fix. The message is one line: what is wrong, and what to do."""

    exit_code = 1


class ConfigError(NnctlError):
    """A config file or override is malformed, names an unknown key, or holds an impossible value."""

    exit_code = 2


class DataError(NnctlError):
    """A data file is missing, unreadable, or not in the expected format."""

    exit_code = 3


class CheckpointError(NnctlError):
    """A checkpoint or run directory cannot be read, or does not fit the model asked of it."""

    exit_code = 4


class VocabError(NnctlError):
    """A word is not in the vocabulary, or a vocabulary does not fit a checkpoint."""

    exit_code = 5


def read_utf8(path, error: type[NnctlError], what: str = "file", fix: str = "check the path",
              limit: int | None = None) -> str:
    """The text of a UTF-8 file, or one `error` line saying why it cannot be read.

    `what` names the file for the person ("config file"), `fix` says what to do when it
    is missing, `limit` is the most bytes such a file can sensibly hold. Devices
    (/dev/zero) are refused: they never end. Shared by configs, corpora and evaluation files.
    """
    import os
    import stat
    from pathlib import Path

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                raise error(f"{path}: is a device, not a {what}; give a file")
            if limit is not None and stat.S_ISREG(info.st_mode) and info.st_size > limit:
                raise error(f"{path}: {info.st_size:,} bytes, more than a {what} can hold ({limit:,}); "
                            "check that it is the right file")
            data = handle.read() if limit is None else handle.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; {fix}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}; give a file") from None
    except MemoryError:
        raise error(f"{path}: too large to read into memory; check that it is the right {what}") from None
    except OSError as os_error:
        raise error(f"{path}: cannot read the {what} ({os_error.strerror})") from None
    if limit is not None and len(data) > limit:
        raise error(f"{path}: more than {limit:,} bytes, more than a {what} can hold; check that it is the right file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        raise error(f"{path}: not UTF-8 text (byte {decode_error.start}); convert the {what} to UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it
