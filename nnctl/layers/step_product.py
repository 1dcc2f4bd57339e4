"""The recurrent product h_{t-1} @ Wh of every time step, for a few rows of state at a time.

A recurrent layer multiplies its state h (N, K), N the batch (10 to 64 rows), by the same
weight matrix W (K, M) at every step of a window. For so few rows the arithmetic is
small, and what a general BLAS product does around it counts: OpenBLAS copies ("packs")
the whole of W into its own layout on every call. `StepProduct` prepares W once per
window in one of two layouts:

  transposed     W.T, contiguous: the product is (W.T @ h.T).T, because BLAS streams the
                 big matrix faster as the left operand (`rows_times`).
  column groups  W cut into G groups of 64 columns, a (G, K, 64) stack (the last group
                 padded with zero columns), and one np.matmul over the stack per step.
                 Each group is small enough (N * K * 64 <= 10^6 multiply-adds) for the
                 small-matrix kernels that OpenBLAS has on some processors
                 (nnctl/layers/small_matrix.py), which read the operands where they lie
                 instead of packing them. nnctl's threads share the groups
                 (`for_row_blocks`); each group is one BLAS call whichever thread makes
                 it, so the result is the same for any thread count.

Column groups are used where the BLAS in use has those kernels and the product fits them,
else the transposed layout (benchmarks/README.md, "Small-matrix kernels"). The two round
differently, by a few 1e-7 of the result; the choice depends only on the shapes and the
BLAS library's kernels, never on a timing, so one machine gives the same bits on every run.
"""

from __future__ import annotations

import numpy as np

from nnctl.backend import get_xp
from nnctl.layers.small_matrix import SMALL_MATRIX_LIMIT, blas_has_small_matrix_kernels
from nnctl.threads import for_row_blocks

GROUP_COLUMNS = 64
# Each thread takes at least this many multiply-adds of a step's product: a smaller share
# is over before a second thread has started on it.
MIN_WORK_PER_THREAD = 4_000_000


def rows_times(v, matrix_T):
    """v @ matrix for a few rows v (N, K), given matrix_T = matrix.T (contiguous).

    The per-step product reads a whole weight matrix for a few rows of state; BLAS streams
    the big matrix faster as the left operand, so this computes (matrix.T @ v.T).T
    (benchmarks/README.md, "the recurrent product"). Pass W.T to get v @ W, and W itself
    to get v @ W.T.
    """
    return (matrix_T @ v.T).T


def choose_layout(rows: int, W) -> str:
    """'groups' or 'transposed' for h (rows, K) @ W (K, M); see the module's docstring."""
    K = W.shape[0]
    fits = rows * K * GROUP_COLUMNS <= SMALL_MATRIX_LIMIT
    if get_xp(W) is np and fits and blas_has_small_matrix_kernels():
        return "groups"
    return "transposed"


def window_step_product(layer, W, rows: int, *, weight_drop: bool, column_scale=None) -> "StepProduct":
    """The StepProduct of one window of `layer`: made afresh, or made once and kept while the
    layer's weights are fixed (Layer.weights_fixed: evaluation, sampling). With weight drop
    W is new every window, so it is never kept."""
    def make() -> StepProduct:
        return StepProduct(W, rows, column_scale=column_scale)

    return make() if weight_drop else layer.kept(("step product", rows), make)


class StepProduct:
    """h (rows, K) -> h @ (W * column_scale), for one window's steps; W (K, M) is copied once.

    column_scale: None, or (M,) factors folded into the copy (the LSTM halves its sigmoid
    gates' columns). layout: None chooses (`choose_layout`); 'groups' or 'transposed' forces
    one (the tests check both).
    """

    def __init__(self, W, rows: int, *, column_scale=None, layout: str | None = None):
        self.layout = choose_layout(rows, W) if layout is None else layout
        if self.layout not in ("groups", "transposed"):
            raise ValueError(f"layout must be 'groups' or 'transposed', got {layout!r}")
        xp = get_xp(W)
        K, M = W.shape
        self.rows, self.M = rows, M
        if self.layout == "transposed":
            self.WT = xp.ascontiguousarray((W if column_scale is None else W * column_scale).T)  # (M, K)
            return
        G, full = -(-M // GROUP_COLUMNS), M // GROUP_COLUMNS  # groups, and those without padding
        self.groups = np.empty((G, K, GROUP_COLUMNS), dtype=W.dtype)  # (G, K, 64)
        scale = np.ones(M, dtype=W.dtype) if column_scale is None else column_scale
        whole = slice(0, full * GROUP_COLUMNS)
        np.multiply(W[:, whole].reshape(K, full, GROUP_COLUMNS).transpose(1, 0, 2),
                    scale[whole].reshape(full, 1, GROUP_COLUMNS), out=self.groups[:full])
        if full < G:  # the last group: the remaining columns, then zeros
            rest = M - full * GROUP_COLUMNS
            np.multiply(W[:, whole.stop:], scale[whole.stop:], out=self.groups[full, :, :rest])
            self.groups[full, :, rest:] = 0
        # The products land in the rows' own layout: group g's (N, 64) is out_rows[:, 64g:64(g+1)],
        # a matrix with a longer row stride, which BLAS writes directly.
        self.out_rows = np.empty((rows, G * GROUP_COLUMNS), dtype=W.dtype)
        self.out = self.out_rows.reshape(rows, G, GROUP_COLUMNS).transpose(1, 0, 2)  # (G, N, 64) view
        self.min_groups_per_thread = -(-MIN_WORK_PER_THREAD // (rows * K * GROUP_COLUMNS))
        # Where no second thread would take a share, all groups go in one np.matmul call
        self.shared = G >= 2 * self.min_groups_per_thread
        self.groups_per_block = max(1, G // 4)

    def __call__(self, h):
        """h @ W (scaled), (rows, M). In column groups: a view of a buffer the next call overwrites."""
        if self.layout == "transposed":
            return rows_times(h, self.WT)
        groups, out = self.groups, self.out
        if not self.shared:
            np.matmul(h, groups, out=out)  # the same calls for_row_blocks would make, without its overhead
            return self.out_rows[:, : self.M]

        def some_groups(first: int, stop: int) -> None:
            np.matmul(h, groups[first:stop], out=out[first:stop])

        for_row_blocks(some_groups, len(groups), block_rows=self.groups_per_block,
                       min_rows_per_thread=self.min_groups_per_thread)
        return self.out_rows[:, : self.M]

    def add_to(self, a, h) -> None:
        """a += h @ W (scaled), a (rows, M) in place."""
        a += self(h)
