"""nnctl.threads: elementwise work split over row blocks on several threads."""

import threading
import time

import numpy as np
import pytest

from nnctl.threads import for_row_blocks, num_threads


@pytest.mark.parametrize("threads, rows", [("1", 100), ("2", 100), ("3", 257), ("4", 40), ("8", 7)])
def test_every_row_is_visited_exactly_once_in_blocks(monkeypatch, threads, rows):
    monkeypatch.setenv("NNCTL_NUM_THREADS", threads)
    seen = np.zeros(rows, dtype=int)
    blocks, lock = [], threading.Lock()

    def visit(start, stop):
        seen[start:stop] += 1
        with lock:
            blocks.append((start, stop))

    for_row_blocks(visit, rows, block_rows=8, min_rows_per_thread=10)
    assert (seen == 1).all()
    assert all(0 < stop - start <= 8 for start, stop in blocks)


def test_blocks_run_on_other_threads_and_one_thread_stays_on_this_one(monkeypatch):
    monkeypatch.setenv("NNCTL_NUM_THREADS", "2")
    names = set()

    def slow_visit(start, stop):  # slow enough that the helper claims blocks before they run out
        names.add(threading.current_thread().name)
        time.sleep(0.002)

    for_row_blocks(slow_visit, 200, min_rows_per_thread=10)
    assert threading.current_thread().name in names and len(names) == 2
    monkeypatch.setenv("NNCTL_NUM_THREADS", "1")
    order = []
    for_row_blocks(lambda a, b: order.append(a), 200, block_rows=50)
    assert order == [0, 50, 100, 150]


def test_an_error_in_any_thread_reaches_the_caller(monkeypatch):
    monkeypatch.setenv("NNCTL_NUM_THREADS", "2")

    def fail_late(start, stop):
        if start >= 100:
            raise ValueError("bad block")

    with pytest.raises(ValueError, match="bad block"):
        for_row_blocks(fail_late, 200, min_rows_per_thread=10)


def test_thread_count_follows_nnctl_then_blas_variables(monkeypatch):
    for name in ("NNCTL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    cores = num_threads()
    assert cores >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert num_threads() == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert num_threads() == 1
    monkeypatch.setenv("NNCTL_NUM_THREADS", "5")
    assert num_threads() == 5
    monkeypatch.setenv("NNCTL_NUM_THREADS", "many")  # not a positive integer: ignored
    assert num_threads() == 1
