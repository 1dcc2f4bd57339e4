"""Finding data files on disk, and fetching them from their public locations when missing.

Where data lives, first match wins: the `--data-dir` option, else the `NNCTL_DATA`
environment variable, else `~/.cache/nnctl`. A data set's files sit in a subfolder named
after it (`<data dir>/ptb/ptb.train.txt`), or a config gives a `path:` to a folder that
already holds them.

Downloads are verified with md5 (the checksums published with each data set), written
to a temporary file and renamed, so an interrupted download never leaves a file that
looks complete.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nnctl.errors import DataError
from nnctl.safe_files import atomic_write


@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name on disk
    md5: str
    urls: tuple[str, ...]  # the official location first, then mirrors


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("NNCTL_DATA"):
        return Path(os.environ["NNCTL_DATA"]).expanduser()
    return Path("~/.cache/nnctl").expanduser()


def find_file(path: str, data_dir: str | os.PathLike | None) -> Path:
    """A relative path is looked up in the working directory, then in the data directory."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and not candidate.exists() and data_dir:
        in_data_dir = Path(data_dir).expanduser() / candidate
        if in_data_dir.exists():
            return in_data_dir
    return candidate


def download(remote: RemoteFile, dest: Path, progress: Callable[[int, int | None], None] | None = None,
             timeout: float = 30.0) -> Path:
    """Fetch `remote` into `dest` (a file path), trying each URL in turn; verify its md5."""
    errors = []
    for url in remote.urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                digest = hashlib.md5()
                done = 0

                def write(handle):
                    nonlocal done
                    for block in iter(lambda: response.read(1 << 16), b""):
                        handle.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
                    if digest.hexdigest() != remote.md5:
                        raise DataError(f"{url}: checksum mismatch (md5 {digest.hexdigest()}, "
                                        f"expected {remote.md5}); the download is corrupt")

                atomic_write(dest, write)
                return dest
        except DataError as error:
            errors.append(str(error))
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            errors.append(f"{url}: {getattr(error, 'reason', error)}")
    raise DataError(f"could not download {remote.name} ({'; '.join(errors)})")


def locate(files: list[RemoteFile], folder: Path, *, allow_download: bool = True,
           progress: Callable[[str, int, int | None], None] | None = None) -> dict[str, Path]:
    """Paths of `files` in `folder`, downloading the missing ones if allowed.

    A missing file that cannot be fetched gives one DataError that says which files,
    where they were looked for, and the URL to fetch them from by hand.
    """
    found: dict[str, Path] = {}
    missing = []
    for remote in files:
        path = folder / remote.name
        if path.is_file():
            found[remote.name] = path
        else:
            missing.append(remote)
    for remote in missing:
        if allow_download:
            try:
                report = (lambda done, total, name=remote.name: progress(name, done, total)) if progress else None
                found[remote.name] = download(remote, folder / remote.name, report)
                continue
            except DataError as error:
                reason = str(error)
        else:
            reason = "downloads are off"
        names = ", ".join(r.name for r in missing)
        raise DataError(f"missing {names} in {folder} ({reason}); download {remote.urls[0]} "
                        f"into that folder, or point --data-dir / NNCTL_DATA / data.path at a folder that has them")
    return found
