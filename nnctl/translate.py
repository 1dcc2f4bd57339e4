"""Answering one prompt with a trained seq2seq model, and where its attention looked.

Library code: it returns the answer and the weights; `nnctl generate` prints them (a
table of the weights in the terminal, or an image with `-o`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnctl.data.seq2seq import EOS_ID, PAD_ID, encode_chars
from nnctl.data.text import EOS, Vocab
from nnctl.errors import ConfigError


@dataclass
class Translation:
    prompt: str
    answer: str
    outputs: list[str]  # the characters decoded, <eos> included when the model wrote it
    attention: np.ndarray | None  # (len(outputs), len(prompt)): row t is where output t looked


def translate(model, vocab: Vocab, prompt: str) -> Translation:
    """The greedy answer of `model` (a seq2seq) to `prompt`; one error line if it cannot read it."""
    if not prompt:
        raise ConfigError("--prompt: give the source text to answer, e.g. --prompt \"16+75\"")
    if len(prompt) > model.source_length:
        raise ConfigError(f"--prompt: {len(prompt)} characters, longer than the {model.source_length} the model "
                          "was trained on; give a shorter prompt")
    source = encode_chars(vocab, [prompt], model.source_length, "--prompt")
    ids, weights = model.translate(source)
    row = ids[0].tolist()
    length = next((i for i, t in enumerate(row) if t in (EOS_ID, PAD_ID)), len(row))
    shown = length + (length < len(row) and row[length] == EOS_ID)  # <eos> is shown: it was decided too
    outputs = [vocab.words[t] for t in row[:shown]]
    attention = None if weights is None else np.asarray(weights[0, :shown, : len(prompt)], dtype=np.float64)
    return Translation(prompt, "".join(outputs[:length]), outputs, attention)


def shown(char: str) -> str:
    return "␣" if char == " " else char


def attention_rows(t: Translation) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of the weights in percent: a row per source character, a column per output one
    (the answer is the shorter side, so the table stays narrow)."""
    columns = ["source"] + [shown(o) for o in t.outputs]
    rows = [[shown(c)] + [f"{100 * w:.0f}" for w in weights] for c, weights in zip(t.prompt, t.attention.T)]
    return columns, rows


def plot_attention(t: Translation, path: Path, *, dpi: int = 100) -> None:
    """The attention matrix as an image: source characters across, output characters down."""
    from nnctl.plot import _figure, _save

    S, T = len(t.prompt), len(t.outputs)
    fig = _figure(max(300, 40 * S + 140), max(220, 40 * T + 120), dpi)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(t.attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="equal")
    ax.set_xticks(range(S), [shown(c) for c in t.prompt])
    ax.set_yticks(range(T), [o if o != EOS else "<eos>" for o in t.outputs])
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(f"{t.prompt} -> {t.answer}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    _save(fig, path, dpi)
