#!/usr/bin/env python3
"""The products nnctl cuts for OpenBLAS's small-matrix kernels, whole and cut, in turns.

    python3 benchmarks/small_products.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 benchmarks/small_products.py   # OpenBLAS's own kernels

Best-of microseconds per call (decoder_vs_torch.py's turns), at each thread count:

  step      a recurrent step's h (N, H) @ Wh (H, 4H): `full` is the plain product,
            `transposed` and `groups` the two layouts of StepProduct
            (nnctl/layers/step_product.py), each forced
  gradient  a convolution's weight gradient col.T @ dy, col (M, K) and dy (M, F): in one
            product and in `transposed_times`'s row pieces (nnctl/layers/small_matrix.py);
            col is the one-channel im2col's transposed view, as the layer has it

Where the BLAS lacks the kernels (the first line says), the cut forms are what the layers
would run if they had them; the layers then keep the whole ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnctl  # noqa: E402, F401  (before NumPy: OpenBLAS's thread timeout, as the nnctl command)
import numpy as np  # noqa: E402

from decoder_vs_torch import add_timing_options, best_in_turns  # noqa: E402
from nnctl.layers.small_matrix import SMALL_MATRIX_LIMIT, blas_has_small_matrix_kernels, transposed_times  # noqa: E402
from nnctl.layers.step_product import StepProduct  # noqa: E402
from nnctl.threads import use_threads  # noqa: E402


def step_contenders(N: int, H: int) -> dict:
    rng = np.random.default_rng(0)
    h = rng.standard_normal((N, H)).astype(np.float32)
    W = rng.standard_normal((H, 4 * H)).astype(np.float32)
    transposed, groups = (StepProduct(W, N, layout=layout) for layout in ("transposed", "groups"))
    return {"full": lambda: h @ W, "transposed": lambda: transposed(h), "groups": lambda: groups(h)}


def gradient_contenders(M: int, K: int, F: int) -> dict:
    rng = np.random.default_rng(1)
    col = np.ascontiguousarray(rng.standard_normal((K, M)).astype(np.float32)).T  # (M, K), as im2col's view
    dy = rng.standard_normal((M, F)).astype(np.float32)
    piece_rows = SMALL_MATRIX_LIMIT // (K * F)
    return {"one product": lambda: col.T @ dy, "pieces": lambda: transposed_times(col, dy, piece_rows)}


def parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split("x"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=parse_shape, nargs="+", default=[(10, 200), (20, 200), (10, 650), (20, 650)],
                    metavar="NxH", help="recurrent steps: rows x hidden size")
    ap.add_argument("--gradients", type=parse_shape, nargs="+", default=[(57600, 25, 30), (10000, 288, 64)],
                    metavar="MxKxF", help="conv weight gradients: the CNN's first layer, the fashion CNN's second")
    add_timing_options(ap)
    args = ap.parse_args(argv)
    print(f"BLAS has small-matrix kernels: {blas_has_small_matrix_kernels()}; best-of us per call over "
          f"{args.rounds} rounds in turns")
    for threads in args.threads:
        use_threads(threads)
        for N, H in args.steps:
            full, transposed, groups = best_in_turns(step_contenders(N, H), args.rounds, args.seconds)
            print(f"threads {threads}  step     N={N:<3} H={H:<4}  full {full * 1e3:7.1f}  "
                  f"transposed {transposed * 1e3:7.1f}  groups {groups * 1e3:7.1f}")
        for M, K, F in args.gradients:
            whole, pieces = best_in_turns(gradient_contenders(M, K, F), args.rounds, args.seconds)
            print(f"threads {threads}  gradient M={M} K={K} F={F}  one product {whole * 1e3:7.1f}  "
                  f"pieces {pieces * 1e3:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
