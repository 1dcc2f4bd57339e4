"""Language-model data: a corpus as one token stream, read in windows for truncated BPTT.

    ptb    Penn Treebank, Mikolov's split (from data.path, else <data dir>/ptb, downloaded if missing)
    text   any corpus given as train / valid / test files (vocabulary built on train)

Each yields (x, y) windows of shape (N, T) = (batch_size, bptt) where y is x shifted by
one token, in corpus order: a language model never shuffles, because the LSTM state
carried from one window to the next must continue the same text.

`variable_bptt: true` draws each training window's length T (Merity et al. 2017): bptt
with probability 0.95, else bptt / 2, as the mean of a normal with std 5; then at least
min_bptt (default 5, or bptt if shorter) and at most max_bptt (default bptt + 40), as
AWD-LSTM does. So window boundaries fall in a different place every epoch, and every
token learns from some left context. The
lengths come from the epoch's random stream (the rng the Trainer passes to `batches`), so
a resumed epoch cuts the same windows; the Trainer scales each step's learning rate by
`lr_scale(batch)` = T / bptt, so a long window does not weigh more. Evaluation (no rng)
keeps fixed windows of bptt.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from nnctl.data.base import DATASETS, Dataset
from nnctl.data.corpus import TextCorpus
from nnctl.data.text import Vocab
from nnctl.errors import ConfigError, DataError

VARIABLE_BPTT_STD = 5.0  # the normal's std, and the 0.95 / 0.05 mix below, are AWD-LSTM's
FULL_LENGTH_P = 0.95
MIN_BPTT = 5  # min_bptt's default (or bptt, if shorter)
MAX_BPTT_DELTA = 40  # max_bptt's default: bptt + 40


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut a token stream into batch_size parallel streams, one per row: (N, steps).

    With the alphabet as the corpus and batch_size 4 (the 2 leftover tokens are dropped):

        a b c d e f g h i j k l m n o p q r s t u v w x y z
        ->  ┌ a b c d e f ┐
            │ g h i j k l │   row n continues the text where row n-1 stopped, so the
            │ m n o p q r │   state of row n after one window is the right start for
            └ s t u v w x ┘   row n of the next window.
    """
    steps = len(ids) // batch_size
    return np.ascontiguousarray(ids[: steps * batch_size].reshape(batch_size, steps))


def windows(streams: np.ndarray, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) windows of bptt steps over (N, steps) streams; y is x one token later.

    With bptt 2, the streams above give:

        x = ┌ a b ┐  y = ┌ b c ┐     then  x = ┌ c d ┐ y = ┌ d e ┐ ,  then the short
            │ g h │      │ h i │              │ i j │     │ j k │    last window
            │ m n │      │ n o │              │ o p │     │ p q │    x = [e; k; q; w]
            └ s t ┘      └ t u ┘              └ u v ┘     └ v w ┘    y = [f; l; r; x]

    The last window may be shorter, so every token but the first of a row is predicted once.
    """
    total = streams.shape[1] - 1
    for start in range(0, total, bptt):
        stop = min(start + bptt, total)
        yield streams[:, start:stop], streams[:, start + 1: stop + 1]


def variable_windows(streams: np.ndarray, bptt: int, rng: np.random.Generator, min_bptt: int,
                     max_bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Like `windows`, each window's length drawn from rng around bptt (see the module docstring)."""
    total, start = streams.shape[1] - 1, 0
    while start < total:
        mean = bptt if rng.random() < FULL_LENGTH_P else bptt / 2
        length = min(max(min_bptt, int(rng.normal(mean, VARIABLE_BPTT_STD))), max_bptt)
        stop = min(start + length, total)
        yield streams[:, start:stop], streams[:, start + 1: stop + 1]
        start = stop


