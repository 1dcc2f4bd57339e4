"""OpenBLAS's small-matrix kernels, and a product cut into pieces that fit them.

OpenBLAS's general product copies ("packs") both operands into its own layout before
multiplying. On some processors (its SkylakeX, Cooperlake and Sapphire Rapids kernels) it
also has small-matrix kernels, which read the operands where they lie, for products of at
most 100^3 multiply-adds; for a.T @ b only where the result has at most 1,200 numbers
(kernel/x86_64/sgemm_small_kernel_permit_skylakex.c). Where a product is long in one
dimension and small in the others, the copy costs as much as the arithmetic, and pieces
that fit those kernels, one np.matmul over a stack of them, are faster: a recurrent step's
few rows of state (nnctl/layers/step_product.py) and a convolution's weight gradient, the
(K, 57,600) @ (57,600, F) product of the CNN's first layer (benchmarks/README.md,
"Small-matrix kernels"). Without those kernels the pieces gain nothing, so the callers ask
`blas_has_small_matrix_kernels()` first; the answer depends on the BLAS library loaded, not
on a timing, so a machine computes the same bits on every run.
"""

from __future__ import annotations

import functools

import numpy as np

from nnctl.backend import get_xp

SMALL_MATRIX_LIMIT = 100 ** 3  # multiply-adds
SMALL_TRANSPOSED_RESULT_LIMIT = 1200  # numbers in the result of a.T @ b
SMALL_MATRIX_KERNELS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


@functools.cache
def blas_has_small_matrix_kernels() -> bool:
    """Whether NumPy's BLAS is an OpenBLAS running kernels with the small-matrix path."""
    from threadpoolctl import threadpool_info

    return any(pool.get("internal_api") == "openblas"
               and str(pool.get("architecture", "")).lower() in SMALL_MATRIX_KERNELS
               for pool in threadpool_info() if pool.get("user_api") == "blas")


def transposed_piece_rows(a, K: int, F: int) -> int:
    """Rows per piece for a.T @ b, a (M, K) and b (M, F), on the small-matrix kernels; else 0.

    A piece of r rows makes r * K * F multiply-adds. 0 where the BLAS lacks the kernels, for
    CuPy arrays, or where the (K, F) result is too large for them.
    """
    if get_xp(a) is not np or K * F > SMALL_TRANSPOSED_RESULT_LIMIT or not blas_has_small_matrix_kernels():
        return 0
    return SMALL_MATRIX_LIMIT // (K * F)


def _pieces(num_rows: int, piece_rows: int) -> list[tuple[slice, int]]:
    """(rows, count): the rows of `count` equal pieces, then the remainder as one piece."""
    whole = num_rows // piece_rows * piece_rows
    pieces = [(slice(0, whole), whole // piece_rows)] if whole else []
    return pieces + ([(slice(whole, num_rows), 1)] if whole < num_rows else [])


def transposed_times(a, b, piece_rows: int):
    """a.T @ b for a (M, K), b (M, F): the sum over pieces of `piece_rows` rows of a.T @ b."""
    M, K = a.shape
    total = np.zeros((K, b.shape[1]), dtype=np.result_type(a, b))
    for rows, count in _pieces(M, piece_rows):
        pieces = np.matmul(a[rows].reshape(count, -1, K).transpose(0, 2, 1), b[rows].reshape(count, -1, b.shape[1]))
        total += pieces.sum(axis=0)
    return total
