"""Run directories and crash-safe writes.

    runs/<name>/<YYYYmmdd-HHMMSS>/
        config.yaml        the resolved experiment (defaults filled in, overrides applied)
        vocab.txt          text data sets: the vocabulary, so eval/generate need only this folder
        metrics.jsonl      one JSON object per evaluation
        train.log          what the console showed, as plain lines
        status.json        running / finished / interrupted / failed, and the final figures
        checkpoints/best.npz, checkpoints/last.npz

Every file that is replaced (checkpoints, config, status) is written to a temporary file
in the same folder, flushed and fsynced, then moved over the old one with os.replace,
so a crash at any instant leaves either the old or the new complete file. A run folder
itself appears whole (config.yaml, vocab.txt, checkpoints/, status.json written in a
hidden folder, then renamed into place), and a process that trains it holds its lock
(`.lock`, an flock the system drops when the process ends, so a crash leaves no stale lock).
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, IO

from nnctl.errors import NnctlError

try:
    import fcntl
except ImportError:  # not on Windows: run folders are not locked there
    fcntl = None


def _fsync_dir(folder: Path) -> None:
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
    _fsync_dir(target.parent)


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


class RunDir:
    """One training run's folder. Created only once the experiment has been fully validated."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, runs_dir: Path, name: str, prepare: Callable[["RunDir"], None] | None = None) -> "RunDir":
        """runs_dir/name/<YYYYmmdd-HHMMSS>/, whole or not at all.

        `prepare(run)` writes the first files (config.yaml, vocab.txt, status.json) into a
        hidden folder, which is locked, then renamed into place. Any failure or Ctrl-C on the
        way leaves nothing behind, not even the folders made for it.
        """
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(runs_dir) / name
        made = [p for p in (base, *base.parents) if not p.exists()]
        tmp = None
        try:
            base.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{stamp}.", suffix=".tmp", dir=base))
            run = cls(tmp)
            (tmp / "checkpoints").mkdir()
            run.lock()
            if prepare is not None:
                prepare(run)
            path, suffix = base / stamp, 1
            while True:
                try:
                    os.rename(tmp, path)  # never onto another run: those are never empty
                    break
                except OSError as error:
                    if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # not two runs in one second
                        raise OSError(error.errno, error.strerror, str(path)) from None
                    suffix += 1
                    path = base / f"{stamp}-{suffix}"
            run.path = path
            _fsync_dir(base)
            return run
        except BaseException as error:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            for folder in made:  # innermost first
                try:
                    folder.rmdir()
                except OSError:
                    break
            if isinstance(error, OSError) and tmp is not None and str(tmp) in str(error.filename):
                # name the run folder that was being made, not the hidden one it was made in
                raise OSError(error.errno, error.strerror,
                              str(error.filename).replace(str(tmp), str(base / stamp))) from None
            raise

    def remove(self) -> None:
        """Delete this run folder (one interrupted before anything was trained in it)."""
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)

    def lock(self) -> None:
        """Hold the run folder's lock while this process trains it; another trainer gets one error line.

        The lock is an flock on `.lock`, which the system drops when the process ends, so a
        crash leaves nothing that blocks a later resume. The file keeps the holder's pid.
        """
        if fcntl is None:
            return
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise NnctlError(f"{self.path}: {who} is training this run now; wait for it to end "
                             f"or stop it (Ctrl-C there{f', or kill {holder}' if holder.isdigit() else ''}), "
                             "then resume") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError as error:
            os.close(fd)
            raise OSError(error.errno, error.strerror, str(self.path / ".lock")) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.close(fd)
            self._lock_fd = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def vocab_path(self) -> Path:
        return self.path / "vocab.txt"

    def checkpoint_path(self, which: str) -> Path:
        return self.path / "checkpoints" / f"{which}.npz"

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_line(self.metrics_path, json.dumps(record, sort_keys=False))

    def truncate_metrics(self, keep: int) -> None:
        """Keep the first `keep` records (a resumed run writes the later ones again)."""
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines(True) if self.metrics_path.exists() else []
        atomic_write_text(self.metrics_path, "".join(lines[:keep]))

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def log(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def write_status(self, status: dict[str, Any]) -> None:
        atomic_write_text(self.status_path, json.dumps(status, indent=2) + "\n")

    def status(self) -> dict[str, Any]:
        """status.json as a mapping; {} if it is missing, damaged or not a mapping."""
        try:
            status = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return status if isinstance(status, dict) else {}