def expected_length(bptt: int, min_bptt: int, max_bptt: int) -> float:
    """The mean window length `variable_windows` draws: sum of k * P(length = k), from the normal's CDF."""
    def below(k: float, mean: float) -> float:  # P(normal(mean, std) < k)
        return 0.5 * (1 + math.erf((k - mean) / (VARIABLE_BPTT_STD * math.sqrt(2))))

    if min_bptt == max_bptt:
        return float(min_bptt)
    total = 0.0
    for weight, mean in ((FULL_LENGTH_P, bptt), (1 - FULL_LENGTH_P, bptt / 2)):
        # int() rounds toward zero, so length k (min < k < max) comes from [k, k + 1)
        p_min = below(min_bptt + 1, mean)  # everything below min_bptt + 1 becomes min_bptt
        p_max = 1 - below(max_bptt, mean)
        inner = sum(k * (below(k + 1, mean) - below(k, mean)) for k in range(min_bptt + 1, max_bptt))
        total += weight * (min_bptt * p_min + inner + max_bptt * p_max)
    return total


class LanguageModelData(Dataset):
    """A TextCorpus served as BPTT windows. Subclasses only say where the files are."""

    unit = "tokens"

    def __init__(self, corpus: TextCorpus, batch_size: int, bptt: int, variable_bptt: bool = False,
                 min_bptt: int | None = None, max_bptt: int | None = None):
        self.check_options(batch_size=batch_size, bptt=bptt, variable_bptt=variable_bptt, min_bptt=min_bptt,
                           max_bptt=max_bptt)
        self.corpus = corpus
        self.vocab = corpus.vocab
        self.batch_size = batch_size
        self.bptt = bptt
        self.variable_bptt = variable_bptt
        self.min_bptt = min(MIN_BPTT, bptt) if min_bptt is None else min_bptt
        self.max_bptt = bptt + MAX_BPTT_DELTA if max_bptt is None else max_bptt
        for split in self.splits:  # report a data set too small now, not in the middle of training
            self.streams(split, batch_size)
        steps = len(corpus.ids["train"]) // batch_size - 1
        if variable_bptt and self.max_bptt > steps:
            given = "" if max_bptt is not None else f" (by default bptt + {MAX_BPTT_DELTA})"
            raise ConfigError(f"data.max_bptt: {self.max_bptt}{given} is longer than the train split allows "
                              f"({steps} steps in each of {batch_size} streams); set data.max_bptt <= {steps} "
                              "or turn data.variable_bptt off")

    @classmethod
    def check_options(cls, *, batch_size: int, bptt: int, variable_bptt: bool = False, min_bptt: int | None = None,
                      max_bptt: int | None = None, **_others) -> None:
        """ValueError naming the key; needs no data, so the config check runs it before any is read."""
        for name, value in (("batch_size", batch_size), ("bptt", bptt)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if not variable_bptt:
            return  # min_bptt and max_bptt are not used
        if min_bptt is not None and min_bptt <= 0:
            raise ValueError(f"min_bptt must be > 0, got {min_bptt}")
        if min_bptt is not None and min_bptt > bptt:
            raise ValueError(f"min_bptt must be <= bptt ({bptt}), got {min_bptt}")
        if max_bptt is not None and max_bptt < bptt:
            raise ValueError(f"max_bptt must be >= bptt ({bptt}), got {max_bptt}")

    def lr_scale(self, batch) -> float:
        """The learning rate's factor for a training window: T / bptt with variable_bptt, else 1."""
        return batch[0].shape[1] / self.bptt if self.variable_bptt else 1.0

    def _batch_size(self, split: str, batch_size: int | None) -> int:
        return self.batch_size if batch_size is None else batch_size

    def streams(self, split: str, batch_size: int) -> np.ndarray:
        """The (batch_size, steps) streams of a split, after checking it is long enough."""
        if split not in self.corpus.ids:
            raise DataError(f"no split {split!r}; this data set has {', '.join(self.corpus.ids)}")
        ids = self.corpus.ids[split]
        steps = len(ids) // batch_size
        if steps < 2:
            raise DataError(f"the {split} split has {len(ids)} tokens, too few for batch size {batch_size} "
                            f"(each of the {batch_size} streams needs 2 tokens or more); lower the batch size")
        if steps - 1 < self.bptt:
            raise DataError(f"data.bptt {self.bptt} is longer than the {split} split allows ({len(ids)} tokens "
                            f"in {batch_size} streams give {steps - 1} steps each); lower data.bptt or the batch size")
        return batchify(ids, batch_size)

    def extras(self):
        return {"vocab_size": len(self.vocab)}

    def batches(self, split: str, *, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x, y) int64 windows (N, T) in corpus order (an LM never shuffles). rng: with
        variable_bptt, the training windows' lengths are drawn from it; otherwise unused."""
        streams = self.streams(split, self._batch_size(split, batch_size))
        if self.variable_bptt and split == "train" and rng is not None:
            return variable_windows(streams, self.bptt, rng, self.min_bptt, self.max_bptt)
        return windows(streams, self.bptt)

    def num_batches(self, split: str, batch_size: int | None = None) -> int:
        """Windows in one pass; with variable_bptt, the training split's expected count (each epoch draws its own)."""
        steps = len(self.corpus.ids[split]) // self._batch_size(split, batch_size)
        if self.variable_bptt and split == "train":
            return max(1, round((steps - 1) / expected_length(self.bptt, self.min_bptt, self.max_bptt)))
        return -(-(steps - 1) // self.bptt)

    def num_tokens(self, split: str, batch_size: int | None = None) -> int:
        """Tokens predicted in one pass over `split` (what perplexity averages over)."""
        n = self._batch_size(split, batch_size)
        return n * (len(self.corpus.ids[split]) // n - 1)


@DATASETS.register("ptb")
class PennTreebank(LanguageModelData):
    """Penn Treebank, Mikolov et al.'s split: 10k-word vocabulary, 929k/73k/82k training/valid/test tokens.

    Files ptb.{train,valid,test}.txt from `path`, else from <data dir>/ptb, downloaded
    there if missing. (Evaluation batch size: train.eval_batch_size; pytorch/examples uses 10.)
    """

    def __init__(self, path: str | None = None, batch_size: int = 20, bptt: int = 35, variable_bptt: bool = False,
                 min_bptt: int | None = None, max_bptt: int | None = None, *,
                 data_dir: str | None, vocab: Vocab | None = None):
        self.check_options(batch_size=batch_size, bptt=bptt, variable_bptt=variable_bptt, min_bptt=min_bptt,
                           max_bptt=max_bptt)
        super().__init__(TextCorpus.ptb(path, data_dir, vocab=vocab), batch_size, bptt, variable_bptt,
                         min_bptt, max_bptt)


@DATASETS.register("text")
class TextFiles(LanguageModelData):
    """Any tokenised corpus as three files, one sentence a line; <eos> ends each line.

    The vocabulary is built on train: the max_vocab commonest words seen at least
    min_count times; the rest become <unk>. Relative paths are looked up in the working
    directory, then in the data directory.
    """

    def __init__(self, train: str, valid: str, test: str, max_vocab: int | None = None,
                 min_count: int = 1, batch_size: int = 20, bptt: int = 35, variable_bptt: bool = False,
                 min_bptt: int | None = None, max_bptt: int | None = None, *,
                 data_dir: str | None, vocab: Vocab | None = None):
        self.check_options(batch_size=batch_size, bptt=bptt, variable_bptt=variable_bptt, min_bptt=min_bptt,
                           max_bptt=max_bptt)
        corpus = TextCorpus.from_files(train, valid, test, max_vocab=max_vocab, min_count=min_count,
                                       data_dir=data_dir, vocab=vocab)
        super().__init__(corpus, batch_size, bptt, variable_bptt, min_bptt, max_bptt)

