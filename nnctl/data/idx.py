"""Reader for the idx format of MNIST and Fashion-MNIST (LeCun et al.), raw or gzipped.

    bytes 0-1  zero
    byte  2    element type: 0x08 unsigned byte (the only one these data sets use)
    byte  3    number of dimensions, d
    then d big-endian uint32 sizes, then the elements in row-major order

So images are magic 0x00000803 with sizes (N, 28, 28), labels 0x00000801 with (N,).
A gzip file is recognised by its first two bytes (1f 8b), not by its name.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from nnctl.errors import DataError

UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: broken gzip data ({error}); delete the file and download it again") from None
    return raw


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The array stored in an idx(.gz) file, as uint8; `ndim` checks the number of axes."""
    path = Path(path)
    data = _read_bytes(path)
    fix = "delete the file and download it again"
    if len(data) < 4:
        raise DataError(f"{path}: file is too short to be an idx file ({len(data)} bytes); {fix}")
    if data[0] != 0 or data[1] != 0 or data[2] != UBYTE:
        raise DataError(f"{path}: not an idx file of unsigned bytes (magic {data[:4].hex()}, "
                        f"expected 000008xx); {fix}")
    dims = data[3]
    if ndim is not None and dims != ndim:
        raise DataError(f"{path}: holds a {dims}-dimensional array, expected {ndim} dimensions "
                        f"(images have 3, labels 1); check that the file is the right one")
    header = 4 + 4 * dims
    if len(data) < header:
        raise DataError(f"{path}: truncated in the header; {fix}")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DataError(f"{path}: {what}: shape {shape} needs {expected} bytes of data, found {found}; {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array as idx (gzipped when `compress`, default: the name ends in .gz)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)
