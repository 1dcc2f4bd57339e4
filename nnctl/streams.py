"""Every random stream of a run, named once.

Each stream is `np.random.default_rng([seed, STREAM, *keys])`: NumPy's SeedSequence turns
the list into independent generators, so a stream's draws never depend on how many draws
another stream made. That is what makes a resumed run exact: the epoch order depends only
on (seed, epoch), not on how much dropout ran before the stop.
"""

from __future__ import annotations

import numpy as np

MODEL = 0  # weight initialisation, then each layer's dropout masks (experiment seed)
EPOCH_ORDER = 1  # the shuffled order of training batches, one stream per epoch
DATA = 2  # building a data set: subsets, splits, subsampling (experiment seed)
RANK_DROPOUT = 4  # under MPI, each rank's dropout masks (keys: rank, layer, step)
ADDITION_PROBLEMS = 19  # the addition data set's problems and split (its own data.seed)
DATE_PROBLEMS = 20  # the dates data set's problems and split (its own data.seed)
PAIR_SPLIT = 21  # a pairs file's valid/test split (its own data.seed)


def stream(seed: int, which: int, *keys: int) -> np.random.Generator:
    """The generator of stream `which` for `seed` (and the stream's keys, e.g. the epoch)."""
    return np.random.default_rng([seed, which, *keys])
