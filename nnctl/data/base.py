"""What every data set offers the Trainer, and the registry that `data.type` picks from.

    data.extras()                      # sizes the model needs: {"input_shape": (1, 28, 28), "num_classes": 10}
    data.batches("train", rng=rng)     # an iterator of batches, shuffled with rng (None: in order)
    data.num_batches("valid")          # for progress bars
    data.vocab                         # text data sets: the Vocab, saved in the run directory

Constructors take the config keys of the `data:` section plus the extras `data_dir`
(from --data-dir / NNCTL_DATA) and `dtype`. They read and check their files at
construction time, so a missing file is reported before any run directory exists.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from nnctl.registry import Registry

DATASETS = Registry("data set")


class Dataset:
    splits: tuple[str, ...] = ("train", "valid", "test")
    unit: str = "items"  # what LossOutput.count counts, for throughput: "images", "tokens", "words"
    vocab = None

    def extras(self) -> dict[str, Any]:
        return {}

    def batches(self, split: str, *, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[Any]:
        raise NotImplementedError

    def num_batches(self, split: str, batch_size: int | None = None) -> int:
        raise NotImplementedError
