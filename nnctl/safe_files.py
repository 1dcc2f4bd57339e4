"""Crash-safe file writing.

Every file that is replaced is written to a temporary file in the same folder, flushed and
fsynced, then moved over the old one with os.replace, so a crash at any instant leaves
either the old or the new complete file. Appended records (`append_line`) are whole lines,
fsynced one by one; `read_jsonl` skips a last line cut short by a crash.
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Callable, IO


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call write(file) on a temporary file beside `path`, then atomically replace `path`.

    What `path` names is respected: a symlink's target is the file replaced; a device or
    FIFO (`-o /dev/null`, a pipe) is written to, never replaced; a folder or a block device
    is refused. A new file gets the usual permissions (0666 less the umask), a replaced one
    keeps its own. Errors name `path`, never the temporary file.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise _naming(error, path) from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "is a folder; give a file name", str(path))
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, "is not a file, a character device or a pipe; give a file name",
                          str(path))
        buffer = io.BytesIO()  # some writers seek (np.save), which a pipe cannot
        write(buffer)
        try:
            with open(target, "wb") as handle:  # /dev/null, /dev/stdout, a FIFO: written in place
                handle.write(buffer.getvalue())
        except OSError as error:
            raise _naming(error, path) from None
        return
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as error:
        raise _naming(error, path) from None
    try:
        if mode is not None:
            os.fchmod(fd, stat.S_IMODE(mode))
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            raise _naming(error, path) from None
        raise
    fsync_dir(target.parent)


def _naming(error: OSError, path: Path) -> OSError:
    """The same error, naming the file the caller asked for (not a temporary one)."""
    return OSError(error.errno, error.strerror or str(error), str(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def append_line(path: Path, line: str) -> None:
    """Append one whole line and fsync: a crash can at worst cut the last line, which readers skip."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a .jsonl file; a line cut short by a crash is skipped."""
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError):  # cut short by a crash, or not JSON at all
            continue
    return records
