"""The GEMM-only bound: how fast a model's step could be if only its matrix products cost time.

For one batch, list every dense matrix product the model needs at its real shape (the
same products PyTorch or any framework must do), time each one on this machine with
NumPy/OpenBLAS float32 and add them up. Elementwise work, gathers, softmax, copies
(im2col) and the optimizer are counted as free, so the bound is optimistic: nothing
built on these BLAS calls can beat it. nnctl's fraction of the bound is
bound seconds per batch / measured seconds per batch.

A product is (m, k, n, layout, repeats): an (m, k) @ (k, n) product done `repeats` times
per batch. layout "nn" multiplies C-contiguous operands as stored; "tn" is A.T @ B with
A stored (k, m) (weight gradients); "nt" is A @ B.T with B stored (n, k) (a tied decoder
reading the (V, H) embedding).

LSTM LM (N streams, T steps, M = N*T tokens, layer inputs D, hidden H, vocabulary V):
  forward   per layer: x @ Wx (M, D, 4H) once, h @ Wh (N, H, 4H) T times;
            decoder: h @ W.T (M, H, V)
  backward  decoder: dlogits @ W (M, V, H), dW = dlogits.T @ h (V, M, H);
            per layer: da @ Wh.T (N, 4H, H) T times, dWx = x.T @ da (D, M, 4H),
            dWh = h.T @ da (H, M, 4H), dx = da @ Wx.T (M, 4H, D)
  (the first layer's dx feeds the embedding's gradient, so it is needed too)
Seq2seq (batch N, source S, decoder steps T, embedding E, hidden H, G = gates x H,
decoder input D = E (+ H when peeky), output input F = H (+ H attention, + H peeky), V characters):
  forward   encoder and decoder as one LSTM layer each (above: x @ Wx once, h @ Wh per step);
            attention per example: scores hd @ hs.T (T, H, S), context a @ hs (T, S, H);
            output [..] @ W (N*T, F, V)
  backward  each layer's per-step da @ Wh.T, dWx, dWh and dx (the encoder's dx feeds its
            embedding); attention's four products (d hd, d hs twice, d a); the output's dW and dx
SimpleConvNet (batch N, 28x28x1 -> conv 30@5x5 -> pool 2 -> 100 -> 10):
  forward   conv as im2col (N*576, 25) @ (25, 30); dense 4320 -> 100 -> 10
  backward  conv dW (25, N*576, 30) (no dx: nobody needs the image's gradient);
            each dense layer's dW and dx (the first dense's dx feeds the pool and conv)
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np


class Product(NamedTuple):
    name: str
    m: int
    k: int
    n: int
    layout: str = "nn"  # "nn", "tn" (A stored (k, m)), "nt" (B stored (n, k))
    repeats: int = 1
    # Also time the same result as a transposed product, C.T = B.T @ A.T with the (k, n)
    # operand stored (n, k) and A as stored, and keep the faster. For the LSTM's per-step
    # products, with a few rows against the whole (H, 4H) matrix, the transposed form is
    # 17-32% faster here, and it is the form nnctl uses.
    transposable: bool = False


def lstm_lm_products(N: int, T: int, E: int, H: int, layers: int, V: int, training: bool) -> list[Product]:
    M = N * T
    out = []
    for layer in range(layers):
        out += recurrent_layer_products(f"L{layer}", N, T, E if layer == 0 else H, H, 4, training)
    out.append(Product("decoder h@W.T", M, H, V, "nt"))
    if training:
        out.append(Product("decoder dlogits@W", M, V, H))
        out.append(Product("decoder dW=dlogits.T@h", V, M, H, "tn"))
    return out


def recurrent_layer_products(name: str, N: int, T: int, D: int, H: int, gates: int,
                             training: bool) -> list[Product]:
    """One recurrent layer over T steps of N rows: the products of an LSTM (gates 4), GRU (3) or RNN (1)."""
    M, G = N * T, gates * H
    out = [Product(f"{name} x@Wx", M, D, G), Product(f"{name} h@Wh (per step)", N, H, G, repeats=T, transposable=True)]
    if training:
        out += [Product(f"{name} da@Wh.T (per step)", N, G, H, "nt", repeats=T, transposable=True),
                Product(f"{name} dWx=x.T@da", D, M, G, "tn"), Product(f"{name} dWh=h.T@da", H, M, G, "tn"),
                Product(f"{name} dx=da@Wx.T", M, G, D, "nt")]
    return out


def seq2seq_products(N: int, S: int, T: int, E: int, H: int, V: int, gates: int = 4, peeky: bool = False,
                     attention: bool = False, training: bool = True) -> list[Product]:
    """gates: 4 for an LSTM, 3 for a GRU, 1 for an Elman RNN (the width of Wx over H)."""
    out = recurrent_layer_products("encoder", N, S, E, H, gates, training)
    out += recurrent_layer_products("decoder", N, T, E + H * peeky, H, gates, training)
    if attention:  # batched over the N examples
        out += [Product("attention scores hd@hs.T", T, H, S, "nt", repeats=N),
                Product("attention context a@hs", T, S, H, repeats=N)]
        if training:
            out += [Product("attention d hd=ds@hs", T, S, H, repeats=N),
                    Product("attention d hs=ds.T@hd", S, T, H, "tn", repeats=N),
                    Product("attention d hs=a.T@dc", S, T, H, "tn", repeats=N),
                    Product("attention d a=dc@hs.T", T, H, S, "nt", repeats=N)]
    F = H * (1 + attention + peeky)
    out.append(Product("output x@W", N * T, F, V))
    if training:
        out += [Product("output dW=x.T@dy", F, N * T, V, "tn"), Product("output dx=dy@W.T", N * T, V, F, "nt")]
    return out


def simple_convnet_products(N: int, H: int = 28, W: int = 28, C: int = 1, F: int = 30, K: int = 5,
                            pool: int = 2, hidden: int = 100, classes: int = 10,
                            training: bool = True) -> list[Product]:
    OH, OW = H - K + 1, W - K + 1
    rows, flat = N * OH * OW, (OH // pool) * (OW // pool) * F
    forward = [Product("conv col@W", rows, K * K * C, F), Product("dense1 x@W", N, flat, hidden),
               Product("dense2 x@W", N, hidden, classes)]
    return forward if not training else [
        Product("conv col@W", rows, K * K * C, F),
        Product("conv dW=col.T@dy", K * K * C, rows, F, "tn"),
        Product("dense1 x@W", N, flat, hidden),
        Product("dense1 dW=x.T@dy", flat, N, hidden, "tn"),
        Product("dense1 dx=dy@W.T", N, hidden, flat, "nt"),
        Product("dense2 x@W", N, hidden, classes),
        Product("dense2 dW=x.T@dy", hidden, N, classes, "tn"),
        Product("dense2 dx=dy@W.T", N, classes, hidden, "nt"),
    ]


def time_product(p: Product, min_seconds: float = 0.2, rng=None, min_samples: int = 5) -> float:
    """Best-of seconds for one (m, k) @ (k, n) float32 product in the given layout
    (or its transposed form, if that is faster and the product allows it).

    At least `min_samples` timed batches, however long each takes: on a busy machine one
    batch can be stalled 100-fold, and the best of several is the machine's real speed.
    """
    rng = rng or np.random.default_rng(0)
    if p.transposable:
        swapped = p._replace(m=p.n, n=p.m, layout="nt", transposable=False)
        straight = p._replace(transposable=False)
        return min(time_product(straight, min_seconds, rng, min_samples),
                   time_product(swapped, min_seconds, rng, min_samples))
    a = rng.standard_normal((p.k, p.m) if p.layout == "tn" else (p.m, p.k), dtype=np.float32)
    b = rng.standard_normal((p.n, p.k) if p.layout == "nt" else (p.k, p.n), dtype=np.float32)
    A = a.T if p.layout == "tn" else a
    B = b.T if p.layout == "nt" else b
    out = np.empty((p.m, p.n), dtype=np.float32)
    np.matmul(A, B, out=out)  # warm-up: threads started, pages touched
    # Batches of calls long enough for the clock; the best batch is the machine's speed
    # when nothing else gets in the way (the machine is shared, so the mean is noise).
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            np.matmul(A, B, out=out)
        dt = time.perf_counter() - t0
        if dt > 0.01:
            break
        reps *= 4
    best, spent, samples = dt / reps, dt, 1
    while spent < min_seconds or samples < min_samples:
        t0 = time.perf_counter()
        for _ in range(reps):
            np.matmul(A, B, out=out)
        dt = time.perf_counter() - t0
        best, spent, samples = min(best, dt / reps), spent + dt, samples + 1
    return best


def measure(products: list[Product], min_seconds: float = 0.2) -> dict:
    """Seconds per batch of all products, with a per-product breakdown and GFLOP/s."""
    rows, total = [], 0.0
    for p in products:
        s = time_product(p, min_seconds)
        total += s * p.repeats
        rows.append({"name": p.name, "shape": [p.m, p.k, p.n], "layout": p.layout, "repeats": p.repeats,
                     "seconds": s, "gflops": 2 * p.m * p.k * p.n / s / 1e9})
    return {"seconds_per_batch": total, "products": rows}
