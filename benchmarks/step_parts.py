#!/usr/bin/env python3
"""Where a training step goes: milliseconds per part, inside a real loop.

    python3 benchmarks/step_parts.py lm_book --data-dir ~/data --steps 50
    python3 benchmarks/step_parts.py cnn --data-dir ~/data
    python3 benchmarks/step_parts.py lm_medium --data-dir ~/data --eval

Builds the workload as benchmarks/worker.py does (so `nnctl` is imported before NumPy and
OpenBLAS gets nnctl's thread timeout), runs Trainer.step on real batches (with --eval,
evaluation windows in eval mode instead), and times each layer's forward and backward,
the LM decoder's elementwise pass over the logits (the `for_row_blocks` call), clipping,
the optimizer and zero_grad by wrapping them. For the CNN the layers are its Sequential's,
named by class and position. Prints the mean milliseconds per step of each part and of the
whole step (and the whole step's median and minimum: the machine is noisy); parts nest
(the pass is inside the decoder's forward). A sampling profile (run.py) says which lines
are hot; this says how long each piece takes, to compare one change against another on
the same day.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import worker  # noqa: E402  (imports nnctl before NumPy)
import numpy as np  # noqa: E402

import nnctl.layers.decoder_loss as decoder_loss  # noqa: E402
from nnctl.backend import keep_freed_memory  # noqa: E402


def timed(record: list, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record.append(time.perf_counter() - t0)
    return wrapper


def named_layers(model) -> list[tuple[str, object]]:
    """(label, layer) for each layer whose forward and backward are timed."""
    if hasattr(model, "net"):  # a Classifier: its Sequential's layers, in order
        return [(f"{i}:{type(layer).__name__}", layer) for i, layer in enumerate(model.net.layers)]
    return [("embedding", model.embedding), *((f"dropout{i}", d) for i, d in enumerate(model.dropouts)),
            *((f"{model.cell}{i}", cell) for i, cell in enumerate(model.cells)), ("decoder", model.decoder)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=[w for w in sorted(worker.WORKLOADS) if w.startswith("lm_") or w == "cnn"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--eval", action="store_true",
                    help="time evaluation windows (model.loss in eval mode, as Trainer.evaluate) instead")
    ap.add_argument("--each", action="store_true",
                    help="also print every step's milliseconds, in order (to see the machine drift)")
    args = ap.parse_args(argv)

    keep_freed_memory()
    cfg, exp, trainer = worker.build(args.workload, args.data_dir)
    model = exp.model
    parts: dict[str, list] = defaultdict(list)
    layers = named_layers(model)
    for label, layer in layers:
        for method in ("forward", "backward"):
            setattr(layer, method, timed(parts[f"{label}.{method}"], getattr(layer, method)))
    decoder_loss.for_row_blocks = timed(parts["decoder pass (bias/exp/row sum)"], decoder_loss.for_row_blocks)
    trainer.optimizer.step = timed(parts["optimizer.step"], trainer.optimizer.step)
    model.zero_grad = timed(parts["zero_grad"], model.zero_grad)
    import nnctl.trainer

    nnctl.trainer.global_grad_norm = timed(parts["gradient norm"], nnctl.trainer.global_grad_norm)
    nnctl.trainer.clip_grad_norm = timed(parts["clip"], nnctl.trainer.clip_grad_norm)

    if args.eval:
        split = "valid" if "valid" in exp.data.splits else "test"  # as worker.py
        evaluation = worker.EvalStream(exp, split, exp.train.eval_batch_size or exp.data.batch_size)
        model.eval()
        one_step, what = evaluation.step, f"evaluation window ({split}, batch {evaluation.batch_size})"
        scope = model.weights_fixed()  # as Trainer.evaluate (nnctl.metrics.score)
    else:
        batches = worker.endless_batches(trainer, cfg["seed"])
        one_step, what = (lambda: worker.run_steps(trainer, batches, steps=1)), "training step"
        scope = contextlib.nullcontext()
    steps = []
    with scope:
        for _ in range(args.warmup):
            one_step()
        for record in parts.values():
            record.clear()
        for _ in range(args.steps):
            t0 = time.perf_counter()
            one_step()
            steps.append(time.perf_counter() - t0)

    print(f"{args.workload}: mean ms per {what} over {args.steps} steps")
    print(f"  {'whole step':<40} {np.mean(steps) * 1e3:8.1f}   "
          f"(median {np.median(steps) * 1e3:.1f}, min {np.min(steps) * 1e3:.1f})")
    for label, record in parts.items():
        if record:
            per_step = np.sum(record) / args.steps  # a part may run several times per step
            print(f"  {label:<40} {per_step * 1e3:8.1f}")
    if args.each:
        print("each step, ms, in order: " + " ".join(f"{s * 1e3:.0f}" for s in steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
