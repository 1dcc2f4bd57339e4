"""Training throughput of one config under mpirun or alone: timed optimizer steps, tokens (items)/s.

    OPENBLAS_NUM_THREADS=2 python3 benchmarks/dist_throughput.py configs/lstm_ptb_small.yaml --data-dir DIR
    OPENBLAS_NUM_THREADS=1 mpirun -n 2 python3 benchmarks/dist_throughput.py configs/lstm_ptb_small.yaml --data-dir DIR

Runs `--warmup` steps, then times `--steps` steps of the real Trainer.step (shard, forward,
backward, the allreduce, clip, update) over the first batches of epoch 1; no evaluation,
no run folder. Prints one JSON line from rank 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from nnctl import config as config_mod  # noqa: E402
from nnctl import distributed, run, streams  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    comm = distributed.get_communicator()
    cfg = config_mod.load(Path(args.config))
    exp, trainer = run.build_trainer(cfg, args.data_dir, comm=comm)
    distributed.prepare_ranks(comm, exp.model, exp.optimizer, cfg["seed"], 0)
    batches = exp.data.batches("train", rng=streams.stream(cfg["seed"], streams.EPOCH_ORDER, 0))
    items, started = 0, None
    for index, batch in enumerate(batches):
        if index == args.warmup:
            started = time.perf_counter()
        if index == args.warmup + args.steps:
            break
        out = trainer.step(batch)
        if started is not None:
            items += out.count  # the global batch's items (summed over ranks by the allreduce)
    seconds = time.perf_counter() - started
    if comm.rank == 0:
        print(json.dumps({"config": args.config, "processes": comm.size,
                          "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "steps": args.steps,
                          "seconds": round(seconds, 2), f"{exp.data.unit}_per_s": round(items / seconds, 1)}))


if __name__ == "__main__":
    main()
