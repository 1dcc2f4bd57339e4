"""`nnctl similar`, `analogy` and `export` for word-vector runs (cbow, ppmi_svd), and the
tables `nnctl eval` prints for them (`eval_word_vectors`)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from nnctl.cli.app import app, user_errors
from nnctl.open_run import RUN_HELP


def _print_ranked(title: str, ranked: list[tuple[str, float]]) -> None:
    from nnctl.console import print_table

    print_table(title, ["#", "word", "cosine"], [[i, w, f"{s:.4f}"] for i, (w, s) in enumerate(ranked, 1)])


@app.command()
def similar(
    run: Path = typer.Argument(..., help=RUN_HELP),
    word: str = typer.Argument(..., help="The query word."),
    k: int = typer.Option(10, "-k", "--top", min=1, help="How many neighbours to show."),
):
    """Print the words nearest to WORD by cosine similarity, with their scores.

    Example: `nnctl similar runs/cbow_ptb/20261130-101500 year -k 10`
    """
    from nnctl import wordvec
    from nnctl.open_run import open_run

    with user_errors():
        opened = open_run(run, needs="word vectors")
        vectors, vocab = opened.model.word_vectors(), opened.vocab
        _print_ranked(f"nearest to '{word}'", wordvec.nearest(vectors, vocab, word, k))


@app.command()
def analogy(
    run: Path = typer.Argument(..., help=RUN_HELP),
    a: str = typer.Argument(..., help="A, e.g. king"),
    b: str = typer.Argument(..., help="B, e.g. man"),
    c: str = typer.Argument(..., help="C, e.g. woman"),
    k: int = typer.Option(5, "-k", "--top", min=1, help="How many answers to show."),
):
    """Complete an analogy by 3CosAdd: the words closest to A − B + C, the three query words excluded.

    `king man woman` asks "man is to king as woman is to ?" (hoping for queen).

    Example: `nnctl analogy runs/cbow_ptb/20261130-101500 king man woman -k 5`
    """
    from nnctl import wordvec
    from nnctl.open_run import open_run

    with user_errors():
        opened = open_run(run, needs="word vectors")
        vectors, vocab = opened.model.word_vectors(), opened.vocab
        # wordvec.analogy(x, y, z) answers "x is to y as z is to ?" = y − x + z
        _print_ranked(f"{a} − {b} + {c}", wordvec.analogy(vectors, vocab, b, a, c, k))


class ExportFormat(str, Enum):
    word2vec = "word2vec"
    npy = "npy"


@app.command()
def export(
    run: Path = typer.Argument(..., help=RUN_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="File to write."),
    format: ExportFormat = typer.Option(ExportFormat.word2vec, "--format",
                                        help="word2vec: text, 'count dim' header then 'word v1 ... vD'; "
                                             "npy: the matrix as .npy plus `<name>.vocab.txt` (one word per row)."),
):
    """Write a run's word vectors for other tools (gensim's KeyedVectors.load_word2vec_format, NumPy).

    Example: `nnctl export runs/cbow_ptb/20261130-101500 --format word2vec -o vectors.txt`
    """
    from nnctl import wordvec
    from nnctl.console import console
    from nnctl.open_run import open_run

    with user_errors():
        opened = open_run(run, needs="word vectors")
        vectors, vocab = opened.model.word_vectors(), opened.vocab
        if format is ExportFormat.word2vec:
            wordvec.export_word2vec(vectors, vocab, output)
            console().print(f"wrote {len(vocab)} x {vectors.shape[1]} vectors to {output}")
        else:
            words = wordvec.export_npy(vectors, vocab, output)
            matrix = output if output.suffix == ".npy" else output.with_name(output.name + ".npy")
            console().print(f"wrote {len(vocab)} x {vectors.shape[1]} vectors to {matrix} and the words to {words}")


def eval_word_vectors(model, vocab, analogies: list[Path], similarity: list[Path],
                      data_dir: Optional[str] = None) -> None:
    """Print analogy accuracy (per section and overall) and similarity Spearman tables, with coverage.

    With no files given, the standard ones are used (questions-words.txt, WordSim-353,
    SimLex-999), from <data dir>/word-eval, downloaded with an md5 check if missing.
    """
    from rich.text import Text

    from nnctl import wordvec
    from nnctl.console import print_table

    if not analogies and not similarity:
        analogies = [wordvec.eval_file("questions-words", data_dir)]
        similarity = [wordvec.eval_file(name, data_dir) for name in ("wordsim353", "simlex999")]
    vectors = model.word_vectors()

    def pct(value):
        return "-" if value is None else f"{100 * value:.2f}%"

    for path in analogies:
        report = wordvec.evaluate_analogies(vectors, vocab, path)
        rows = [[s.name, s.questions, f"{s.covered} ({pct(s.covered / s.questions)})", s.correct, pct(s.accuracy)]
                for s in report.sections]
        rows += [[Text(s.name, style="bold"), s.questions, f"{s.covered} ({pct(s.covered / max(s.questions, 1))})",
                  s.correct, Text(pct(s.accuracy), style="bold")]
                 for s in (report.semantic, report.syntactic, report.overall)]
        print_table(f"analogies (3CosAdd): {path}", ["section", "questions", "covered", "correct", "accuracy"], rows)
    rows = []
    for path in similarity:
        score = wordvec.evaluate_similarity(vectors, vocab, path)
        rho = "-" if score.spearman is None else f"{score.spearman:.4f}"
        rows.append([str(path), score.pairs, f"{score.covered} ({pct(score.coverage)})", rho])
    if rows:
        print_table("word-pair similarity", ["file", "pairs", "covered", "Spearman rho"], rows)
