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
so a crash at any instant leaves either the old or the new complete file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, IO


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
    """Call write(file) on a temporary file beside `path`, then atomically replace `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


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
        except json.JSONDecodeError:
            continue
    return records


class RunDir:
    """One training run's folder. Created only once the experiment has been fully validated."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> "RunDir":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(runs_dir) / name
        base.mkdir(parents=True, exist_ok=True)
        path = base / stamp
        suffix = 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:  # two runs started in the same second
                suffix += 1
                path = base / f"{stamp}-{suffix}"
        (path / "checkpoints").mkdir()
        return cls(path)

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
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}
