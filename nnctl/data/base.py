"""What every data set offers the Trainer, and the registry that `data.type` picks from.

    data.extras()                      # sizes the model needs: {"input_shape": (1, 28, 28), "num_classes": 10}
    data.batches("train", rng=rng)     # an iterator of batches, shuffled with rng (None: in order)
    data.num_batches("valid")          # for progress bars
    data.vocab                         # text data sets: the Vocab, saved in the run directory
    data.shard(batch, rank, size)      # data-parallel runs: this rank's part of one global batch

Constructors take the config keys of the `data:` section plus the extras they name
among `data_dir` (from --data-dir / NNCTL_DATA), `dtype` (the image sets), `rng` and `vocab`
(text sets: a run's saved vocabulary). They read and check their files at
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

    def shard(self, batch: Any, rank: int, size: int) -> Any:
        """Rank `rank`'s share of one global batch when `size` processes train together.

        The default cuts every array of the batch (a tuple or NamedTuple of arrays whose
        first axis is the batch) into `size` contiguous row blocks, which is right for all
        nnctl data sets: images and labels (rows are images), CBOW's ContextBatch (rows are
        examples), and the language model's (N, T) windows, where row n is the n-th of the
        N parallel token streams, so each rank keeps the same streams window after window
        and its carried LSTM state stays the right start for its next window.
        A data set whose batches are laid out otherwise overrides this.
        """
        rows = shard_rows(batch_length(batch), rank, size)
        if isinstance(batch, tuple):
            return type(batch)(*(part[rows] for part in batch)) if hasattr(batch, "_fields") \
                else tuple(part[rows] for part in batch)
        return batch[rows]


def shard_rows(n: int, rank: int, size: int) -> slice:
    """Rows of rank `rank` when n rows are cut into `size` contiguous blocks (sizes differ by <= 1).

    Concatenating the blocks in rank order gives the n rows back, which is how a rank-sharded
    carried state is reassembled for a checkpoint.
    """
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def batch_length(batch: Any) -> int:
    """How many rows (items, examples, streams) a batch holds: the first axis of its first array."""
    first = batch[0] if isinstance(batch, tuple) else batch
    return int(first.shape[0])
