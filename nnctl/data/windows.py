"""Context windows for word2vec (CBOW): every word with the words around it in its sentence.

    sentence:   the  cat  sat  on  the  mat          window = 2
    target:               sat
    context:    the  cat   ·   on  the              (N, 2·window) ids + a mask

Sentences are the corpus lines; `<eos>` only marks where one ends and is never a target
or a context word, and windows never cross a line end (as in gensim, which trains on
one sentence at a time).

Per training epoch, vectorised over the whole corpus and then streamed in batches:

1. sub-sampling (Mikolov et al. 2013b): each occurrence of word w is kept with
   probability p_keep(w) (see `keep_probabilities`), so "the" and "<unk>" are thinned out;
   dropped words vanish *before* windows are cut, which widens the windows, as in word2vec.c;
2. the targets (words with at least one neighbour in their sentence) are shuffled;
3. each batch gathers its windows with one fancy index: positions i + offsets, masked
   where they leave the sentence;
4. dynamic window (word2vec.c, gensim): each target uses a reach b ~ U{1..window}, so
   near words count more often than far ones.

Evaluation splits (rng=None) use the full window, no sub-sampling, in corpus order.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np
import scipy.sparse as sp

from nnctl.data.base import DATASETS, Dataset
from nnctl.data.corpus import TextCorpus
from nnctl.data.sampling import keep_probabilities
from nnctl.data.text import EOS, Vocab
from nnctl.errors import DataError


class ContextBatch(NamedTuple):
    context: np.ndarray  # (N, 2·window) int64 word ids (masked slots hold any valid id)
    mask: np.ndarray  # (N, 2·window) bool: True where the slot is a real context word
    target: np.ndarray  # (N,) int64 word ids


class ContextWindows(Dataset):
    """CBOW examples from a TextCorpus. Extras: vocab_size (the Vocab itself goes to the model too)."""

    unit = "words"

    def __init__(self, corpus: TextCorpus, batch_size: int, window: int, subsample: float,
                 dynamic_window: bool):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        if not 0 <= subsample < 1:
            raise ValueError(f"subsample must be in [0, 1) (0 turns it off; word2vec uses 1e-3), got {subsample}")
        self.corpus = corpus
        self.vocab: Vocab = corpus.vocab
        self.batch_size = int(batch_size)
        self.window = int(window)
        self.subsample = float(subsample)
        self.dynamic_window = bool(dynamic_window)

        eos = self.vocab.index.get(EOS, -1)
        # split -> (tokens (n,), sentence number of each token (n,)), <eos> removed
        self.streams = {}
        for split, ids in corpus.ids.items():
            is_eos = ids == eos
            sentence = np.cumsum(is_eos) - is_eos  # a line's <eos> belongs to that line
            self.streams[split] = (ids[~is_eos], sentence[~is_eos])

        tokens, sentence = self.streams["train"]
        lengths = np.bincount(sentence)
        longest = int(lengths.max()) if lengths.size else 0
        if window > longest - 1:
            raise DataError(
                f"{corpus.paths['train']}: window {window} is larger than the sentences allow: the longest "
                f"line has {longest} word(s), so no word has more than {max(longest - 1, 0)} neighbour(s) "
                f"on one side; use window <= {max(longest - 1, 1)} or a corpus with longer lines")
        # only now, with the window known to fit the sentences, its offsets are made (C,)
        self.offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
        self.word_counts = np.bincount(tokens, minlength=len(self.vocab)).astype(np.int64)
        self.keep_prob = keep_probabilities(self.word_counts, self.subsample)

    # -- the Dataset protocol ----------------------------------------------------------
    def extras(self) -> dict:
        return {"vocab_size": len(self.vocab)}

    def corpus_words(self, split: str = "train") -> int:
        """Words in the split, <eos> not counted: what 'corpus words/s' is measured in."""
        return int(len(self.streams[split][0]))

    def num_batches(self, split: str, batch_size: int | None = None) -> int:
        """Exact for evaluation; the expected count for training (sub-sampling is random)."""
        batch_size = batch_size or self.batch_size
        tokens, sentence = self.streams[split]
        if split == "train" and self.subsample > 0:
            expected = float(self.keep_prob[tokens].sum())
            return max(1, math.ceil(expected / batch_size))
        return max(1, math.ceil(len(_targets(sentence)) / batch_size))

    def batches(self, split: str, *, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[ContextBatch]:
        if split not in self.streams:
            raise DataError(f"no split '{split}'; choose one of: {', '.join(self.streams)}")
        batch_size = batch_size or self.batch_size
        training = rng is not None
        tokens, sentence = self.streams[split]
        if training and self.subsample > 0:
            kept = rng.random(len(tokens)) < self.keep_prob[tokens]
            tokens, sentence = tokens[kept], sentence[kept]
        targets = _targets(sentence)
        if training:
            targets = rng.permutation(targets)
        n = len(tokens)
        for start in range(0, len(targets), batch_size):
            at = targets[start:start + batch_size]  # (N,) positions in `tokens`
            where = at[:, None] + self.offsets  # (N, C)
            inside = (where >= 0) & (where < n)
            where = np.clip(where, 0, max(n - 1, 0))
            mask = inside & (sentence[where] == sentence[at][:, None])
            if training and self.dynamic_window:
                reach = rng.integers(1, self.window + 1, size=len(at))
                mask &= np.abs(self.offsets) <= reach[:, None]
            yield ContextBatch(tokens[where], mask, tokens[at])

    # -- for count-based models (ppmi_svd) --------------------------------------------
    def cooccurrence(self, split: str = "train") -> sp.csr_matrix:
        """Symmetric (V, V) counts of word pairs at most `window` apart in one sentence.

        With dynamic_window, a pair d apart counts (window - d + 1) / window: the chance
        that word2vec's random reach b ~ U{1..window} includes it (Levy et al. 2015).
        """
        tokens, sentence = self.streams[split]
        V = len(self.vocab)
        rows, cols, weights = [], [], []
        for d in range(1, self.window + 1):  # a loop over offsets only; each step is vectorised
            same = sentence[d:] == sentence[:-d]
            left, right = tokens[:-d][same], tokens[d:][same]
            w = (self.window - d + 1) / self.window if self.dynamic_window else 1.0
            rows += [left, right]
            cols += [right, left]
            weights.append(np.full(2 * len(left), w))
        if not rows:
            return sp.csr_matrix((V, V))
        counts = sp.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(V, V))
        return counts.tocsr()  # duplicates are summed here


def _targets(sentence: np.ndarray) -> np.ndarray:
    """Positions whose sentence has another word (a one-word sentence gives no context)."""
    same_as_prev = np.zeros(len(sentence), dtype=bool)
    same_as_prev[1:] = sentence[1:] == sentence[:-1]
    same_as_next = np.zeros(len(sentence), dtype=bool)
    same_as_next[:-1] = same_as_prev[1:]
    return np.flatnonzero(same_as_prev | same_as_next)



@DATASETS.register("ptb_cbow")
class PTBWindows(ContextWindows):
    """Penn Treebank (Mikolov's split, 10k words) cut into CBOW context windows.

    Files ptb.{train,valid,test}.txt from `path`, else from <data dir>/ptb, downloaded there
    if missing. `window` words on each side; `subsample` is word2vec's `sample` threshold.
    """

    def __init__(self, path: str | None = None, batch_size: int = 1024, window: int = 5,
                 subsample: float = 1e-3, dynamic_window: bool = True,
                 *, data_dir: str | None, vocab: Vocab | None = None):
        super().__init__(TextCorpus.ptb(path, data_dir, vocab=vocab), batch_size, window, subsample,
                         dynamic_window)


@DATASETS.register("text_cbow")
class TextWindows(ContextWindows):
    """Any tokenised corpus as three files, one sentence a line, cut into CBOW context windows.

    The vocabulary is built on train: the max_vocab commonest words seen at least min_count
    times; the rest become <unk>. Relative paths are looked up in the working directory,
    then in the data directory.
    """

    def __init__(self, train: str, valid: str, test: str, max_vocab: int | None = None,
                 min_count: int = 1, batch_size: int = 1024, window: int = 5,
                 subsample: float = 1e-3, dynamic_window: bool = True,
                 *, data_dir: str | None, vocab: Vocab | None = None):
        corpus = TextCorpus.from_files(train, valid, test, max_vocab=max_vocab, min_count=min_count,
                                       data_dir=data_dir, vocab=vocab)
        super().__init__(corpus, batch_size, window, subsample, dynamic_window)
