"""`nnctl plot`, `nnctl compare` and `nnctl plot-vectors`: results made visible."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from nnctl.cli.app import app, fail, user_errors
from nnctl.open_run import RUN_HELP


def _summaries(paths: list[Path]):
    """Each run's summary (runs/<name> means its latest run) and the short labels that tell them apart."""
    from nnctl.runs import resolve_run, short_labels, summarise_run

    runs = [summarise_run(resolve_run(p)) for p in paths]
    return runs, short_labels([r.path for r in runs])


def _sizes(size: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        fail(f"--size {size}: expected WIDTHxHEIGHT in pixels, e.g. 1500x450", 2)
    if not (50 <= width <= 10000 and 50 <= height <= 10000):
        fail(f"--size {size}: width and height must be between 50 and 10000 pixels", 2)
    return width, height


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@app.command()
def plot(
    runs: list[Path] = typer.Argument(..., help="Run folders (`runs/<name>/<timestamp>`, or `runs/<name>` for its latest)."),
    output: Path = typer.Option(Path("curves.png"), "--output", "-o", help="Image file: .png, .svg or .pdf."),
    size: str = typer.Option("1500x450", "--size", help="Image size in pixels, WIDTHxHEIGHT."),
    dpi: int = typer.Option(100, "--dpi", min=20, max=600, help="Dots per inch (text size scales with it)."),
    grads: bool = typer.Option(False, "--grads", help="Draw the gradient norms the runs logged "
                               "(train.log_grad_norms: true) instead, per parameter, log scale."),
    target: Optional[float] = typer.Option(None, "--target", help="A sweep folder: mark this validation value "
                                           "and give each setting's steps to reach it (e.g. 0.85)."),
):
    """Learning curves: loss, accuracy or perplexity (train and valid) and learning rate per epoch.

    One colour per run, train solid and validation dashed, with a legend naming each run.
    With `--grads`: each parameter's gradient norm before clipping, the global norm and the
    clipping threshold over the steps, one panel per run.
    Needs matplotlib (`pip install "nnctl[plot]"`); without it the curves are drawn in the
    terminal as sparklines.

    A sweep folder (`nnctl sweep`) instead gets one curve per setting: the mean over its
    seeds, with a band of ± one standard deviation.

    Example: `nnctl plot runs/lstm_ptb/20261130-101500 runs/lstm_ptb_dropout -o curves.png`
    """
    from nnctl import plot as plot_mod

    with user_errors():
        width, height = _sizes(size)
        if len(runs) == 1 and not grads and _is_sweep(runs[0]):
            _plot_sweep(runs[0], output, width, height, dpi, target)
            return
        if target is not None:
            fail(f"--target {target}: only for a sweep folder (one with sweep.yaml)", 2)
        summaries, labels = _summaries(runs)
        if grads:
            _plot_grads(summaries, labels, output, width, height, dpi)
            return
        empty = [str(run.path) for run in summaries
                 if not any(rec.get("split") in ("train", "valid") for rec in run.records)]
        if empty:
            fail(f"{empty[0]}: no train/valid metrics yet (metrics.jsonl is empty); "
                 "wait for the first epoch to end", 1)
        if not _has_matplotlib():
            _terminal_curves(summaries, labels)
            from nnctl.console import console

            console().print(f"matplotlib is not installed: {plot_mod.INSTALL_HINT} to write {output}", markup=False)
            return
        plot_mod.plot_curves(summaries, labels, output, width=width, height=height, dpi=dpi)
        print(f"wrote {output} ({width}x{height}, {len(summaries)} run{'s' if len(summaries) > 1 else ''})")


def _is_sweep(path: Path) -> bool:
    from nnctl.sweep import SWEEP_FILE

    return (Path(path) / SWEEP_FILE).is_file()


def _plot_sweep(path: Path, output: Path, width: int, height: int, dpi: int, target: float | None) -> None:
    from nnctl import plot as plot_mod
    from nnctl.sweep import Sweep, compare_settings

    results = [r for r in compare_settings(Sweep.open(path)) if r.runs]
    if not results:
        fail(f"{path}: no trial of this sweep has finished yet; wait for one, or see `nnctl runs {path}`", 1)
    plot_mod.plot_sweep(results, output, target=target, width=width, height=height, dpi=dpi)
    print(f"wrote {output} ({width}x{height}, {len(results)} setting{'s' if len(results) > 1 else ''})")


def _plot_grads(summaries, labels, output: Path, width: int, height: int, dpi: int) -> None:
    from rich.table import Table
    from rich.text import Text

    from nnctl import plot as plot_mod
    from nnctl.console import console

    norms = [plot_mod.grad_norms(run.records) for run in summaries]
    for run, found in zip(summaries, norms):
        if found is None:
            fail(f"{run.path}: no gradient norms were logged; train with train.log_grad_norms: true "
                 "(e.g. --set train.log_grad_norms=true) to record them", 1)
    if _has_matplotlib():
        plot_mod.plot_grad_norms(norms, labels, output, width=width, height=height, dpi=dpi)
        print(f"wrote {output} ({width}x{height}, {len(summaries)} run{'s' if len(summaries) > 1 else ''})")
        return
    table = Table(title="gradient norms before clipping, over the steps (log scale; ▁ lowest, █ highest)",
                  title_justify="left")
    for column, justify in (("run", "left"), ("parameter", "left"), ("curve", "left"), ("first", "right"),
                            ("last", "right"), ("max", "right")):
        table.add_column(column, justify=justify, no_wrap=column == "curve")
    for run, label in zip(norms, labels):
        for name, values in [*run.per_param.items(), ("global norm", run.total)]:
            table.add_row(Text(label), Text(name), plot_mod.sparkline(np.log10(np.maximum(values, 1e-300)), 40),
                          f"{values[0]:.2e}", f"{values[-1]:.2e}", f"{np.nanmax(values):.2e}")
        table.add_section()
    console().print(table)
    console().print(f"matplotlib is not installed: {plot_mod.INSTALL_HINT} to write {output}", markup=False)


def _terminal_curves(summaries, labels) -> None:
    """The same curves as the PNG, as one sparkline row per run, split and quantity."""
    from rich.table import Table

    from nnctl.console import console
    from nnctl.metrics import format_value
    from nnctl.plot import curve_panels, curves, sparkline

    table = Table(title="learning curves (per epoch; ▁ lowest, █ highest)", title_justify="left")
    for column, justify in (("run", "left"), ("split", "left"), ("quantity", "left"), ("curve", "left"),
                            ("first", "right"), ("last", "right")):
        table.add_column(column, justify=justify, no_wrap=column == "curve")
    panels = curve_panels(summaries)
    for run, label in zip(summaries, labels):
        series = curves(run.records)
        for key in panels:
            for split in ("train", "valid"):
                s = series.get(split)
                if s is None or key not in s or (key == "lr" and split == "valid" and "train" in series):
                    continue
                values = s[key]
                table.add_row(label, split if key != "lr" else "", key, sparkline(values, 40),
                              format_value(key, float(values[0])), format_value(key, float(values[-1])))
        table.add_section()
    console().print(table)


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Two or more run folders (`runs/<name>` means its latest run)."),
):
    """Runs side by side: the config keys that differ, then final and best metrics.

    Example: `nnctl compare runs/lstm_ptb/20261130-101500 runs/lstm_ptb/20261201-090000`
    """
    from nnctl.console import print_table
    from nnctl.metrics import format_value
    from nnctl.runs import differing_keys

    with user_errors():
        if len(runs) < 2:
            fail("compare needs at least two run folders, e.g. `nnctl compare runs/a runs/b`", 2)
        summaries, labels = _summaries(runs)
        rows = []
        differing = differing_keys([r.config for r in summaries])
        for key, values in differing:
            rows.append([key, *[_config_value(v) for v in values]])
        if not differing:
            rows.append(["(config)", *["identical"] * len(summaries)])

        def final(run, split, key):
            rec = run.final.get(split)
            return format_value(key, rec.get(key)) if rec else "-"

        def best(run):
            if run.best_valid is None:
                return "-"
            return f"{format_value(run.metric, run.best_valid)} (epoch {run.best_epoch})"

        rows.append(["metric", *[r.metric for r in summaries]])
        rows.append(["epochs", *[str(r.epochs) for r in summaries]])
        rows.append(["final train loss", *[final(r, "train", "loss") for r in summaries]])
        rows.append(["final valid loss", *[final(r, "valid", "loss") for r in summaries]])
        rows.append(["final valid metric", *[final(r, "valid", r.metric) for r in summaries]])
        rows.append(["best valid metric", *[best(r) for r in summaries]])
        rows.append(["test metric", *[final(r, "test", r.metric) for r in summaries]])
        rows.append(["wall time", *[f"{r.elapsed:.0f}s" for r in summaries]])
        rows.append(["state", *[r.state for r in summaries]])
        print_table(None, ["", *labels], rows)


