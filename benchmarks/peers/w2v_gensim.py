"""gensim peer: Word2Vec CBOW with negative sampling on PTB train, nnctl's cbow_ptb settings.

vector size 100, window 5, 5 negatives, sample 1e-3, min_count 1, 2 workers, N epochs.
Corpus words/s = raw corpus words x epochs / wall time of train(), as nnctl's figure.
Saves the vectors (.npy) and words (.txt) so run.py scores both tools with the same
evaluator (nnctl.wordvec). Prints "RESULT {json}".
"""
import argparse
import os
import sys
import time

import numpy as np
import gensim
from gensim.models import Word2Vec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True, help="ptb.train.txt")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=float, default=1e-3)
    ap.add_argument("--vectors-out", default=None, help="path stem for .npy / .txt")
    args = ap.parse_args()

    with open(args.corpus, encoding="utf-8") as fh:
        sentences = [line.split() for line in fh if line.strip()]
    raw_words = sum(len(s) for s in sentences)
    model = Word2Vec(vector_size=100, window=5, negative=5, sg=0, hs=0, min_count=1, sample=args.sample,
                     workers=args.workers, epochs=args.epochs, seed=1)
    model.build_vocab(sentences)
    t0 = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=args.epochs)
    train_s = time.perf_counter() - t0
    result = {"peer": f"gensim {gensim.__version__}", "workers": args.workers, "epochs": args.epochs,
              "corpus_words_per_epoch": raw_words, "train_s": train_s,
              "train_per_s": raw_words * args.epochs / train_s}
    if args.vectors_out:
        np.save(args.vectors_out + ".npy", model.wv.vectors)
        with open(args.vectors_out + ".txt", "w", encoding="utf-8") as fh:
            fh.write("\n".join(model.wv.index_to_key) + "\n")
        result["vectors"] = args.vectors_out + ".npy"
    emit(result)


if __name__ == "__main__":
    main()
