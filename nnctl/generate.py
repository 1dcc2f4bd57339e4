"""Sampling text from a trained language model.

The prompt runs through the model first (its words set the LSTM state); then each new
word is drawn from the softmax of the last logits and fed back in:

    p(w) ∝ exp(logit_w / temperature)     temperature 0: always the most likely word
    top_k: keep the k likeliest words     top_p: keep the fewest words whose mass >= p
                                          (nucleus sampling, Holtzman et al. 2020)

Library code: it returns words and warnings, the CLI prints them. `num_samples` texts are
drawn side by side as the rows of one batch, so the model runs once per step for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnctl.data.text import EOS, UNK, Vocab
from nnctl.errors import VocabError
from nnctl.functional import softmax


@dataclass
class Samples:
    prompt: list[str]  # the prompt as the model saw it (unknown words as <unk>)
    continuations: list[list[str]]  # one list of new words per sample
    unknown_words: list[str] = field(default_factory=list)  # prompt words replaced by <unk>


def encode_prompt(vocab: Vocab, prompt: str) -> tuple[np.ndarray, list[str]]:
    """Prompt text -> ids, and the words that were not in the vocabulary (they become <unk>).

    An empty prompt starts from <eos>, a sentence boundary. A prompt with no known word
    gives the model nothing to go on and is an error.
    """
    words = prompt.split()
    if not words:
        return np.array([vocab.id_of(EOS)], dtype=np.int64), []
    unknown = [w for w in words if w not in vocab.index or w == UNK]
    if len(unknown) == len(words):
        raise VocabError(f"no word of the prompt {prompt!r} is in the model's vocabulary of {len(vocab)} words; "
                         f"use words from the training text")
    if UNK not in vocab.index and unknown:
        raise VocabError(f"'{unknown[0]}' is not in the vocabulary and it has no {UNK}; leave it out of the prompt")
    return vocab.encode(words), unknown


def filter_logits(logits: np.ndarray, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """(S, V) logits with every word outside the top-k / top-p set at -inf."""
    logits = logits.copy()
    V = logits.shape[-1]
    if top_k is not None and 0 < top_k < V:
        kth = np.partition(logits, V - top_k, axis=-1)[:, V - top_k][:, None]  # k-th largest per row
        logits[logits < kth] = -np.inf
    if top_p is not None and 0 < top_p < 1:
        order = np.argsort(-logits, axis=-1)
        probs = np.take_along_axis(softmax(logits), order, axis=-1)
        mass_before = np.cumsum(probs, axis=-1) - probs  # the likeliest word always stays
        drop = np.zeros_like(logits, dtype=bool)
        np.put_along_axis(drop, order, mass_before >= top_p, axis=-1)
        logits[drop] = -np.inf
    return logits


def next_words(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """One word id per row of (S, V) logits: greedy at temperature 0, else sampled."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return logits.argmax(axis=-1)
    probs = softmax(filter_logits(logits / temperature, top_k, top_p))
    # inverse-CDF draw, one uniform per row: vectorised over the samples
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((len(probs), 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), probs.shape[-1] - 1)


MAX_WORDS = 10_000_000  # new words in one call, all samples together


def check_options(length: int, temperature: float, top_k: int | None, top_p: float | None, num_samples: int) -> None:
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not (temperature >= 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if length * num_samples > MAX_WORDS:  # checked before the (num_samples, length) ids are allocated
        raise ValueError(f"length {length:,} with num_samples {num_samples:,} asks for {length * num_samples:,} words, "
                         f"more than the {MAX_WORDS:,} one call may draw; ask for fewer")


def generate(model, vocab: Vocab, prompt: str = "", *, length: int = 50, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             num_samples: int = 1) -> Samples:
    """Continue `prompt` by `length` words, `num_samples` times. The same seed gives the same text.

    `model` offers `logits(ids (S, T), state) -> (logits (S, T, V), state)` (lstm_lm does).
    """
    check_options(length, temperature, top_k, top_p, num_samples)
    ids, unknown = encode_prompt(vocab, prompt)
    rng = np.random.default_rng(seed)
    model.eval()
    batch = np.repeat(ids[None, :], num_samples, axis=0)  # (S, P): every sample reads the prompt
    new = np.empty((num_samples, length), dtype=np.int64)
    with model.weights_fixed():  # one word a forward: what the layers derive from the weights, kept
        logits, state = model.logits(batch, None)
        for t in range(length):
            new[:, t] = next_words(logits[:, -1], rng, temperature, top_k, top_p)
            logits, state = model.logits(new[:, t: t + 1], state)
    prompt_words = vocab.decode(ids) if prompt.split() else []
    return Samples(prompt_words, [vocab.decode(row) for row in new], unknown)


def to_text(words: list[str]) -> str:
    """Words joined by spaces, with each <eos> as a line break."""
    pieces: list[str] = []
    for word in words:
        if word == EOS:
            pieces.append("\n")
        else:
            pieces.append(word if not pieces or pieces[-1] == "\n" else " " + word)
    return "".join(pieces)
