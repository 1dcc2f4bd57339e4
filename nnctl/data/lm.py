"""Language-model data: a corpus as one token stream, read in windows for truncated BPTT.

    ptb    Penn Treebank, Mikolov's split (from data.path, else <data dir>/ptb, downloaded if missing)
    text   any corpus given as train / valid / test files (vocabulary built on train)

Each yields (x, y) windows of shape (N, T) = (batch_size, bptt) where y is x shifted by
one token, in corpus order: a language model never shuffles, because the LSTM state
carried from one window to the next must continue the same text.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from nnctl.data.base import DATASETS, Dataset
from nnctl.data.corpus import TextCorpus
from nnctl.data.text import Vocab
from nnctl.errors import DataError


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


class LanguageModelData(Dataset):
    """A TextCorpus served as BPTT windows. Subclasses only say where the files are."""

    unit = "tokens"

    def __init__(self, corpus: TextCorpus, batch_size: int, bptt: int):
        for name, value in (("batch_size", batch_size), ("bptt", bptt)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.corpus = corpus
        self.vocab = corpus.vocab
        self.batch_size = batch_size
        self.bptt = bptt
        for split in self.splits:  # report a data set too small now, not in the middle of training
            self.streams(split, batch_size)

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
        """(x, y) int64 windows (N, T) in corpus order; rng is ignored (an LM never shuffles)."""
        return windows(self.streams(split, self._batch_size(split, batch_size)), self.bptt)

    def num_batches(self, split: str, batch_size: int | None = None) -> int:
        steps = len(self.corpus.ids[split]) // self._batch_size(split, batch_size)
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

    def __init__(self, path: str | None = None, batch_size: int = 20, bptt: int = 35, *,
                 data_dir: str | None, vocab: Vocab | None = None):
        super().__init__(TextCorpus.ptb(path, data_dir, vocab=vocab), batch_size, bptt)


@DATASETS.register("text")
class TextFiles(LanguageModelData):
    """Any tokenised corpus as three files, one sentence a line; <eos> ends each line.

    The vocabulary is built on train: the max_vocab commonest words seen at least
    min_count times; the rest become <unk>. Relative paths are looked up in the working
    directory, then in the data directory.
    """

    def __init__(self, train: str, valid: str, test: str, max_vocab: int | None = None,
                 min_count: int = 1, batch_size: int = 20, bptt: int = 35, *,
                 data_dir: str | None, vocab: Vocab | None = None):
        corpus = TextCorpus.from_files(train, valid, test, max_vocab=max_vocab, min_count=min_count,
                                       data_dir=data_dir, vocab=vocab)
        super().__init__(corpus, batch_size, bptt)

