"""`nnctl generate`: sample text from a trained language model, or answer a prompt with a seq2seq model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nnctl.cli.app import app, user_errors
from nnctl.open_run import RUN_HELP


@app.command()
def generate(
    run_or_checkpoint: Path = typer.Argument(..., help=RUN_HELP),
    prompt: str = typer.Option("", "--prompt", "-p", help="Text the samples continue (empty: start a sentence)."),
    length: int = typer.Option(50, "--length", "-n", min=0, max=1_000_000, help="New words per sample."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", min=0.0,
                                      help="Softmax temperature; 0 = greedy (always the likeliest word)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Sample only from the k likeliest words."),
    top_p: Optional[float] = typer.Option(None, "--top-p", min=0.0, max=1.0,
                                          help="Sample only from the likeliest words whose mass reaches p."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Random seed: the same seed gives the same text."),
    num_samples: int = typer.Option(1, "--num-samples", "-s", min=1, max=10_000, help="How many texts to draw."),
    show_attention: bool = typer.Option(False, "--show-attention",
                                        help="seq2seq with attention: print the attention weights of the prompt."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="With --show-attention: also draw the weights to this image (.png)."),
):
    """Continue a prompt with a trained language model; `<eos>` prints as a line break.

    Example: `nnctl generate runs/lstm_ptb_small/20261130-101500 --prompt "the stock market"
    --length 50 --temperature 0.8 --top-k 40 --seed 1 --num-samples 3`

    A seq2seq run answers the prompt instead (greedy): `nnctl generate runs/seq2seq_addition/<time>
    --prompt "16+75"`; with attention, `--show-attention -o attn.png` shows where it looked.
    """
    from nnctl import generate as gen
    from nnctl.console import console, print_error
    from nnctl.errors import ConfigError
    from nnctl.open_run import open_run

    with user_errors():
        run = open_run(run_or_checkpoint, needs="language model")
        model, vocab = run.model, run.vocab
        if hasattr(model, "translate"):
            from nnctl.cli.seq2seq import print_answer

            return print_answer(model, vocab, prompt, show_attention, output)
        if show_attention or output is not None:
            raise ConfigError("--show-attention and --output are for a seq2seq run with attention; "
                              "this run is a language model")
        try:
            samples = gen.generate(model, vocab, prompt, length=length, temperature=temperature, top_k=top_k,
                                   top_p=top_p, seed=seed, num_samples=num_samples)
        except ValueError as error:  # "top_k must be ..." -> "--top-k: must be ..."
            name, _, rest = str(error).partition(" ")
            raise ConfigError(f"--{name.replace('_', '-')}: {rest}" if name.isidentifier() else str(error)) from None
        if samples.unknown_words:
            words = ", ".join(sorted(set(samples.unknown_words)))
            print_error(f"not in the vocabulary, read as <unk>: {words}", label="warning", style="yellow")
        out = console()
        for i, words in enumerate(samples.continuations):
            if num_samples > 1:
                out.print(f"--- sample {i + 1} ---", style="bold", highlight=False)
            out.print(gen.to_text(samples.prompt + words), highlight=False, markup=False, soft_wrap=True)
