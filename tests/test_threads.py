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


@pytest.fixture
def blas_restored(monkeypatch):
    """Whatever a test sets with use_threads is undone: BLAS's count and the module's own."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import nnctl.threads as threads_mod

    before = {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
    chosen = threads_mod._chosen
    for name in ("NNCTL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    yield
    threads_mod._chosen = chosen
    if before:
        threadpool_limits(limits=max(before.values()), user_api="blas")


def test_use_threads_sets_blas_and_the_elementwise_pool_and_a_variable_still_wins(blas_restored, monkeypatch):
    from threadpoolctl import threadpool_info

    from nnctl.threads import use_threads

    use_threads(1)
    assert num_threads() == 1
    assert {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"} == {1}
    monkeypatch.setenv("NNCTL_NUM_THREADS", "3")
    assert num_threads() == 3


def test_the_elementwise_pool_gives_the_same_bits_at_any_count(blas_restored, monkeypatch):
    """The decoder's max/exp/sum pass on 1 or 3 threads: identical loss and gradients (BLAS fixed)."""
    from nnctl.layers.decoder_loss import DecoderCrossEntropy
    from nnctl.threads import use_threads

    use_threads(1)  # BLAS's own count changes the last bits of a product; keep it fixed here
    rng = np.random.default_rng(0)
    h = rng.standard_normal((96, 16), dtype=np.float32) * 3
    y = rng.integers(0, 50, 96)
    results = []
    for count in ("1", "3"):
        monkeypatch.setenv("NNCTL_NUM_THREADS", count)
        layer = DecoderCrossEntropy(16, 50, rng=np.random.default_rng(1))
        loss = layer.forward(h, y)
        dh = layer.backward(1 / 96)
        results.append((loss, dh, layer.W.grad.copy(), layer.b.grad.copy()))
    for first, second in zip(*results):
        assert np.array_equal(first, second)
