"""Elementwise NumPy work on every core, the way BLAS already runs its products.

OpenBLAS runs a matrix product on all cores, but a NumPy ufunc (`exp`, `max`, `-=`) runs
on one. On a word-level LM's (700, 10000) logits, the one-core elementwise pass (then
max, subtract, exp) was a quarter of the book-size LM's training step (profiled with
py-spy). NumPy releases the GIL inside ufuncs and reductions, so ordinary Python threads,
each on its own rows of the array, run truly in parallel; no extension code is needed.

`for_row_blocks(fn, num_rows)` calls `fn(start, stop)` on disjoint blocks of `block_rows`
rows that cover `range(num_rows)`, the threads (the calling one among them) taking the
next block as they finish one. Blocks are small so that the second and later passes over
a row (the decoder's bias, exp and row sum) read it from cache rather than memory.

How many threads: `NNCTL_NUM_THREADS`, else `OPENBLAS_NUM_THREADS` or `OMP_NUM_THREADS`
(an explicit setting: it always wins), else the count last given to `use_threads`, else
the cores this process may run on. A value that is not a positive integer is ignored.

`use_threads(n)` sets both pools at runtime: this module's, and OpenBLAS's through
threadpoolctl (which finds the BLAS libraries loaded in this process and calls their
own `set_num_threads`). The Trainer calls it with `train.threads` or with what
nnctl/thread_tuner.py measured to run fastest.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

_THREAD_VARIABLES = ("NNCTL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")

_chosen: int | None = None  # use_threads()'s count, used when no variable is set
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_owner: int | None = None  # the pid that made the pool: a forked child must make its own


def explicit_setting(names: tuple[str, ...] = _THREAD_VARIABLES) -> tuple[str, int] | None:
    """(variable, count) of the first of `names` set to a positive integer, else None."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return name, int(value)
    return None


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def num_threads() -> int:
    """Threads for elementwise work: an explicit variable, else use_threads()'s count, else the cores."""
    explicit = explicit_setting()
    if explicit is not None:
        return explicit[1]
    return _chosen if _chosen is not None else cores()


def use_threads(count: int) -> None:
    """Run BLAS products and this module's elementwise passes on `count` threads from now on.

    Takes effect between two products, in the running process; the BLAS libraries loaded
    by now are the ones set (threadpoolctl looks them up on every call, about 2 ms).
    """
    global _chosen
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count, user_api="blas")
    _chosen = count


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
