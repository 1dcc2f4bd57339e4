"""`nnctl eval`: score a trained model on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nnctl.cli.app import app, fail, user_errors
from nnctl.cli.options import DATA_DIR_HELP
from nnctl.open_run import RUN_HELP


@app.command("eval")
def eval_(
    run_or_checkpoint: Path = typer.Argument(..., help=RUN_HELP),
    split: Optional[str] = typer.Option(None, "--split", help="Which split to score: train, valid or test "
                                        "(default test; not for word vectors, which are scored on files)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Evaluation batch size."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    analogies: list[Path] = typer.Option([], "--analogies", help="Word vectors: analogy file(s), questions-words.txt format."),
    similarity: list[Path] = typer.Option([], "--similarity", help="Word vectors: word-pair similarity file(s)."),
):
    """Score a trained model on a split: loss and accuracy or perplexity (word vectors: analogy and similarity).

    Example: `nnctl eval runs/lstm_ptb_small/20261130-101500 --split test`
    """
    from nnctl import experiment
    from nnctl.console import print_table
    from nnctl.metrics import format_value, meaning
    from nnctl.open_run import open_run
    from nnctl.trainer import score

    with user_errors():
        run = open_run(run_or_checkpoint, needs="scoring")
        if hasattr(run.model, "word_vectors"):
            from nnctl.cli.wordvec import eval_word_vectors

            if split is not None:
                fail(f"--split {split}: a word-vector run is scored on analogy and similarity files, not on a "
                     "split; leave out --split (give files with --analogies / --similarity)", 2)

            eval_word_vectors(run.model, run.vocab, analogies, similarity, str(data_dir) if data_dir else None)
            return
        split = split or "test"
        cfg = run.config
        data = experiment.build_data(cfg, str(data_dir) if data_dir else None, vocab=run.vocab)
        if split not in data.splits:
            fail(f"--split {split}: this data set has the splits {', '.join(data.splits)}", 2)
        totals = score(run.model, data.batches(split, rng=None,
                                               batch_size=batch_size or cfg["train"].get("eval_batch_size")))
        values = totals.summary(run.model.metric)
        rows = [[k, format_value(k, v), meaning(k, run.model)] for k, v in values.items()]
        rows.append([data.unit, f"{totals.count:,}", "how many were scored"])
        print_table(f"{run.path} on {split}", ["metric", "value", "meaning"], rows)
