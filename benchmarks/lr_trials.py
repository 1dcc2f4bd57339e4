"""Short learning-rate trials: train a config for a few hundred steps at each rate, print the mean loss.

    python3 benchmarks/lr_trials.py configs/studies/cells_ptb.yaml --set model.cell=rnn \
        --lr 20 5 2 1 0.5 --steps 300 --data-dir ~/data

Each trial builds the experiment afresh and runs Trainer.step on the first `--steps` training
batches (seeded order), as `nnctl train` would, and prints the mean training loss over the
first and the last 50 steps. A stand-in for a sweep, to pick a rate before a long run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nnctl  # noqa: E402,F401  before NumPy, as the `nnctl` command does
import numpy as np  # noqa: E402
from nnctl import config, run, streams  # noqa: E402


def trial(config_path: str, overrides: list[str], lr: float, steps: int, data_dir: str | None) -> list[float]:
    cfg = config.load(Path(config_path), [*overrides, f"optimizer.lr={lr}"])
    exp, trainer = run.build_trainer(cfg, data_dir)
    losses = []
    for batch in exp.data.batches("train", rng=streams.stream(cfg["seed"], streams.EPOCH_ORDER, 0)):
        out = trainer.step(batch)
        if out is not None:
            losses.append(out.loss_sum / out.count)
        if len(losses) == steps:
            break
    return losses


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value, as nnctl train")
    ap.add_argument("--lr", type=float, nargs="+", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    if args.steps < 50:
        ap.error("--steps must be at least 50 (the means are over 50 steps)")
    for lr in args.lr:
        losses = trial(args.config, args.overrides, lr, args.steps, args.data_dir)
        print(f"lr {lr:g}: mean training loss, steps 1-50 {np.mean(losses[:50]):.3f}, "
              f"last 50 {np.mean(losses[-50:]):.3f}", flush=True)


if __name__ == "__main__":
    main()
