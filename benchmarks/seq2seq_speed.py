"""Seq2seq speed: nnctl's `seq2seq` against the same model in PyTorch, in one run, taking turns.

    OPENBLAS_NUM_THREADS=1 python benchmarks/seq2seq_speed.py configs/seq2seq_addition.yaml \
        --set model.reverse_input=true --set model.peeky=true [--slices 6] [--seconds 5]

nnctl trains in this process on the config's real batches (Trainer.step: forward, backward,
clipping, Adam); the peer (peers/seq2seq_torch.py, run with --peer-python, one thread)
trains on batches of the same shapes. They time slices in the order A B B A A B ..., so
the machine's drift lands on both (turns.py). Evaluation is greedy decoding of
eval_batch_size examples plus the teacher-forced loss, for both. Prints examples/s, the
seconds one training epoch takes at that rate, and the ratio; --json writes them.

--bound also times the matrix products one training epoch needs at its real shapes
(gemm_bound.py) at this process's thread count: the seconds an epoch would take if nothing
but those products cost time, which no implementation built on the same BLAS can beat.
--bound-only prints that and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "peers")]
import gemm_bound  # noqa: E402
import turns  # noqa: E402
from run import DEFAULT_PEER_PYTHON, Child  # noqa: E402


def nnctl_phases(exp, trainer):
    """turns' phases for nnctl's model (run.build_trainer's) on the config's data, warmed up."""
    import numpy as np

    def forever(split, batch_size=None):
        while True:
            yield from exp.data.batches(split, rng=np.random.default_rng(0) if split == "train" else None,
                                        batch_size=batch_size)

    train_batches = forever("train")
    eval_batches = forever("valid", exp.train.eval_batch_size)

    def train_step():
        source, _ = batch = next(train_batches)
        trainer.step(batch)
        return len(source)

    def eval_step():
        source, _ = batch = next(eval_batches)
        exp.model.eval()
        try:
            exp.model.loss(batch)
        finally:
            exp.model.train()
        return len(source)

    for _ in range(5):
        train_step()
    eval_step()
    phases = {"train": lambda s: turns.timed_loop(train_step, s), "eval": lambda s: turns.timed_loop(eval_step, s)}
    return phases


def peer_command(exe: str, cfg: dict, extras: dict) -> list[str]:
    m, d = cfg["model"], cfg["data"]
    cmd = [exe, str(HERE / "peers" / "seq2seq_torch.py"), "--vocab", str(extras["vocab_size"]),
           "--source-length", str(extras["source_length"]), "--target-length", str(extras["target_length"]),
           "--emb", str(m["embed_dim"]), "--hidden", str(m["hidden_dim"]), "--cell", m["cell"],
           "--batch-size", str(d["batch_size"]), "--eval-batch-size", str(cfg["train"]["eval_batch_size"] or
                                                                         d["batch_size"]),
           "--clip", str(cfg["train"]["clip_grad_norm"] or 1e9), "--threads", "1", "--turns"]
    return cmd + [f"--{k.replace('_', '-')}" for k in ("peeky", "attention", "reverse_input") if m[k]]


def epoch_bound(exp, train_examples: int) -> dict:
    """The GEMM-only seconds of one training epoch (full batches; the last partial one counted whole)."""
    model, extras, N = exp.model, exp.model_extras, exp.config["data"]["batch_size"]
    E, H = model.encoder_embedding.W.shape[1], model.encoder.hidden_dim
    products = gemm_bound.seq2seq_products(N, extras["source_length"], extras["target_length"], E, H,
                                           extras["vocab_size"], model.encoder.Wx.shape[1] // H, model.peeky,
                                           model.attention)
    bound = gemm_bound.measure(products)
    batches = -(-train_examples // N)
    flops = sum(2 * p.m * p.k * p.n * p.repeats for p in products) * batches
    return {"seconds_per_epoch": bound["seconds_per_batch"] * batches, "gflop_per_epoch": flops / 1e9,
            "batches": batches, "products": bound["products"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="a config override, as nnctl train's")
    ap.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    ap.add_argument("--slices", type=int, default=6, help="turns per phase (each tool times this many slices)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per training slice (evaluation: half)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--bound", action="store_true", help="also the GEMM-only seconds per epoch (gemm_bound.py)")
    ap.add_argument("--bound-only", action="store_true", help="only the GEMM-only bound: no training, no peer")
    args = ap.parse_args(argv)

    from nnctl import config as config_mod
    from nnctl import run

    cfg = config_mod.load(Path(args.config), args.sets)
    exp, trainer = run.build_trainer(cfg)
    train_examples = len(exp.data.arrays["train"][0])
    bound = epoch_bound(exp, train_examples) if args.bound or args.bound_only else None
    if bound is not None:
        print(f"{args.config} {' '.join(args.sets)}: {bound['gflop_per_epoch']:,.0f} GFLOP of matrix products "
              f"per epoch ({bound['batches']} batches); GEMM-only bound {bound['seconds_per_epoch']:.1f} s/epoch")
    if args.bound_only:
        if args.json:
            args.json.write_text(json.dumps({"config": args.config, "sets": args.sets, "bound": bound}, indent=1))
        return 0
    phases = nnctl_phases(exp, trainer)
    peer = Child(peer_command(args.peer_python, cfg, exp.model_extras), print) if os.path.exists(args.peer_python) \
        else None
    if peer is not None and not peer.ready():
        peer.finish()
        peer = None
    ours = {"train": [0, 0.0], "eval": [0, 0.0]}
    load_start = os.getloadavg()
    for phase, seconds in (("train", args.seconds), ("eval", args.seconds / 2)):
        for k in range(args.slices):
            for player in ((0, 1) if k % 2 == 0 else (1, 0)):
                if player == 0:
                    items, took = phases[phase](seconds)
                    ours[phase][0] += items
                    ours[phase][1] += took
                elif peer is not None:
                    peer.run_slice(phase, seconds)
    theirs = peer.finish() if peer is not None else None
    result = {"config": args.config, "sets": args.sets, "train_examples": train_examples,
              "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
              "nnctl": turns.rates(ours), "peer": theirs, "bound": bound}
    rows = [("nnctl", result["nnctl"])] + ([("torch", theirs)] if theirs else [])
    print(f"{args.config} {' '.join(args.sets)}  (load {load_start[0]:.1f} -> {result['load_avg_end'][0]:.1f})")
    print(f"{'':8}{'train ex/s':>12}{'s/epoch':>10}{'eval ex/s':>12}")
    for name, r in rows:
        print(f"{name:8}{r['train_per_s']:>12,.0f}{train_examples / r['train_per_s']:>10.1f}{r['eval_per_s']:>12,.0f}")
    if theirs:
        ratio = result["nnctl"]["train_per_s"] / theirs["train_per_s"]
        result["train_ratio_nnctl_over_torch"] = ratio
        print(f"nnctl / torch, training: {ratio:.2f}x; evaluation: "
              f"{result['nnctl']['eval_per_s'] / theirs['eval_per_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
