"""Words and ids: the vocabulary and reading a whitespace-tokenised corpus.

A corpus is plain text, one sentence per line, words separated by spaces. Each line end
becomes `<eos>`, as is standard for Penn Treebank (Mikolov et al. 2010).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from nnctl.errors import DataError, VocabError, read_utf8

UNK = "<unk>"
EOS = "<eos>"


class Vocab:
    """word <-> id. Ids are assigned by decreasing frequency, so id 0 is the commonest word."""

    def __init__(self, words: list[str], counts: list[int] | None = None):
        if len(set(words)) != len(words):
            raise VocabError("vocabulary has duplicate words; rebuild it from the corpus")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.counts = np.asarray(counts if counts is not None else [0] * len(words), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @classmethod
    def build(cls, lines: list[list[str]], max_size: int | None = None, min_count: int = 1) -> "Vocab":
        """From tokenised lines: keep words seen >= min_count times, the commonest max_size."""
        counter = Counter(w for line in lines for w in line)
        eos = counter.pop(EOS, 0) + len(lines)  # <eos> ends every line: kept whatever its count
        unknown = counter.pop(UNK, 0)
        kept = [(w, c) for w, c in counter.most_common() if c >= min_count]
        if max_size is not None:
            kept = kept[: max(max_size - 2, 0)]  # places are kept for <eos> and <unk>
        dropped = sum(counter.values()) - sum(c for _, c in kept) + unknown
        kept += [(EOS, eos), (UNK, dropped)]
        kept.sort(key=lambda wc: -wc[1])
        return cls([w for w, _ in kept], [c for _, c in kept])

    def encode(self, words: list[str]) -> np.ndarray:
        unk = self.index.get(UNK)
        if unk is None:
            missing = [w for w in words if w not in self.index]
            if missing:
                raise VocabError(f"'{missing[0]}' is not in the vocabulary and it has no {UNK}")
        return np.fromiter((self.index.get(w, unk) for w in words), dtype=np.int64, count=len(words))

    def decode(self, ids) -> list[str]:
        return [self.words[int(i)] for i in ids]

    def id_of(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise VocabError(f"'{word}' is not in the vocabulary{_close(word, self.words)}") from None

    def save(self, path: Path) -> None:
        """vocab.txt: one `word<TAB>count` per line, in id order."""
        text = "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts.tolist()))
        from nnctl.safe_files import atomic_write_text

        atomic_write_text(Path(path), text)

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            pairs = [line.split("\t") for line in lines]
            return cls([p[0] for p in pairs], [int(p[1]) for p in pairs])
        except (OSError, UnicodeDecodeError, IndexError, ValueError) as error:
            raise VocabError(f"{path}: not a readable vocabulary file ({error}); "
                             "it should hold one 'word<TAB>count' per line") from None


def _close(word: str, words: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, words, n=3)
    return f" (close: {', '.join(close)})" if close else ""


def read_lines(path: Path) -> list[list[str]]:
    """Tokenised non-empty lines of a UTF-8 text file."""
    text = read_utf8(path, DataError, "file", "check the data path or --data-dir")
    return [line.split() for line in text.splitlines() if line.strip()]


def to_ids(lines: list[list[str]], vocab: Vocab) -> np.ndarray:
    """One flat id stream with <eos> after every line."""
    words = [w for line in lines for w in (*line, EOS)]
    return vocab.encode(words)
