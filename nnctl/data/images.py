"""MNIST and Fashion-MNIST: 28x28 grey images in 10 classes, 60,000 for training, 10,000 for test.

Files (idx format, raw or .gz, see nnctl/data/idx.py) are looked for in `path`, else in
`<data dir>/mnist` or `<data dir>/fashion-mnist`, and fetched (md5-checked) when missing
and `download` is on.

Splits: "train" is the first 60,000 - `validation` training images, "valid" the last
`validation` of them (a fixed hold-out, the same in every run), "test" the official 10,000.

Images come out channels-last, (N, 28, 28, 1) in the requested dtype, scaled to [0, 1]
("scale") or standardised with the training part's mean and standard deviation
("standardize"); labels are int64 class ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from nnctl.data.base import DATASETS, Dataset
from nnctl.data.download import RemoteFile, default_data_dir, locate
from nnctl.data.idx import read_idx
from nnctl.errors import DataError

# stem -> md5 of the published .gz file
MNIST_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")

FASHION_MD5 = {
    "train-images-idx3-ubyte": "cf8536b0aa1a6ac5fa3f23001093305c",
    "train-labels-idx1-ubyte": "10bea18fdb374794d4bb42e356e600c9",
    "t10k-images-idx3-ubyte": "f78720b4224f21cce2f2ccf2d7a94c9a",
    "t10k-labels-idx1-ubyte": "0d30e22e447f3c33dab9ed536400ac01",
}
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")


def remote_files(md5s: dict[str, str], bases: tuple[str, ...]) -> list[RemoteFile]:
    return [RemoteFile(f"{stem}.gz", md5, tuple(base + f"{stem}.gz" for base in bases))
            for stem, md5 in md5s.items()]


def find_idx_files(folder: Path, remotes: list[RemoteFile], allow_download: bool) -> dict[str, Path]:
    """stem -> path: a raw file if the folder has one, else the .gz (fetched if missing)."""
    found, wanted = {}, []
    for remote in remotes:
        stem = remote.name.removesuffix(".gz")
        if (folder / stem).is_file():
            found[stem] = folder / stem
        else:
            wanted.append(remote)
    for name, path in locate(wanted, folder, allow_download=allow_download).items():
        found[name.removesuffix(".gz")] = path
    return found


class IdxImageClassification(Dataset):
    """An MNIST-shaped data set: four idx files, 10 classes. Subclasses name the files."""

    folder_name: str = ""
    remotes: list[RemoteFile] = []
    unit = "images"
    num_classes = 10

    def __init__(self, path: str | None = None, batch_size: int = 100, validation: int = 5000,
                 normalize: Literal["scale", "standardize"] = "scale", download: bool = True,
                 train_examples: int | None = None, *, data_dir: str | None, dtype):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if validation < 0:
            raise ValueError(f"validation must be >= 0, got {validation}")
        if train_examples is not None and train_examples <= 0:
            raise ValueError(f"train_examples must be > 0 (or null for all), got {train_examples}")
        folder = Path(path).expanduser() if path else default_data_dir(data_dir) / self.folder_name
        files = find_idx_files(folder, self.remotes, allow_download=download)
        train_x = read_idx(files["train-images-idx3-ubyte"], ndim=3)
        train_y = read_idx(files["train-labels-idx1-ubyte"], ndim=1)
        test_x = read_idx(files["t10k-images-idx3-ubyte"], ndim=3)
        test_y = read_idx(files["t10k-labels-idx1-ubyte"], ndim=1)
        for images, labels, stem in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
            if len(images) != len(labels):
                raise DataError(f"{folder}: {stem} has {len(images)} images but {len(labels)} labels; "
                                f"the files do not belong together")
            if labels.size and labels.max() >= self.num_classes:
                raise DataError(f"{files[stem + '-labels-idx1-ubyte']}: label {labels.max()} is not a class "
                                f"0..{self.num_classes - 1}; check that the file is the right one")
        if validation >= len(train_x):
            raise ValueError(f"validation must be smaller than the {len(train_x)} training images, got {validation}")

        self.batch_size = batch_size
        self.dtype = np.dtype(dtype)
        keep = len(train_x) - validation
        self.splits = ("train", "valid", "test") if validation else ("train", "test")
        # train_examples: only the first N training images, to watch a model overfit (DLFS ch. 6
        # trains on 300); the validation images stay the same
        train_end = keep if train_examples is None else min(train_examples, keep)
        self.data = {"train": (train_x[:train_end], train_y[:train_end]), "test": (test_x, test_y)}
        if validation:
            self.data["valid"] = (train_x[keep:], train_y[keep:])
        # uint8 (N, H, W) -> dtype (N, H, W, 1): channels last, see nnctl/layers/conv.py
        scale = self.dtype.type(1 / 255)
        shift, spread = self.dtype.type(0), self.dtype.type(1)
        if normalize == "standardize":
            pixels = self.data["train"][0]
            shift = self.dtype.type(pixels.mean() / 255)
            spread = self.dtype.type(max(pixels.std() / 255, 1e-6))
        self.data = {split: (((x.astype(self.dtype) * scale - shift) / spread)[..., None],
                             y.astype(np.int64))
                     for split, (x, y) in self.data.items()}
        self.image_shape = self.data["train"][0].shape[1:]

    def extras(self) -> dict:
        return {"input_shape": tuple(self.image_shape), "num_classes": self.num_classes}

    def _split(self, split: str):
        if split not in self.data:
            raise DataError(f"{self.registered_name} has no split {split!r}; choose one of: {', '.join(self.splits)}")
        return self.data[split]

    def batches(self, split: str, *, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(images (B, 28, 28, 1), labels (B,)) batches; shuffled by a permutation from rng if given."""
        x, y = self._split(split)
        size = batch_size or self.batch_size
        order = rng.permutation(len(y)) if rng is not None else None
        for start in range(0, len(y), size):
            if order is None:
                yield x[start:start + size], y[start:start + size]
            else:
                rows = order[start:start + size]
                yield x[rows], y[rows]

    def num_batches(self, split: str, batch_size: int | None = None) -> int:
        size = batch_size or self.batch_size
        return -(-len(self._split(split)[1]) // size)


@DATASETS.register("mnist")
class MNIST(IdxImageClassification):
    """Handwritten digits (LeCun et al. 1998)."""

    folder_name = "mnist"
    remotes = remote_files(MNIST_MD5, MNIST_URLS)


@DATASETS.register("fashion_mnist")
class FashionMNIST(IdxImageClassification):
    """Zalando's article images (Xiao et al. 2017): a drop-in, harder replacement for MNIST."""

    folder_name = "fashion-mnist"
    remotes = remote_files(FASHION_MD5, FASHION_URLS)
