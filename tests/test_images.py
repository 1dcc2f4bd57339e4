"""idx reading, the MNIST-style data sets, and fetching files with md5 checks (all offline)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from nnctl.data import DATASETS
from nnctl.data.download import RemoteFile, locate
from nnctl.data.idx import read_idx, write_idx
from nnctl.errors import ConfigError, DataError

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_tiny_set(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> dict[str, np.ndarray]:
    """Four idx files of 28x28 images whose pixel values encode (split, index) for checking."""
    rng = np.random.default_rng(0)
    arrays = {
        STEMS[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        STEMS[1]: (np.arange(n_train) % 10).astype(np.uint8),
        STEMS[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        STEMS[3]: (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), array)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    back = read_idx(path, ndim=3)
    assert back.dtype == np.uint8 and np.array_equal(back, array)


def test_truncated_idx_is_a_one_line_data_error(tmp_path):
    path = tmp_path / "images"
    write_idx(path, np.zeros((3, 4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"images: truncated: shape \(3, 4, 4\) needs 48 bytes of data, found 43") as err:
        read_idx(path)
    assert "\n" not in str(err.value)


def test_wrong_magic_and_wrong_rank_are_data_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataError, match="bad: not an idx file"):
        read_idx(bad)
    labels = tmp_path / "labels"
    write_idx(labels, np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="holds a 1-dimensional array, expected 3"):
        read_idx(labels, ndim=3)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 20)[:-8])
    with pytest.raises(DataError, match="broken.gz"):
        read_idx(broken_gz)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_data_set_splits_scaling_and_batches(tmp_path, gz):
    arrays = write_tiny_set(tmp_path / "fashion-mnist", gz=gz)
    data = DATASETS.build({"type": "fashion_mnist", "validation": 5, "batch_size": 4, "download": False},
                          "data", data_dir=str(tmp_path), dtype=np.float32)
    assert data.extras() == {"input_shape": (28, 28, 1), "num_classes": 10}
    assert data.unit == "images"
    assert [data.num_batches(s) for s in ("train", "valid", "test")] == [7, 2, 3]
    x, y = data.data["valid"]
    # the hold-out is the LAST 5 training images, channels last, scaled to [0, 1]
    assert x.dtype == np.float32 and x.shape == (5, 28, 28, 1)
    assert np.allclose(x[..., 0] * 255, arrays[STEMS[0]][25:], atol=1e-3)
    assert y.tolist() == arrays[STEMS[1]][25:].tolist() and y.dtype == np.int64
    # shuffled batches are a permutation of the split; unshuffled ones keep the order
    seen = np.concatenate([yb for _, yb in data.batches("train", rng=np.random.default_rng(1))])
    assert sorted(seen.tolist()) == sorted(arrays[STEMS[1]][:25].tolist())
    ordered = np.concatenate([yb for _, yb in data.batches("train")])
    assert ordered.tolist() == arrays[STEMS[1]][:25].tolist()
    with pytest.raises(DataError, match="no split 'dev'"):
        next(data.batches("dev"))


def test_standardize_gives_zero_mean_unit_spread(tmp_path):
    write_tiny_set(tmp_path / "mnist")
    data = DATASETS.build({"type": "mnist", "validation": 0, "normalize": "standardize", "download": False},
                          "data", data_dir=str(tmp_path), dtype=np.float64)
    x = data.data["train"][0]
    assert data.splits == ("train", "test")
    assert x.mean() == pytest.approx(0, abs=1e-6) and x.std() == pytest.approx(1, abs=1e-6)


def test_path_key_and_bad_values(tmp_path):
    write_tiny_set(tmp_path / "elsewhere")
    data = DATASETS.build({"type": "mnist", "path": str(tmp_path / "elsewhere"), "validation": 3,
                           "download": False}, "data", data_dir=None, dtype=np.float32)
    assert data.num_batches("valid") == 1
    with pytest.raises(ConfigError, match="data.validation: must be smaller than the 30 training images"):
        DATASETS.build({"type": "mnist", "path": str(tmp_path / "elsewhere"), "validation": 30,
                        "download": False}, "data", data_dir=None, dtype=np.float32)


def test_missing_files_without_download_name_the_files_and_url(tmp_path):
    with pytest.raises(DataError) as err:
        DATASETS.build({"type": "fashion_mnist", "download": False}, "data", data_dir=str(tmp_path),
                       dtype=np.float32)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "fashion-mnist") in message
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in message
    assert "\n" not in message


@pytest.fixture
def local_server(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/served, in a thread."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def test_download_checks_md5(local_server, tmp_path):
    served, base = local_server
    payload = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03abc")
    (served / "labels.gz").write_bytes(payload)
    good = RemoteFile("labels.gz", hashlib.md5(payload).hexdigest(), (base + "missing.gz", base + "labels.gz"))
    found = locate([good], tmp_path / "ok")
    assert found["labels.gz"].read_bytes() == payload  # the first URL 404s, the mirror works
    assert read_idx(found["labels.gz"]).tolist() == [97, 98, 99]

    bad = RemoteFile("labels.gz", "0" * 32, (base + "labels.gz",))
    with pytest.raises(DataError, match="checksum mismatch") as err:
        locate([bad], tmp_path / "bad")
    assert "\n" not in str(err.value)
    assert list((tmp_path / "bad").glob("*")) == []  # no partial or temporary file left behind
