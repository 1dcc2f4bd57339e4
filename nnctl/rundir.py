"""Run directories.

    runs/<name>/<YYYYmmdd-HHMMSS>/
        config.yaml        the resolved experiment (defaults filled in, overrides applied)
        vocab.txt          text data sets: the vocabulary, so eval/generate need only this folder
        metrics.jsonl      one JSON object per evaluation
        train.log          what the console showed, as plain lines
        status.json        running / finished / interrupted / failed, and the final figures
        checkpoints/best.npz, checkpoints/last.npz

Files that are replaced (checkpoints, config, status) are written atomically
(nnctl.safe_files), so a crash leaves either the old or the new complete file. A run folder
itself appears whole (config.yaml, vocab.txt, checkpoints/, status.json written in a
hidden folder, then renamed into place), and a process that trains it holds its lock
(`.lock`, an flock the system drops when the process ends, so a crash leaves no stale lock).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from nnctl.errors import NnctlError
from nnctl.safe_files import append_line, atomic_write_text, fsync_dir, read_jsonl

try:
    import fcntl
except ImportError:  # not on Windows: run folders are not locked there
    fcntl = None


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
            fsync_dir(base)
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
