"""Elementwise NumPy work on every core, the way BLAS already runs its products.

OpenBLAS runs a matrix product on all cores, but a NumPy ufunc (`exp`, `max`, `-=`) runs
on one. On a word-level LM's (700, 10000) logits, the one-core max/subtract/exp pass was
a quarter of the book-size LM's training step (profiled with py-spy). NumPy releases the GIL
inside ufuncs and reductions, so ordinary Python threads, each on its own rows of the
array, run truly in parallel; no extension code is needed.

`for_row_blocks(fn, num_rows)` calls `fn(start, stop)` on disjoint blocks of `block_rows`
rows that cover `range(num_rows)`, the threads (the calling one among them) taking the
next block as they finish one. Blocks are small so that a row's max, subtract and exp
passes read it from cache rather than memory.

How many threads: `NNCTL_NUM_THREADS`, else `OPENBLAS_NUM_THREADS` or `OMP_NUM_THREADS`,
else the cores this process may run on. So `OPENBLAS_NUM_THREADS=1`, the advice for a
machine busy with other work (README), makes all of nnctl single-threaded. A value that
is not a positive integer is ignored.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

_THREAD_VARIABLES = ("NNCTL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
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
    """A pool of at least `count` threads, made once per process (and again if more are needed)."""
    global _pool, _pool_size, _pool_owner
    if _pool is None or _pool_owner != os.getpid() or _pool_size < count:
        _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="nnctl-rows")
        _pool_size, _pool_owner = count, os.getpid()
    return _pool


def for_row_blocks(fn: Callable[[int, int], None], num_rows: int, *, block_rows: int = 8,
                   min_rows_per_thread: int = 32) -> None:
    """Call fn(start, stop) over blocks of at most `block_rows` rows covering range(num_rows).

    Each thread (the calling one among them) takes the next unclaimed block until none is
    left, so a thread slowed by other work on its core simply does fewer blocks; `fn` must
    only touch its own rows. With one thread, or too few rows to be worth a second,
    everything runs here, in order. An exception in any thread is raised here after all
    threads have finished. For NumPy arrays only: a CuPy kernel is parallel already, so
    call fn(0, num_rows) there.
    """
    threads = min(num_threads(), num_rows // max(1, min_rows_per_thread))
    next_block = itertools.count()  # next() on it is atomic under the GIL: each block is claimed once

    def work() -> None:
        while (first := next(next_block) * block_rows) < num_rows:
            fn(first, min(first + block_rows, num_rows))

    if threads <= 1:
        work()
        return
    others = [_helpers(threads - 1).submit(work) for _ in range(threads - 1)]
    try:
        work()
    finally:
        for helper in others:
            helper.result()
