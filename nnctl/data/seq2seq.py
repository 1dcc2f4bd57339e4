"""Sequence-to-sequence data: pairs of character strings, source -> target.

    addition    "16+75" -> "91", generated from a seed (Deep Learning from Scratch 2, ch. 7)
    dates       "TUESDAY, SEPTEMBER 25, 1984" -> "1984-09-25", generated from a seed (ch. 8)
    seq_pairs   any text file of pairs, one per line, split on a separator

Each batch is (source (N, S), target (N, 1 + T)) int64 ids, padded to the widths S and T
of the longest source and target of the whole data set (all splits), so every batch has
the same shape:

    source  1 6 + 7 5 <pad> <pad>              S = 7
    target  <s> 9 1 <eos> <pad>                1 + T, T = the longest answer + <eos>

The decoder reads target[:, :-1] (teacher forcing) and is scored on target[:, 1:];
<pad> is scored nowhere. The vocabulary's first three ids are always <pad>, <s>, <eos>.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterator

import numpy as np

from nnctl import streams
from nnctl.data.base import DATASETS, Dataset
from nnctl.data.download import find_file
from nnctl.data.text import EOS, Vocab
from nnctl.errors import DataError, VocabError, read_utf8

PAD, START = "<pad>", "<s>"
SPECIALS = (PAD, START, EOS)
PAD_ID, START_ID, EOS_ID = 0, 1, 2


def char_vocab(texts: list[str]) -> Vocab:
    """<pad>, <s>, <eos>, then every character of `texts` in sorted order (with its count)."""
    counts: dict[str, int] = {}
    for text in texts:
        for ch in text:
            counts[ch] = counts.get(ch, 0) + 1
    chars = sorted(counts)
    return Vocab([*SPECIALS, *chars], [len(texts)] * 3 + [counts[c] for c in chars])


def check_char_vocab(vocab: Vocab) -> None:
    if tuple(vocab.words[:3]) != SPECIALS:
        raise VocabError(f"the vocabulary does not start with {', '.join(SPECIALS)}; it is not a seq2seq vocabulary")


def encode_chars(vocab: Vocab, texts: list[str], width: int, where: str) -> np.ndarray:
    """Strings -> (len(texts), width) ids padded with <pad>; unknown characters are one VocabError line."""
    out = np.full((len(texts), width), PAD_ID, dtype=np.int64)
    index = vocab.index
    unknown: set[str] = set()
    for row, text in enumerate(texts):
        ids = [index.get(ch, -1) for ch in text]
        if -1 in ids:
            unknown.update(ch for ch in text if ch not in index)
            continue
        out[row, : len(ids)] = ids
    if unknown:
        shown = " ".join(repr(c) for c in sorted(unknown))
        raise VocabError(f"{where}: characters not in the model's vocabulary: {shown}")
    return out


def decode_chars(vocab: Vocab, ids) -> str:
    """Ids up to the first <eos> (or <pad>) -> the string."""
    out = []
    for i in ids:
        i = int(i)
        if i in (EOS_ID, PAD_ID):
            break
        out.append(vocab.words[i])
    return "".join(out)


class PairData(Dataset):
    """Source/target string pairs in train / valid / test splits, served as padded id batches.

    `vocab` (from a checkpoint) keeps a trained model's ids; otherwise it is built from
    every split's characters (the data sets here are closed alphabets: digits, month names).
    """

    unit = "characters"

    def __init__(self, pairs: dict[str, list[tuple[str, str]]], batch_size: int, vocab: Vocab | None, where: str):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        for split in self.splits:
            if not pairs.get(split):
                raise DataError(f"{where}: the {split} split is empty; give it at least one pair")
        self.batch_size = batch_size
        every = [text for split_pairs in pairs.values() for pair in split_pairs for text in pair]
        if vocab is None:
            vocab = char_vocab(every)
        check_char_vocab(vocab)
        self.vocab = vocab
        self.source_length = max(len(s) for p in pairs.values() for s, _ in p)
        self.target_length = max(len(t) for p in pairs.values() for _, t in p) + 1  # + <eos>
        self.pairs = pairs
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split, split_pairs in pairs.items():
            src = encode_chars(vocab, [s for s, _ in split_pairs], self.source_length, f"{where} ({split})")
            tgt = encode_chars(vocab, [t for _, t in split_pairs], self.target_length + 1, f"{where} ({split})")
            tgt[:, 1:] = tgt[:, :-1]  # shift right: <s> first, then the answer
            tgt[:, 0] = START_ID
            lengths = np.array([len(t) for _, t in split_pairs])
            tgt[np.arange(len(tgt)), lengths + 1] = EOS_ID
            self.arrays[split] = (src, tgt)

    def extras(self):
        return {"vocab_size": len(self.vocab), "source_length": self.source_length,
                "target_length": self.target_length}

    def _split(self, split: str):
        if split not in self.arrays:
            raise DataError(f"no split {split!r}; this data set has {', '.join(self.arrays)}")
        return self.arrays[split]

    def batches(self, split: str, *, rng: np.random.Generator | None = None,
                batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(source (B, S), target (B, 1 + T)) batches; shuffled by a permutation from rng if given."""
        src, tgt = self._split(split)
        n = self.batch_size if batch_size is None else batch_size
        if n <= 0:
            raise DataError(f"batch size must be > 0, got {n}")
        order = rng.permutation(len(src)) if rng is not None else None
        for start in range(0, len(src), n):
            rows = slice(start, start + n) if order is None else order[start: start + n]
            yield src[rows], tgt[rows]

    def num_batches(self, split: str, batch_size: int | None = None) -> int:
        n = self.batch_size if batch_size is None else batch_size
        return -(-len(self._split(split)[0]) // n)


def split_pairs(pairs: list[tuple[str, str]], valid: int, test: int, rng: np.random.Generator,
                where: str) -> dict[str, list[tuple[str, str]]]:
    """Shuffle, then the first `test` pairs are test, the next `valid` valid, the rest train."""
    if valid < 1 or test < 1:
        raise DataError(f"{where}: valid and test must each hold at least one pair, got valid {valid} and test {test}")
    if valid + test >= len(pairs):
        raise DataError(f"{where}: {len(pairs):,} pairs leave nothing to train on after valid {valid:,} and "
                        f"test {test:,}; lower them")
    order = rng.permutation(len(pairs))
    shuffled = [pairs[i] for i in order]
    return {"train": shuffled[valid + test:], "valid": shuffled[test: valid + test], "test": shuffled[:test]}


# -- addition ----------------------------------------------------------------------------
DIGIT_MIX = (0.10, 0.32, 0.58)  # operands of 1, 2, 3 digits, as in the book's addition.txt


def addition_pairs(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """n distinct problems "a+b" -> "a+b's value", each operand of 1 to 3 digits (DIGIT_MIX).

    Each (digits of a, digits of b) class gets its share of the n problems, drawn without
    replacement inside the class, so duplicates never skew the mix. Of 50,000, the classes
    one digit + one digit (100 problems) and one digit + two digits (900) cannot fill their
    share; the shortfall goes to the other classes (a one-digit first operand: 8%, not 10%).
    """
    sizes, lows = np.array([10, 90, 900]), np.array([0, 10, 100])
    capacity = np.outer(sizes, sizes)
    if not 1 <= n <= int(capacity.sum()):
        raise ValueError(f"num_examples must be in 1..{int(capacity.sum())}, got {n}")
    share = np.outer(DIGIT_MIX, DIGIT_MIX)
    counts = np.zeros((3, 3), dtype=np.int64)
    while counts.sum() < n:  # hand out what is left in proportion to the classes not yet full
        room = capacity - counts
        weights = share * (room > 0)
        extra = np.minimum(np.floor((n - counts.sum()) * weights / weights.sum()).astype(np.int64), room)
        if extra.sum() == 0:  # rounding left a few: give them one by one to the largest shares
            extra.flat[np.argmax(weights)] = 1
        counts += extra
    a, b = [], []
    for i in range(3):
        for j in range(3):
            index = rng.choice(int(capacity[i, j]), size=int(counts[i, j]), replace=False)
            a.append(lows[i] + index // sizes[j])
            b.append(lows[j] + index % sizes[j])
    order = rng.permutation(n)
    a, b = np.concatenate(a)[order], np.concatenate(b)[order]
    return [(f"{x}+{y}", str(x + y)) for x, y in zip(a.tolist(), b.tolist())]


@DATASETS.register("addition")
class Addition(PairData):
    """Addition as text, "16+75" -> "91": num_examples distinct problems drawn from `seed`.

    Operands have 1, 2 or 3 digits about 10%, 32% and 58% of the time, as in the book's
    addition.txt; `test` and `valid` problems are held out.
    """

    def __init__(self, num_examples: int = 50_000, valid: int = 1000, test: int = 5000, seed: int = 1,
                 batch_size: int = 128, *, data_dir: str | None = None, vocab: Vocab | None = None):
        rng = streams.stream(seed, streams.ADDITION_PROBLEMS)
        pairs = addition_pairs(num_examples, rng)
        super().__init__(split_pairs(pairs, valid, test, rng, "data (addition)"), batch_size, vocab,
                         "data (addition)")


# -- dates -------------------------------------------------------------------------------
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# {W}: weekday, {M}: month name, {d}: day, {Y}: year; {m}/{d}/{y}: numbers
DATE_FORMATS = ["{M} {d}, {Y}", "{W}, {M} {d}, {Y}", "{d} {M} {Y}", "{W}, {d} {M} {Y}", "{M} {d} {Y}",
                "{d} {M}, {Y}", "{m}/{d}/{y}", "{W} {M} {d}, {Y}", "{Y} {M} {d}", "{W} {d} {M} {Y}"]
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 1).toordinal(), dt.date(2017, 12, 31).toordinal()


def format_date(day: dt.date, form: int, full_names: bool, case: int) -> str:
    """One human way to write `day`: DATE_FORMATS[form], full or 3-letter names, lower/title/upper case."""
    month, weekday = MONTHS[day.month - 1], DAYS[day.weekday()]
    if not full_names:
        month, weekday = month[:3], weekday[:3]
    text = DATE_FORMATS[form].format(W=weekday, M=month, d=day.day, Y=day.year, m=day.month, y=f"{day.year % 100:02d}")
    return (text.lower(), text, text.upper())[case]


def date_pairs(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """n distinct human-written dates from 1970-2017 -> "YYYY-MM-DD"."""
    if not 1 <= n <= 1_000_000:
        raise ValueError(f"num_examples must be in 1..1000000, got {n}")
    pairs: dict[str, str] = {}
    while len(pairs) < n:
        m = n - len(pairs)
        days = rng.integers(FIRST_DAY, LAST_DAY + 1, size=m)
        forms = rng.integers(0, len(DATE_FORMATS), size=m)
        full = rng.random(m) < 0.5
        cases = rng.integers(0, 3, size=m)
        for o, f, u, c in zip(days.tolist(), forms.tolist(), full.tolist(), cases.tolist()):
            day = dt.date.fromordinal(o)
            pairs.setdefault(format_date(day, f, u, c), day.isoformat())
    return list(pairs.items())[:n]


@DATASETS.register("dates")
class Dates(PairData):
    """Dates from 1970 to 2017 written many ways ("TUESDAY, SEPTEMBER 25, 1984", "9/25/84",
    "25 sep 1984") -> ISO "1984-09-25": num_examples distinct sources drawn from `seed`."""

    def __init__(self, num_examples: int = 50_000, valid: int = 1000, test: int = 5000, seed: int = 1,
                 batch_size: int = 128, *, data_dir: str | None = None, vocab: Vocab | None = None):
        rng = streams.stream(seed, streams.DATE_PROBLEMS)
        pairs = date_pairs(num_examples, rng)
        super().__init__(split_pairs(pairs, valid, test, rng, "data (dates)"), batch_size, vocab, "data (dates)")


# -- pairs from a file -------------------------------------------------------------------
def read_pairs(path, separator: str, strip: bool) -> list[tuple[str, str]]:
    """'source<sep>target' lines of a UTF-8 file; blank lines skipped; a line without the separator is an error."""
    text = read_utf8(path, DataError, "pairs file", "check data.path or --data-dir")
    pairs = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        source, sep, target = line.partition(separator)
        if not sep:
            raise DataError(f"{path}: line {number} has no separator {separator!r}; write each pair as "
                            f"source{separator}target")
        if strip:
            source, target = source.strip(), target.strip()
        if not source or not target:
            raise DataError(f"{path}: line {number} has an empty {'source' if not source else 'target'}")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{path}: the pairs file is empty; give a file with one source{separator}target per line")
    return pairs


@DATASETS.register("seq_pairs")
class SeqPairs(PairData):
    """Pairs from a text file, one `source<separator>target` per line, split at the first separator.

    The book's addition.txt and date.txt pad both sides with spaces and use "_"; `strip`
    removes that padding. Shuffled by `seed`, then `test` and `valid` pairs are held out.
    Relative paths are looked up in the working directory, then in the data directory.
    """

    def __init__(self, path: str, separator: str = "_", strip: bool = True, valid: int = 1000, test: int = 5000,
                 seed: int = 1, batch_size: int = 128, *, data_dir: str | None = None,
                 vocab: Vocab | None = None):
        if not separator:
            raise ValueError("separator must not be empty")
        where = f"data ({path})"
        pairs = read_pairs(find_file(path, data_dir), separator, strip)
        super().__init__(split_pairs(pairs, valid, test, streams.stream(seed, streams.PAIR_SPLIT), where), batch_size,
                         vocab, where)
