#!/usr/bin/env python3
"""Words per second of `nnctl generate`'s sampling loop, with the recurrent layers' copies kept or not.

    python3 benchmarks/generate_speed.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 benchmarks/generate_speed.py --hidden 650

Sampling runs the LM one word a forward. Inside `Layer.weights_fixed()` (which
nnctl.generate uses) each recurrent layer makes its per-step copy of Wh once
(nnctl/layers/step_product.py); `made every word` times the same loop with weights_fixed
made a no-op, as before it existed. An untrained LM of the medium model's sizes (random
weights; the speed does not depend on them) and a vocabulary of `--vocab` made-up words;
the two ways take turns (best-of, decoder_vs_torch.py), and must give the same words.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnctl  # noqa: E402, F401  (before NumPy: OpenBLAS's thread timeout, as the nnctl command)
import numpy as np  # noqa: E402

from decoder_vs_torch import best_in_turns  # noqa: E402
from nnctl.data.text import Vocab  # noqa: E402
from nnctl.generate import generate  # noqa: E402
from nnctl.layers.base import Layer  # noqa: E402
from nnctl.models.lstm_lm import LSTMLanguageModel  # noqa: E402
from nnctl.threads import use_threads  # noqa: E402


def contenders(model, vocab: Vocab, words: int, samples: int) -> dict:
    """{'kept': ..., 'made every word': ...}: each samples `words` words, the same seed."""
    def sample():
        return generate(model, vocab, "w1 w2 w3", length=words, seed=1, num_samples=samples).continuations

    def made_every_word():
        fixed = Layer.weights_fixed
        Layer.weights_fixed = lambda self: contextlib.nullcontext(self)
        try:
            return sample()
        finally:
            Layer.weights_fixed = fixed

    return {"kept": sample, "made every word": made_every_word}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=650, help="embedding and hidden size (tied)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--words", type=int, default=100, help="words sampled per call")
    ap.add_argument("--samples", type=int, default=1, help="samples drawn side by side")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3, help="turns of each way")
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per way per round")
    args = ap.parse_args(argv)
    model = LSTMLanguageModel(args.hidden, args.hidden, args.layers, vocab_size=args.vocab,
                              rng=np.random.default_rng(0))
    vocab = Vocab([f"w{i}" for i in range(args.vocab)])
    fns = contenders(model, vocab, args.words, args.samples)
    if fns["kept"]() != fns["made every word"]():
        print("the two ways sampled different words", file=sys.stderr)
        return 1
    print(f"LSTM LM {args.layers} x {args.hidden}, vocabulary {args.vocab:,}, {args.samples} sample(s) of "
          f"{args.words} words; best-of words/s over {args.rounds} rounds in turns")
    for threads in args.threads:
        use_threads(threads)
        kept, fresh = (args.words * args.samples / (ms / 1e3) for ms in best_in_turns(fns, args.rounds, args.seconds))
        print(f"threads {threads}  kept {kept:8.0f}  made every word {fresh:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
