"""Is the machine what it was? Which BLAS kernels run, and two quick readings to take before
trusting a timed run.

    python3 benchmarks/machine_check.py                 # ~25 s
    python3 benchmarks/machine_check.py --seconds 60 --threads 1

1. The small LM's output product, (700 x 200) @ (200 x 10000) float32, timed over and over
   in slices of `--slice` seconds: GFLOP/s per slice. On a shared host the second core can
   come and go for seconds at a time; a run of slices at the one-thread figure while two
   threads are asked for means the other core is not there, whatever the load average says.
2. NumPy's float32 exp, add, max and sum over a block that stays in cache: nanoseconds per
   element. exp is the one transcendental of the LM decoder's pass; its cost against an add
   says how far that pass is from reading memory (NumPy picks its exp kernel by the CPU's
   SIMD level, which `numpy.show_runtime()` prints).

The first line names OpenBLAS's kernels and whether OPENBLAS_CORETYPE chose them: on an
AVX-512 CPU, Haswell's are the slower AVX2 ones (benchmarks/README.md, "OpenBLAS's kernels").
Figures and what they meant on a given day go in benchmarks/README.md ("Threads and noise").
"""

from __future__ import annotations

import argparse
import os
import time

from nnctl import threads  # imported before NumPy, as the nnctl command does (OpenBLAS's thread timeout)
import numpy as np  # noqa: E402


def product_slices(seconds: float, slice_seconds: float) -> list[float]:
    """GFLOP/s of the decoder-sized product in consecutive slices of `slice_seconds`."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal((700, 200), dtype=np.float32)
    W = rng.standard_normal((10_000, 200), dtype=np.float32)
    flop = 2 * h.shape[0] * h.shape[1] * W.shape[0]
    h @ W.T  # warm up the BLAS threads
    readings, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < slice_seconds:
            h @ W.T
            n += 1
        readings.append(flop * n / (time.perf_counter() - t0) / 1e9)
    return readings


def elementwise_ns(size: int = 16_000, repeats: int = 2_000) -> dict[str, float]:
    """Nanoseconds per element of a few float32 passes over a block that fits in cache."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, size).astype(np.float32)
    out = np.empty_like(x)
    passes = {
        "exp": lambda: np.exp(x, out=out),
        "add": lambda: np.add(x, 1.0, out=out),
        "max": lambda: x.max(),
        "sum": lambda: x.sum(),
    }
    timings = {}
    for name, run in passes.items():
        run()
        t0 = time.perf_counter()
        for _ in range(repeats):
            run()
        timings[name] = (time.perf_counter() - t0) / repeats / size * 1e9
    return timings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to time the product")
    ap.add_argument("--slice", type=float, default=2.0, help="seconds per reading")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads for the product (nnctl.threads.use_threads; default: as NumPy starts)")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_info

    if args.threads is not None:
        threads.use_threads(args.threads)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    blas_threads = [pool["num_threads"] for pool in blas]
    # Which kernels run sets the speed of every product (benchmarks/README.md, "OpenBLAS's kernels")
    kernels = ", ".join(f"{pool.get('internal_api')} {pool.get('version')} {pool.get('architecture')}" for pool in blas)
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    print(f"BLAS kernels: {kernels} "
          + (f"(OPENBLAS_CORETYPE={coretype} is set)" if coretype else "(chosen by the library for this CPU)"))
    readings = product_slices(args.seconds, args.slice)
    print(f"(700 x 200) @ (200 x 10000) float32, BLAS threads {blas_threads}, GFLOP/s per {args.slice:g} s slice:")
    print("  " + " ".join(f"{r:.1f}" for r in readings))
    print(f"  min {min(readings):.1f}, median {np.median(readings):.1f}, max {max(readings):.1f}")
    timings = elementwise_ns()
    print("float32 passes over 16,000 elements in cache, ns per element: "
          + ", ".join(f"{name} {ns:.2f}" for name, ns in timings.items())
          + f"  (exp / add = {timings['exp'] / timings['add']:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
