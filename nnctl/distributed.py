"""Data-parallel training over MPI, and the single-process stand-in every other run uses.

All inter-process communication in nnctl lives in this module. Launched as

    mpirun -n R nnctl train cfg.yaml

every rank builds the same experiment, rank 0's weights are broadcast (so all ranks start
identical even if a constructor drew differently), and every rank walks the same global
batches (same seed, same shuffling) keeping only its shard of each (`Dataset.shard`).
Each step then makes ONE allreduce of one flat buffer:

    rank r:     g_r = gradient of the mean loss over its n_r items        (model.backward)
    buffer_r  = [ n_r·g_r for every Param | touched-row flags of sparse Params |
                  loss_sum_r, n_r, correct_r, stop_r ]
    allreduce:  Σ_r buffer_r
    every rank: g = Σ_r n_r·g_r / Σ_r n_r

so g is exactly the gradient of the mean loss over the whole global batch (even when a
last, short batch splits unevenly), every rank applies the same update, and the weights
stay identical without ever being sent again. The summed loss/count/correct give rank 0
the global training loss to report, and the summed stop flag makes every rank stop after
the same step when one of them got SIGINT/SIGTERM (a rank that stopped alone would leave
the others waiting in the allreduce forever).

Per-rank statistics stay per rank: batch norm normalises over the rank's shard (as
PyTorch DDP without SyncBatchNorm), and dropout masks come from per-rank streams.

Device arrays (CuPy) are copied to the host for the allreduce: correct with any MPI build,
CUDA-aware or not, at the price of one device-host round trip per step.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nnctl import streams
from nnctl.backend import as_numpy, get_xp
from nnctl.data.base import shard_rows
from nnctl.errors import ConfigError
from nnctl.models.base import LossOutput

# Environment variables that mpirun / mpiexec / srun set in the processes they start.
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")


class SingleProcess:
    """One process, no communication: every method is the identity (or a no-op)."""

    rank = 0
    size = 1

    def combine_step(self, params, out: LossOutput, stop: bool) -> tuple[LossOutput, bool]:
        return out, stop

    def sum_totals(self, loss_sum: float, count: int, correct: int) -> tuple[float, int, int]:
        return loss_sum, count, correct

    def broadcast_arrays(self, arrays: list) -> None:
        pass

    def gather_rows(self, state: Any) -> Any:
        return state

    def shard_state(self, state: Any) -> Any:
        return state

    def bcast(self, obj: Any) -> Any:
        return obj


class MPICommunicator(SingleProcess):
    """mpi4py's COMM_WORLD: rank, size, and the collectives training needs."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def combine_step(self, params, out: LossOutput, stop: bool) -> tuple[LossOutput, bool]:
        """Average gradients (weighted by item counts) and sum the step's totals: one allreduce."""
        from mpi4py import MPI

        grads = [p.grad for p in params]
        dtype = grads[0].dtype if grads else np.float64
        n = int(out.count)
        parts = [as_numpy(g).reshape(-1) * dtype.type(n) for g in grads]
        sparse = [p for p in params if p.sparse]
        for p in sparse:  # which rows of each sparse table any rank touched
            flags = np.zeros(p.grad.shape[0], dtype=dtype)
            flags[as_numpy(p.touched_rows)] = 1
            parts.append(flags)
        parts.append(np.array([out.loss_sum, n, out.correct or 0, 1.0 if stop else 0.0], dtype=dtype))
        buffer = np.concatenate(parts)
        self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        loss_sum, count, correct, stops = (float(v) for v in buffer[-4:])
        total = max(int(round(count)), 1)
        offset = 0
        for p in params:
            size = p.grad.size
            mean = buffer[offset:offset + size].reshape(p.grad.shape) / dtype.type(total)
            p.grad[...] = get_xp(p.grad).asarray(mean)
            offset += size
        for p in sparse:
            rows = np.flatnonzero(buffer[offset:offset + p.grad.shape[0]] > 0)
            p.touched_rows = get_xp(p.grad).asarray(rows)
            offset += p.grad.shape[0]
        combined = LossOutput(loss_sum, int(round(count)), None if out.correct is None else int(round(correct)))
        return combined, stops > 0

    def sum_totals(self, loss_sum: float, count: int, correct: int) -> tuple[float, int, int]:
        """Evaluation totals summed over ranks (each scored its shard of every batch)."""
        from mpi4py import MPI

        buffer = np.array([loss_sum, count, correct], dtype=np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return float(buffer[0]), int(round(buffer[1])), int(round(buffer[2]))

    def broadcast_arrays(self, arrays: list) -> None:
        """Overwrite every rank's arrays (weights, buffers, optimizer state) with rank 0's, in place."""
        if not arrays:
            return
        host = [as_numpy(a) for a in arrays]
        flat = np.concatenate([a.astype(np.float64).reshape(-1) for a in host])
        self.comm.Bcast(flat, root=0)  # float64 holds float32 values and int64 counters < 2^53 exactly
        offset = 0
        for a in arrays:
            piece = flat[offset:offset + a.size].reshape(a.shape).astype(a.dtype)
            a[...] = get_xp(a).asarray(piece)
            offset += a.size

    def gather_rows(self, state: Any) -> Any:
        """Carried state (nested tuples/lists of (n_r, ...) arrays) -> the global batch's on rank 0, by rows."""
        gathered = self.comm.gather(_map_leaves(state, as_numpy), root=0)
        if self.rank != 0 or state is None:
            return None
        return _zip_leaves(gathered, lambda leaves: np.concatenate(leaves, axis=0))

    def shard_state(self, state: Any) -> Any:
        """The global batch's carried state (from a checkpoint) -> this rank's rows of it."""
        def take(a):
            return a[shard_rows(a.shape[0], self.rank, self.size)]
        return _map_leaves(state, take)

    def bcast(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)


def check_shardable(comm: SingleProcess, data, model, model_type: str) -> None:
    """Several ranks need a global batch they can share evenly (the LM: the same streams every step)."""
    size = comm.size
    batch_size = getattr(data, "batch_size", None)
    if size > 1 and batch_size is not None and batch_size % size:
        raise ConfigError(f"data.batch_size {batch_size} cannot be split evenly over {size} processes; "
                          f"use a multiple of {size} (it is the global batch, shared by all processes)")
    if size > 1 and not getattr(model, "trainable", True):
        raise ConfigError(f"model '{model_type}' is fitted in closed form, not by gradient steps; "
                          "run it without mpirun")
    if size > 1 and getattr(model, "single_process", False):  # its totals have fields no allreduce sums
        raise ConfigError(f"model '{model_type}' trains in one process only (its exact-match counts are not "
                          "summed over processes); run it without mpirun")


def training_arrays(model, optimizer=None) -> list:
    """Every array that must be identical on all ranks: weights, buffers, optimizer state."""
    arrays = [p.data for p in model.params()] + list(model.named_buffers().values())
    if optimizer is not None:
        arrays += [a for slots in optimizer.state.values() for a in slots.values()]
    return arrays


def prepare_ranks(comm: SingleProcess, model, optimizer, seed: int, step: int) -> None:
    """Before training on several ranks: rank 0's arrays everywhere, and per-rank random streams.

    Broadcasting makes the start identical whatever each rank's constructor or checkpoint
    read gave. The layers' generators (dropout masks, CBOW's noise words) are then reseeded
    from (seed, rank, step), so ranks draw different masks for their different rows instead
    of repeating rank 0's pattern; a resumed run reseeds from its step, so its masks differ
    from the uninterrupted run's (the weights, optimizer state and data order do not).
    """
    if comm.size == 1:
        return
    comm.broadcast_arrays(training_arrays(model, optimizer))
    for index, (_, layer) in enumerate(model.named_layers()):
        if isinstance(getattr(layer, "rng", None), np.random.Generator):
            layer.rng = streams.stream(seed, streams.RANK_DROPOUT, comm.rank, index, step)


def _map_leaves(tree: Any, fn):
    if tree is None:
        return None
    if isinstance(tree, (tuple, list)):
        return type(tree)(_map_leaves(t, fn) for t in tree)
    return fn(tree)


def _zip_leaves(trees: list, fn):
    first = trees[0]
    if isinstance(first, (tuple, list)):
        return type(first)(_zip_leaves([t[i] for t in trees], fn) for i in range(len(first)))
    return fn(trees)


def launched_size() -> int:
    """How many processes the MPI launcher started (1 when not launched by one)."""
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def get_communicator() -> SingleProcess:
    """MPI when started by mpirun with more than one process, else the single-process stand-in.

    mpi4py is imported only then (importing it initialises MPI), so plain runs never need it.
    """
    if launched_size() <= 1:
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConfigError(f"started by an MPI launcher with {launched_size()} processes, but mpi4py is not "
                          "installed; pip install 'nnctl[mpi]' (or run without mpirun)") from None
    if MPI.COMM_WORLD.Get_size() == 1:
        return SingleProcess()
    return MPICommunicator(MPI.COMM_WORLD)
