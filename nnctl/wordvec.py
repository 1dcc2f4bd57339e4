"""Using word vectors: nearest neighbours, analogies, the standard evaluations, export.

Everything works on a (V, D) matrix and its Vocab, so CBOW and ppmi_svd (any model with
`word_vectors()`) are queried, scored and exported the same way. Similarity is the
cosine, computed as dot products of unit-length rows.

Evaluations, scored exactly as gensim's `evaluate_word_analogies` / `evaluate_word_pairs` do:

* analogies (Mikolov et al. 2013a, questions-words.txt): "a is to b as c is to d" is right
  when d is the nearest word to b − a + c (3CosAdd), a, b and c themselves excluded, the
  search running over the whole vocabulary. Only questions whose four (lower-cased) words
  are all in the vocabulary are asked; coverage says how many that was.
* similarity (WordSim-353, Finkelstein et al. 2002; SimLex-999, Hill et al. 2015): Spearman's
  rank correlation between the cosine and the human score, over the pairs whose two words
  are in the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnctl.data.download import RemoteFile, default_data_dir, locate
from nnctl.data.text import Vocab
from nnctl.errors import DataError, VocabError, read_utf8

# The evaluation files as gensim ships them in its test data (md5 of those copies).
GENSIM_TEST_DATA = "https://raw.githubusercontent.com/piskvorky/gensim/develop/gensim/test/test_data/"
EVAL_FILES = {
    "questions-words": RemoteFile("questions-words.txt", "8b7461cbf7ecc0aec9b32eb626821105",
                                  (GENSIM_TEST_DATA + "questions-words.txt",)),
    "wordsim353": RemoteFile("wordsim353.tsv", "fa3334003a2c00a47810856c5813a990",
                             (GENSIM_TEST_DATA + "wordsim353.tsv",)),
    "simlex999": RemoteFile("simlex999.txt", "ea3b421726e288d9c368d3db0f1831a4",
                            (GENSIM_TEST_DATA + "simlex999.txt",)),
}


def eval_file(name: str, data_dir: str | None = None) -> Path:
    """Path of a standard evaluation file in <data dir>/word-eval, downloaded (md5-checked) if missing."""
    remote = EVAL_FILES[name]
    folder = default_data_dir(data_dir) / "word-eval"
    return locate([remote], folder)[remote.name]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (all-zero rows stay zero), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms).astype(np.float32)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (argpartition, then sort only those)."""
    k = min(k, scores.size)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def nearest(vectors: np.ndarray, vocab: Vocab, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The k words with the highest cosine to `word`, itself excluded: [(word, cosine), ...]."""
    unit = unit_rows(vectors)
    i = vocab.id_of(word)
    scores = unit @ unit[i]
    scores[i] = -np.inf
    return [(vocab.words[j], float(scores[j])) for j in _top_k(scores, k)]


def analogy(vectors: np.ndarray, vocab: Vocab, a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
    """3CosAdd: "a is to b as c is to ?", the words x maximising cos(x, b − a + c), a/b/c excluded."""
    unit = unit_rows(vectors)
    ia, ib, ic = (vocab.id_of(w) for w in (a, b, c))
    scores = unit @ (unit[ib] - unit[ia] + unit[ic])
    scores[[ia, ib, ic]] = -np.inf
    return [(vocab.words[j], float(scores[j])) for j in _top_k(scores, k)]


# -- analogy evaluation -----------------------------------------------------------------
def read_analogies(path: Path) -> list[tuple[str, list[str]]]:
    """(section, [a, b, c, d]) for each question of a questions-words.txt-format file, lower-cased."""
    path = Path(path)
    text = read_utf8(path, DataError, "evaluation file")
    section = "(no section)"
    questions = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            section = line[1:].strip() or section
            continue
        words = line.lower().split()
        if len(words) != 4:
            raise DataError(f"{path}:{number}: expected ': section-name' or four words 'a b c d' (a is to b as "
                            f"c is to d), got {len(words)} field(s); give a file in the questions-words.txt format")
        questions.append((section, words))
    if not questions:
        raise DataError(f"{path}: no analogy questions found; give a file in the questions-words.txt format")
    return questions


@dataclass
class AnalogyScore:
    name: str
    questions: int  # in the file
    covered: int  # with all four words in the vocabulary (the ones asked)
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.covered if self.covered else None

    def as_dict(self) -> dict:
        return {"name": self.name, "questions": self.questions, "covered": self.covered,
                "correct": self.correct, "accuracy": self.accuracy}


@dataclass
class AnalogyReport:
    path: str
    sections: list[AnalogyScore] = field(default_factory=list)
    semantic: AnalogyScore | None = None  # questions-words.txt: sections not starting "gram"
    syntactic: AnalogyScore | None = None
    overall: AnalogyScore | None = None


def evaluate_analogies(vectors: np.ndarray, vocab: Vocab, path: Path, chunk: int = 512) -> AnalogyReport:
    """Accuracy per section, for semantic / syntactic ("gram*") sections, and overall."""
    questions = read_analogies(path)
    unit = unit_rows(vectors)
    sections = [s for s, _ in questions]
    covered = np.array([all(w in vocab.index for w in q) for _, q in questions], dtype=bool)
    ids = np.array([[vocab.index[w] for w in q] for (_, q), ok in zip(questions, covered) if ok],
                   dtype=np.int64).reshape(-1, 4)
    hits = np.zeros(len(ids), dtype=bool)
    for start in range(0, len(ids), chunk):  # chunks keep the (chunk, V) score matrix small
        a, b, c, d = ids[start:start + chunk].T
        scores = (unit[b] - unit[a] + unit[c]) @ unit.T
        rows = np.arange(len(a))
        scores[rows, a] = scores[rows, b] = scores[rows, c] = -np.inf
        hits[start:start + chunk] = scores.argmax(axis=1) == d

    section_of_asked = np.array(sections, dtype=object)[covered]
    all_sections = np.array(sections, dtype=object)

    def score(name: str, in_file: np.ndarray, asked: np.ndarray) -> AnalogyScore:
        return AnalogyScore(name, int(in_file.sum()), int(asked.sum()), int(hits[asked].sum()))

    report = AnalogyReport(str(path))
    for name in dict.fromkeys(sections):  # file order, each once
        report.sections.append(score(name, all_sections == name, section_of_asked == name))
    syntactic_file = np.array([s.startswith("gram") for s in sections], dtype=bool)
    syntactic_asked = syntactic_file[covered]
    report.semantic = score("semantic", ~syntactic_file, ~syntactic_asked)
    report.syntactic = score("syntactic", syntactic_file, syntactic_asked)
    report.overall = score("overall", np.ones(len(sections), dtype=bool), np.ones(len(hits), dtype=bool))
    return report


# -- similarity evaluation --------------------------------------------------------------
def read_similarity_pairs(path: Path) -> list[tuple[str, str, float]]:
    """(word1, word2, human score) from a WordSim-353 or SimLex-999 file, words lower-cased.

    Accepted: gensim's copies (`word1<TAB>word2<TAB>score`, '#' comment lines), the
    original SimLex-999.txt (a header row naming the `SimLex999` column) and WordSim-353's
    combined.csv (comma-separated, one header row). Fields are split on tabs, else on
    commas, else on spaces.
    """
    path = Path(path)
    pairs = []
    column = 2
    seen_data_line = False
    for number, line in enumerate(read_utf8(path, DataError, "evaluation file").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else
                                      line.split(",") if "," in line else line.split())]
        if not seen_data_line:
            seen_data_line = True
            lowered = [f.lower() for f in fields]
            if "simlex999" in lowered:  # the original SimLex-999.txt header
                column = lowered.index("simlex999")
                continue
            if len(fields) > 2 and not _is_number(fields[2]):
                continue  # some other header row
        if len(fields) <= column or not _is_number(fields[column]):
            raise DataError(f"{path}:{number}: expected 'word1<TAB>word2<TAB>score', got {line.strip()[:60]!r}; "
                            "give a WordSim-353 or SimLex-999 format file")
        pairs.append((fields[0].lower(), fields[1].lower(), float(fields[column])))
    if not pairs:
        raise DataError(f"{path}: no word pairs found; give a WordSim-353 or SimLex-999 format file")
    return pairs


@dataclass
class SimilarityScore:
    path: str
    pairs: int
    covered: int  # pairs with both words in the vocabulary
    spearman: float | None  # None when fewer than 3 pairs are covered

    @property
    def coverage(self) -> float:
        return self.covered / self.pairs if self.pairs else 0.0


def evaluate_similarity(vectors: np.ndarray, vocab: Vocab, path: Path) -> SimilarityScore:
    from scipy.stats import spearmanr

    pairs = read_similarity_pairs(path)
    kept = [(vocab.index[a], vocab.index[b], s) for a, b, s in pairs if a in vocab.index and b in vocab.index]
    if len(kept) < 3:
        return SimilarityScore(str(path), len(pairs), len(kept), None)
    unit = unit_rows(vectors)
    a, b, human = (np.array(column) for column in zip(*kept))
    cosine = np.sum(unit[a.astype(np.int64)] * unit[b.astype(np.int64)], axis=1)
    rho = spearmanr(cosine, human).statistic
    return SimilarityScore(str(path), len(pairs), len(kept), float(rho))


# -- export -------------------------------------------------------------------------------
def export_word2vec(vectors: np.ndarray, vocab: Vocab, path: Path) -> None:
    """word2vec text format: a 'count dim' header, then 'word v1 v2 ... vD' per line."""
    from nnctl.safe_files import atomic_write_text

    vectors = np.asarray(vectors, dtype=np.float32)
    bad = [w for w in vocab.words if not w or any(ch.isspace() for ch in w)]
    if bad:
        raise VocabError(f"word {bad[0]!r} contains white space, which the word2vec text format cannot hold; "
                         "use --format npy")
    import io

    buffer = io.StringIO()
    np.savetxt(buffer, vectors, fmt="%.6g", delimiter=" ")
    rows = buffer.getvalue().splitlines()
    body = "".join(f"{w} {r}\n" for w, r in zip(vocab.words, rows))
    atomic_write_text(Path(path), f"{vectors.shape[0]} {vectors.shape[1]}\n{body}")


def export_npy(vectors: np.ndarray, vocab: Vocab, path: Path) -> Path:
    """The (V, D) float32 matrix as .npy, and the words (row order) in <stem>.vocab.txt; returns the latter."""
    from nnctl.safe_files import atomic_write, atomic_write_text

    path = Path(path)
    if path.suffix != ".npy":
        path = path.with_name(path.name + ".npy")
    matrix = np.asarray(vectors, dtype=np.float32)
    atomic_write(path, lambda handle: np.save(handle, matrix, allow_pickle=False))
    words_path = path.with_suffix(".vocab.txt")
    atomic_write_text(words_path, "".join(w + "\n" for w in vocab.words))
    return words_path


# -- helpers --------------------------------------------------------------------------------
def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
