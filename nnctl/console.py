"""Everything nnctl shows on the terminal: progress bars, tables, plain log lines.

`make_listener` picks a live Rich display when stdout is a terminal and plain lines
(no control codes) otherwise, e.g. in CI or when piped to a file. Either way every line
also goes to the run's train.log. NO_COLOR is respected by Rich itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from nnctl.metrics import METRICS, format_value


# Every Console nnctl makes reads no markup: words, paths and run names come from the user
# or from files ("lstm[v2]", "[/x]") and are printed as they are. Styles are given as
# `style=` or as Text pieces, never as "[bold]" inside a string.
def _width() -> int | None:
    """None (Rich reads the terminal) unless $COLUMNS is set to a width Rich cannot draw in."""
    columns = os.environ.get("COLUMNS")
    if columns is None:
        return None
    try:
        return None if int(columns) >= 20 else 80
    except ValueError:
        return 80


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """`nnctl runs | head -1`: the reader has what it wanted; stop quietly, exit 0."""
        raise BrokenPipeError  # the CLI's user_errors / run() turn it into a quiet exit 0


def console() -> Console:
    # A fresh Console per use: it reads the terminal's width and NO_COLOR at that moment.
    # soft_wrap: a line longer than the terminal is left whole (a printed command or path stays one line)
    return _Console(highlight=False, markup=False, soft_wrap=True, width=_width())


def error_console() -> Console:
    return _Console(stderr=True, highlight=False, markup=False, soft_wrap=True, width=_width())


def print_error(message: str, label: str = "error", style: str = "bold red") -> None:
    """`error: <message>` as one line on stderr; the message is never read as markup."""
    error_console().print(Text.assemble((f"{label}:", style), " ", message), soft_wrap=True)


def describe_record(rec: dict[str, Any]) -> str:
    parts = [f"epoch {rec['epoch']}", f"step {rec['step']}", rec["split"]]
    for key in METRICS:  # loss, perplexity, accuracy, token_accuracy
        if key in rec:
            parts.append(f"{key} {format_value(key, rec[key])}")
    if "throughput" in rec:
        parts.append(f"{rec['throughput']:,.0f}/s")
    if "threads" in rec:
        parts.append(f"threads {rec['threads']}")
    parts.append(f"lr {format_value('lr', rec['lr'])}")
    return "  ".join(parts)


class PlainListener:
    """Line-by-line output for logs and pipes; also the writer of train.log."""

    def __init__(self, echo: bool = True, log=None, quiet: bool = False):
        self.echo = echo and not quiet
        self.log = log  # a callable taking one line (RunDir.log), or None
        self.log_every = 50
        self.unit = "items"
        self.metric = "loss"  # the validation metric "best" refers to (the Trainer says which)
        self._last_line = 0.0

    def emit(self, line: str, always: bool = False) -> None:
        if self.log:
            self.log(line)
        if self.echo or always:
            print(line, flush=True)

    def on_fit_start(self, info):
        self.unit = info["unit"]
        self.metric = info.get("metric", self.metric)
        self.log_every = info.get("log_every", self.log_every)  # train.log_every
        where = f" -> {info['run']}" if info.get("run") else ""
        self.emit(f"training {info['params']:,} parameters for {info['epochs']} epochs "
                  f"({info['steps_per_epoch']} steps each){where}")

    def on_epoch_start(self, epoch, num_batches):
        pass

    def best_text(self, info) -> str:
        """'  best valid accuracy 91.20%' once a validation has run, else ''."""
        if info.get("best") is None:
            return ""
        return f"  best valid {self.metric} {format_value(self.metric, info['best'])}"

    def threads_text(self, info) -> str:
        """'  threads 2': the count training runs on now (nnctl/thread_tuner.py), when the Trainer says."""
        return f"  threads {info['threads']}" if info.get("threads") is not None else ""

    def on_step(self, info):
        if info["batch"] % self.log_every == 0 or info["batch"] == info["steps_per_epoch"]:
            self.emit(f"epoch {info['epoch'] + 1} batch {info['batch']}/{info['steps_per_epoch']}  "
                      f"loss {info['loss']:.4f}  lr {info['lr']:.4g}  {info['throughput']:,.0f} {self.unit}/s"
                      + self.threads_text(info) + self.best_text(info))

    def on_eval_start(self, split, num_batches):
        pass

    def on_eval_step(self):
        pass

    def on_record(self, rec):
        self.emit(describe_record(rec))

    def on_epoch_end(self, epoch, records):
        pass

    def on_message(self, text):
        self.emit(text)

    def on_fit_end(self, summary):
        self.emit(summary_line(summary), always=True)


def summary_line(summary: dict[str, Any]) -> str:
    metric = summary["metric"]
    parts = [f"done: {summary['epochs']} epochs, {summary['steps']} steps, {summary['elapsed']}s"]
    if summary.get("best_valid") is not None:
        parts.append(f"best valid {metric} {format_value(metric, summary['best_valid'])} "
                     f"(epoch {summary['best_epoch']})")
    test = summary.get("test")
    if test:
        value = test.get(metric, test["loss"])
        parts.append(f"test {metric if metric in test else 'loss'} {format_value(metric, value)}")
    return "; ".join(parts)


class RichListener(PlainListener):
    """A live progress bar with ETA, loss, lr, throughput and best metric; a table row per epoch."""

    def __init__(self, log=None):
        super().__init__(echo=False, log=log)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}", markup=False),
            console=console(), transient=True,
        )
        self.task = None
        self.eval_task = None

    def on_fit_start(self, info):
        super().on_fit_start(info)
        console().print(Text.assemble(f"training {info['params']:,} parameters for {info['epochs']} epochs",
                                      *([" -> ", (info["run"], "cyan")] if info.get("run") else [])))
        self.progress.start()

    def on_epoch_start(self, epoch, num_batches):
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"epoch {epoch + 1}", total=num_batches, info="")

    def on_step(self, info):
        super().on_step(info)
        self.progress.update(self.task, completed=info["batch"],
                             info=f"loss {info['loss']:.4f}  lr {info['lr']:.3g}  "
                                  f"{info['throughput']:,.0f} {self.unit}/s{self.threads_text(info)}"
                                  f"{self.best_text(info)}")

    def on_eval_start(self, split, num_batches):
        if self.eval_task is not None:
            self.progress.remove_task(self.eval_task)
        self.eval_task = self.progress.add_task(f"eval {split}", total=num_batches, info="")

    def on_eval_step(self):
        self.progress.advance(self.eval_task)

    def on_record(self, rec):
        super().on_record(rec)
        if self.eval_task is not None and rec["split"] != "train":
            self.progress.remove_task(self.eval_task)
            self.eval_task = None
        if rec["split"] == "test":
            self.progress.console.print(describe_record(rec))

    def on_epoch_end(self, epoch, records):
        table = Table(show_header=epoch == 0 or True, box=None, pad_edge=False)
        keys = [k for k in ("loss", "perplexity", "accuracy") if k in records[0]]
        table.add_column("epoch", justify="right")
        table.add_column("split")
        for key in keys:
            table.add_column(key, justify="right")
        table.add_column("lr", justify="right")
        table.add_column("throughput", justify="right")
        for rec in records:
            table.add_row(str(rec["epoch"]), rec["split"], *[format_value(k, rec.get(k)) for k in keys],
                          format_value("lr", rec["lr"]),
                          f"{rec['throughput']:,.0f}/s" if "throughput" in rec else "")
        self.progress.console.print(table)

    def on_message(self, text):
        super().on_message(text)
        self.progress.console.print(text)

    def on_fit_end(self, summary):
        if self.log:
            self.log(summary_line(summary))
        self.progress.stop()
        console().print(summary_line(summary), style="bold green")

    def close(self):
        self.progress.stop()


def make_listener(log=None, quiet: bool = False, interactive: bool | None = None):
    """--quiet: only the summary line; a terminal: the live Rich display; else plain lines."""
    if quiet:
        return PlainListener(echo=False, log=log, quiet=True)
    if interactive if interactive is not None else sys.stdout.isatty():
        return RichListener(log=log)
    return PlainListener(echo=True, log=log)


def print_table(title: str | None, columns: list[str], rows: list[list[Any]], *,
                stacked: list[str] | None = None) -> None:
    """A table of `rows` under `columns`; cells are shown as they are, never read as markup.

    stacked (shorter headers, one per column): the first column (a name) is never broken;
    when the table is wider than the terminal, each row becomes two lines, the name alone,
    then the other cells indented and aligned under these headers (see `_stacked_lines`).
    """
    out = console()
    if title:  # on its own line: a table title is cut to the table's width
        out.print(title, highlight=False, soft_wrap=True)
    cells = [[v if isinstance(v, Text) else Text(str(v)) for v in row] for row in rows]
    table = Table()
    for i, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=stacked is not None and i == 0)
    for row in cells:
        table.add_row(*row)
    if stacked is not None and Measurement.get(out, out.options.update_width(10_000), table).maximum > out.width:
        for line in _stacked_lines(stacked, cells, out.width):
            out.print(line, soft_wrap=True)
        return
    out.print(table)


def _stacked_lines(columns: list[str], rows: list[list[Text]], width: int) -> list[Text]:
    """Rows as a name line and an indented line of the other cells, aligned under one header:

        run
          model  data  ep  ...
        ──────────────────────────
        lstm_ptb_book_size/20261201-120000
          lstm   ptb   39  ...

    Columns after the first are dropped from the left (the least telling ones, model and
    data for `runs`, come first) until the indented line fits; the name line is never cut.
    """
    rest = list(range(1, len(columns)))

    def widths(keep: list[int]) -> list[int]:
        return [max(len(columns[i]), *(row[i].cell_len for row in rows)) for i in keep]

    def line_width(keep: list[int]) -> int:
        return 2 + sum(widths(keep)) + 2 * (len(keep) - 1)

    while len(rest) > 1 and line_width(rest) > width:
        rest.pop(0)

    def indented(cells: list[Text]) -> Text:
        line = Text("  ")
        for j, (cell, size) in enumerate(zip(cells, widths(rest))):
            line.append_text(cell)
            if j < len(rest) - 1:
                line.append(" " * (size - cell.cell_len + 2))
        return line

    lines = [Text(columns[0], style="bold"), indented([Text(columns[i], style="bold") for i in rest])]
    body = []
    for row in rows:
        body += [row[0], indented([row[i] for i in rest])]
    longest = max(line.cell_len for line in lines + body)
    return lines + [Text("─" * min(width, longest))] + body
