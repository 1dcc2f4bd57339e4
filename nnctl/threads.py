"""Elementwise NumPy work on every core, the way BLAS already runs its products.

OpenBLAS runs a matrix product on all cores, but a NumPy ufunc (`exp`, `max`, `-=`) runs
on one. On a word-level LM's (700, 10000) logits, the one-core max/subtract/exp pass was
a quarter of a small model's training step (py-spy, issue 6). NumPy releases the GIL
inside ufuncs and reductions, so ordinary Python threads, each on its own rows of the
array, run truly in parallel; no extension code is needed.

`for_row_blocks(fn, num_rows)` calls `fn(start, stop)` on disjoint row ranges that cover
`range(num_rows)`: contiguous shares, one per thread (the calling thread takes one), each
walked in blocks of `block_rows` rows so that a row's max, subtract and exp passes read
it from cache rather than memory.

How many threads: `NNCTL_NUM_THREADS`, else `OPENBLAS_NUM_THREADS` or `OMP_NUM_THREADS`,
else the cores this process may run on. So `OPENBLAS_NUM_THREADS=1`, the advice for a
machine busy with other work (README), makes all of nnctl single-threaded. A value that
is not a positive integer is ignored.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

_THREAD_VARIABLES = ("NNCTL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")

_pool: ThreadPoolExecutor | None = None
_pool_owner: int | None = None  # the pid that made the pool: a forked child must make its own


def num_threads() -> int:
    """Threads for elementwise work: the first positive integer among the variables, else the cores."""
    for name in _THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _helpers(count: int) -> ThreadPoolExecutor:
    global _pool, _pool_owner
    if _pool is None or _pool_owner != os.getpid() or _pool._max_workers < count:
        _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="nnctl-rows")
        _pool_owner = os.getpid()
    return _pool


def for_row_blocks(fn: Callable[[int, int], None], num_rows: int, *, block_rows: int = 8,
                   min_rows_per_thread: int = 32) -> None:
    """Call fn(start, stop) over blocks of at most `block_rows` rows covering range(num_rows).

    The blocks are split into one contiguous share per thread; `fn` must only touch its own
    rows. With one thread, or too few rows to be worth a second, everything runs here, in
    order. An exception in any share is raised here after all shares have finished.
    For NumPy arrays only: a CuPy kernel is parallel already, so call fn(0, num_rows).
    """
    threads = min(num_threads(), num_rows // max(1, min_rows_per_thread))

    def walk(start: int, stop: int) -> None:
        for first in range(start, stop, block_rows):
            fn(first, min(first + block_rows, stop))

    if threads <= 1:
        walk(0, num_rows)
        return
    cuts = [num_rows * k // threads for k in range(threads + 1)]
    others = [_helpers(threads - 1).submit(walk, cuts[k], cuts[k + 1]) for k in range(1, threads)]
    try:
        walk(cuts[0], cuts[1])
    finally:
        for share in others:
            share.result()