def _config_value(value) -> str:
    return "-" if value is None else str(value)


@app.command("plot-vectors")
def plot_vectors(
    run: Path = typer.Argument(..., help=RUN_HELP),
    words_args: list[str] = typer.Argument(None, metavar="WORDS", help="Words to plot (same as --words)."),
    words_opt: list[str] = typer.Option([], "--words", "-w",
                                        help="Words to plot: `--words king queen man woman` (commas work too)."),
    top: int = typer.Option(50, "-k", "--top", min=2, help="Without --words: plot the k most frequent words."),
    output: Path = typer.Option(Path("words.png"), "--output", "-o", help="Image file: .png, .svg or .pdf."),
    size: str = typer.Option("900x900", "--size", help="Image size in pixels, WIDTHxHEIGHT."),
    dpi: int = typer.Option(100, "--dpi", min=20, max=600, help="Dots per inch."),
):
    """A 2-D PCA projection of chosen word vectors, each point labelled with its word.

    Word-vector runs only (models with word vectors, e.g. word2vec). Without matplotlib the
    2-D coordinates are printed as a table.

    Example: `nnctl plot-vectors runs/w2v_text8 --words king queen man woman paris france -o words.png`
    """
    from nnctl import plot as plot_mod
    from nnctl.open_run import open_run

    with user_errors():
        width, height = _sizes(size)
        # `--words a b c` reaches us as the option "a" plus the arguments "b c"; take both, in order.
        words = [w for item in [*words_opt, *(words_args or [])] for w in item.replace(",", " ").split()]
        words = list(dict.fromkeys(words))  # a word named twice is plotted once
        opened = open_run(run, needs="word vectors")
        vocab = opened.vocab
        if not words:
            words = vocab.words[:top]  # ids are by decreasing frequency
        if len(words) < 2:
            fail("plot-vectors needs at least 2 words, e.g. `--words king queen`", 2)
        vectors = plot_mod.select_word_vectors(opened.model.word_vectors(), vocab, words)
        coords, explained = plot_mod.pca_2d(vectors)
        if not _has_matplotlib():
            from nnctl.console import console, print_table

            print_table(f"{len(words)} word vectors, PCA (PC1 {100 * explained[0]:.0f}%, "
                        f"PC2 {100 * explained[1]:.0f}% of variance)", ["word", "PC1", "PC2"],
                        [[w, f"{x:+.3f}", f"{y:+.3f}"] for w, (x, y) in zip(words, coords)])
            console().print(f"matplotlib is not installed: {plot_mod.INSTALL_HINT} to write {output}", markup=False)
            return
        plot_mod.plot_word_vectors(words, coords, explained, output, width=width, height=height, dpi=dpi,
                                   title=f"{opened.model_type}: {len(words)} word vectors, PCA")
        print(f"wrote {output} ({width}x{height}, {len(words)} words)")
