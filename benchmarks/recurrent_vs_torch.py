#!/usr/bin/env python3
"""An LSTM layer's forward in evaluation, nnctl against PyTorch, in one process.

    /tmp/peers/bin/python benchmarks/recurrent_vs_torch.py     # the peers' venv, plus threadpoolctl

Besides its decoder (benchmarks/decoder_vs_torch.py), an LM's evaluation runs its LSTM
layers over each window: N rows (the evaluation batch, 10 in the suite) and T = 35 steps.
This times, at 1 and 2 threads, in turns (A B B A ...):

  layer     one LSTM layer over the window, same weights: nnctl's LSTM.forward, and
            torch.nn.LSTM under no_grad (on the CPU wheel, one oneDNN RNN call)
  step      the per-step recurrent product alone: nnctl's StepProduct, in the layout
            the layer chooses (nnctl/layers/step_product.py), and torch.mm(h, Wh), an
            (N, H) @ (H, 4H) product

Best-of milliseconds per call, as decoder_vs_torch.py. nnctl's layer is its input product
(all T steps at once), T recurrent products and the gates' elementwise work, each a NumPy
call; PyTorch's is one library call over the whole sequence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnctl  # noqa: E402, F401  (before NumPy: OpenBLAS's thread timeout, as the nnctl command)
import numpy as np  # noqa: E402

from decoder_vs_torch import add_timing_options, best_in_turns, each_thread_count, import_torch  # noqa: E402
from nnctl.layers.recurrent import LSTM  # noqa: E402
from nnctl.layers.small_matrix import blas_has_small_matrix_kernels  # noqa: E402
from nnctl.layers.step_product import StepProduct  # noqa: E402


def torch_gate_order(a, H: int):
    """nnctl's gate blocks [i | f | o | g] along the last axis -> PyTorch's [i | f | g | o]."""
    return np.concatenate([a[..., : 2 * H], a[..., 3 * H:], a[..., 2 * H: 3 * H]], axis=-1)


def contenders(N: int, T: int, H: int, torch):
    """{name: zero-argument callable} for one shape: nnctl's and PyTorch's LSTM on the same weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, H)).astype(np.float32)
    h = rng.standard_normal((N, H)).astype(np.float32)
    cell = LSTM(H, H, rng=rng)
    peer = torch.nn.LSTM(H, H, batch_first=True).eval()
    with torch.no_grad():
        peer.weight_ih_l0.copy_(torch.from_numpy(torch_gate_order(cell.Wx.data, H).T.copy()))
        peer.weight_hh_l0.copy_(torch.from_numpy(torch_gate_order(cell.Wh.data, H).T.copy()))
        peer.bias_ih_l0.copy_(torch.from_numpy(torch_gate_order(cell.b.data, H)))
        peer.bias_hh_l0.zero_()
    step = StepProduct(cell.Wh.data, N)
    tx, th, tWh = torch.from_numpy(x), torch.from_numpy(h), torch.from_numpy(cell.Wh.data.copy())

    def peer_layer():
        with torch.no_grad():
            return peer(tx)[0]

    return {
        "nnctl layer": lambda: cell.forward(x)[0],
        "torch layer": peer_layer,
        "nnctl step": lambda: step(h),
        "torch step": lambda: torch.mm(th, tWh),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[10, 20], help="N: 10 = the suite's evaluation batch")
    ap.add_argument("--steps", type=int, default=35, help="T, the window")
    ap.add_argument("--hidden", type=int, nargs="+", default=[200, 650])
    add_timing_options(ap)
    args = ap.parse_args(argv)
    torch = import_torch()
    if torch is None:
        return 2
    print(f"T = {args.steps} steps; best-of ms per call over {args.rounds} rounds in turns; "
          f"numpy {np.__version__}, torch {torch.__version__}; BLAS has small-matrix kernels: "
          f"{blas_has_small_matrix_kernels()} (nnctl's step product in column groups where it fits)")
    print(f"{'threads':>7} {'N':>3} {'H':>5} | layer: {'nnctl':>7} {'torch':>7} {'ratio':>6} | "
          f"step: {'nnctl':>6} {'torch':>6} {'ratio':>6}")
    for threads in each_thread_count(args.threads, torch):
        for N in args.rows:
            for H in args.hidden:
                fns = contenders(N, args.steps, H, torch)
                n_layer, t_layer, n_step, t_step = best_in_turns(fns, args.rounds, args.seconds)
                print(f"{threads:>7} {N:>3} {H:>5} | {n_layer:14.2f} {t_layer:7.2f} {t_layer / n_layer:6.2f} | "
                      f"{n_step:12.3f} {t_step:6.3f} {t_step / n_step:6.2f}")
    print("ratio = torch ms / nnctl ms: above 1, nnctl is faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
