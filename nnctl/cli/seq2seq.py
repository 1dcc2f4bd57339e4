"""What `nnctl generate` prints for a seq2seq run: the answer, and where attention looked."""

from __future__ import annotations

from pathlib import Path


def print_answer(model, vocab, prompt: str, show_attention: bool, output: Path | None) -> None:
    from rich import box
    from rich.table import Table

    from nnctl import translate
    from nnctl.console import console
    from nnctl.errors import ConfigError

    if output is not None and not show_attention:
        raise ConfigError("--output draws the attention weights; add --show-attention")
    if show_attention and not model.attention:
        raise ConfigError("--show-attention: this model has no attention (it was trained with "
                          "model.attention: false); train one with --set model.attention=true")
    answer = translate.translate(model, vocab, prompt)
    console().print(answer.answer, highlight=False, markup=False, soft_wrap=True)
    if show_attention:
        columns, rows = translate.attention_rows(answer)
        table = Table(title="attention (%): a column per output character, a row per source character",
                      box=box.SIMPLE_HEAD, padding=(0, 1))
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        console().print(table)
        if output is not None:
            translate.plot_attention(answer, output)
            console().print(f"wrote {output}", highlight=False, markup=False, soft_wrap=True)
