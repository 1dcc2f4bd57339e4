#!/usr/bin/env python3
"""The LM decoder in evaluation, nnctl against PyTorch, piece by piece, in one process.

    /tmp/peers/bin/python benchmarks/decoder_vs_torch.py     # the peers' venv, plus threadpoolctl

An LM's evaluation is mostly its decoder: logits = h @ W.T + b over a window's M tokens
and V words, then the summed cross-entropy. This times, at the suite's shapes (a window
of 10 x 35 tokens; H = 200 for lm_small, 650 for lm_medium; V = 10,000) and at 1 and 2
threads, in turns (A B B A ...) so that both see the same machine:

  product   the (M, H) @ (H, V) product alone: NumPy (OpenBLAS) and torch.mm
  decoder   the whole loss: nnctl's DecoderCrossEntropy in eval mode, and PyTorch's
            F.linear + F.cross_entropy(reduction="sum"), as benchmarks/peers/lm_torch.py
  pass      decoder minus product: what each spends on the elementwise work

Best-of milliseconds per call over the turns (the machine is shared; the best is its
speed when nothing gets in the way). Run it with nothing else running. NumPy's products
run in OpenBLAS, the torch CPU wheel's in MKL (`torch.__config__.show()`), so the product
columns compare the two BLAS libraries on this CPU, and the pass columns the rest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nnctl  # noqa: E402, F401  (before NumPy: OpenBLAS's thread timeout, as the nnctl command)
import numpy as np  # noqa: E402

from nnctl.layers.decoder_loss import DecoderCrossEntropy  # noqa: E402
from nnctl.threads import use_threads  # noqa: E402


def best_ms(fn, seconds: float) -> float:
    """Best of repeated calls of fn over about `seconds`, in milliseconds (at least 5 calls)."""
    fn()
    best, spent, calls = float("inf"), 0.0, 0
    while spent < seconds or calls < 5:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, calls = min(best, dt), spent + dt, calls + 1
    return best * 1e3


def best_in_turns(fns: dict, rounds: int, seconds: float) -> list[float]:
    """Best-of ms of each callable in `fns` (in its order), timed in turns A B ... B A for `rounds` rounds."""
    names = list(fns)
    best = dict.fromkeys(names, float("inf"))
    for round_ in range(rounds):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            best[name] = min(best[name], best_ms(fns[name], seconds))
    return [best[name] for name in names]


def add_timing_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=4, help="turns of every contender")
    ap.add_argument("--seconds", type=float, default=0.5, help="timing per contender per round")


def each_thread_count(counts, torch):
    """Yield each count after setting it for nnctl (BLAS and its own pool) and for PyTorch."""
    for threads in counts:
        use_threads(threads)
        torch.set_num_threads(threads)
        yield threads


def import_torch():
    """PyTorch, or None after saying where to find it."""
    try:
        import torch
    except ImportError:
        print("needs PyTorch: run it with the peers' venv (benchmarks/README.md)", file=sys.stderr)
        return None
    return torch


def contenders(M: int, H: int, V: int, torch):
    """{name: zero-argument callable} for one shape, on the same random h, W, b, targets."""
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    # Small logits (|l| < 2 here): exp(l) neither overflows nor underflows, so no row is redone (decoder_loss.py).
    h = (rng.standard_normal((M, H)) * 0.3).astype(np.float32)
    y = rng.integers(0, V, M)
    decoder = DecoderCrossEntropy(H, V, rng=rng)
    decoder.b.data[...] = rng.standard_normal(V).astype(np.float32) * 0.1
    decoder.eval()
    W = decoder.W.data
    th, tW, tb, ty = (torch.from_numpy(a) for a in (h, W, decoder.b.data, y))
    logits = np.empty((M, V), dtype=np.float32)
    return {
        "numpy product": lambda: np.matmul(h, W.T, out=logits),
        "torch product": lambda: torch.mm(th, tW.t()),
        "nnctl decoder": lambda: decoder.forward(h, y),
        "torch decoder": lambda: F.cross_entropy(F.linear(th, tW, tb), ty, reduction="sum").item(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=350, help="rows M of the window (eval: 10 x 35)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[200, 650])
    ap.add_argument("--vocab", type=int, default=10000)
    add_timing_options(ap)
    args = ap.parse_args(argv)
    torch = import_torch()
    if torch is None:
        return 2
    print(f"M = {args.tokens} tokens, V = {args.vocab}; best-of ms per call over {args.rounds} rounds in turns; "
          f"numpy {np.__version__}, torch {torch.__version__}")
    print(f"{'threads':>7} {'H':>5} | {'numpy':>7} {'torch':>7} {'ratio':>6} | {'nnctl':>7} {'torch':>7} {'ratio':>6}"
          f" | pass: {'nnctl':>6} {'torch':>6}")
    for threads in each_thread_count(args.threads, torch):
        for H in args.hidden:
            fns = contenders(args.tokens, H, args.vocab, torch)
            n_prod, t_prod, n_dec, t_dec = best_in_turns(fns, args.rounds, args.seconds)
            print(f"{threads:>7} {H:>5} | {n_prod:7.2f} {t_prod:7.2f} {t_prod / n_prod:6.2f} | "
                  f"{n_dec:7.2f} {t_dec:7.2f} {t_dec / n_dec:6.2f} | {n_dec - n_prod:12.2f} {t_dec - t_prod:6.2f}")
    print("ratio = torch ms / numpy or nnctl ms: above 1, nnctl is faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
