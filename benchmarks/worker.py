"""One nnctl workload in its own process: train after warm-up, evaluate, measure the GEMM bound.

Run by benchmarks/run.py (one process per workload, so peak memory is the workload's own):

    python3 benchmarks/worker.py lm_small --data-dir ~/data --seconds 30

Everything is built from the real configs through nnctl.config / nnctl.experiment and
driven through nnctl.trainer.Trainer.step (training) and model.loss in eval mode (what
Trainer.evaluate does), so what is timed is what `nnctl train` runs.

Phases, in order: build, warm-up steps, the timed training window and the timed
evaluation window (with --turns: the slices of each that run.py asks for on stdin,
alternating with the peer; see turns.py), an optional profile window (run.py attaches
py-spy to this pid between the PROFILE_START / PROFILE_END lines; those steps are not
timed), peak resident memory (VmHWM), then the GEMM-only bound. The last stdout line is
"RESULT {json}". CBOW (--epochs) trains whole epochs instead, then evaluates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnctl  # noqa: E402,F401  before NumPy, as in the `nnctl` command: it sets OpenBLAS's thread timeout
import numpy as np  # noqa: E402
from nnctl import config as nnconfig  # noqa: E402
from nnctl import run, streams  # noqa: E402
from nnctl.backend import keep_freed_memory  # noqa: E402
from nnctl.trainer import Trainer  # noqa: E402

import gemm_bound  # noqa: E402
import turns  # noqa: E402

# The standard configs. LM and CBOW are the shipped YAML files; the CNN is the model's
# default ("SimpleConvNet") on Fashion-MNIST, the peer's exact network and optimizer.
WORKLOADS = {
    "lm_book": {"config": "configs/rnnlm_ptb_book.yaml"},
    "lm_small": {"config": "configs/lstm_ptb_small.yaml"},
    "lm_medium": {"config": "configs/lstm_ptb.yaml"},
    # the small LM with the other recurrent cells, against torch.nn.GRU / torch.nn.RNN
    "lm_gru": {"config": "configs/lstm_ptb_small.yaml", "set": ["model.cell=gru"]},
    "lm_rnn": {"config": "configs/lstm_ptb_small.yaml", "set": ["model.cell=rnn"]},
    "cnn": {"config": {"name": "bench_cnn", "seed": 1,
                       "data": {"type": "fashion_mnist", "batch_size": 100, "download": False},
                       "model": {"type": "cnn"},
                       "optimizer": {"type": "adam", "lr": 0.001},
                       "schedule": {"type": "constant"},
                       "train": {"epochs": 5, "eval_batch_size": 1000}}},
    "cbow": {"config": "configs/cbow_ptb.yaml"},
}


def load_config(name: str) -> dict:
    spec = WORKLOADS[name]["config"]
    if isinstance(spec, str):
        return nnconfig.load(ROOT / spec, WORKLOADS[name].get("set", []))
    return nnconfig.resolve(json.loads(json.dumps(spec)), f"benchmarks:{name}")


def build(name: str, data_dir: str | None):
    """(config, experiment, Trainer) for a workload, built as `nnctl train` builds them."""
    cfg = load_config(name)
    exp, trainer = run.build_trainer(cfg, data_dir)
    return cfg, exp, trainer


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def item_count(batch) -> int:
    """Items a batch trains on: tokens (LM targets), images, or CBOW examples."""
    if hasattr(batch, "target"):
        return int(batch.target.shape[0])
    return int(np.asarray(batch[1]).size)


def endless_batches(trainer: Trainer, seed: int):
    """Training batches epoch after epoch, as Trainer.fit draws them (state reset per epoch)."""
    for epoch in itertools.count():
        trainer.progress.epoch = epoch
        trainer.state = None
        rng = streams.stream(seed, streams.EPOCH_ORDER, epoch)
        for batch in trainer.data.batches("train", rng=rng):
            yield batch


def run_steps(trainer: Trainer, batches, seconds: float | None = None, steps: int | None = None):
    """Trainer.step until `seconds` or `steps` run out: (items, seconds, steps)."""
    items, done, t0 = 0, 0, time.perf_counter()
    for batch in batches:
        trainer.step(batch)
        items += item_count(batch)
        done += 1
        elapsed = time.perf_counter() - t0
        if (steps is not None and done >= steps) or (seconds is not None and elapsed >= seconds):
            break
    return items, time.perf_counter() - t0, done


class EvalStream:
    """model.loss in eval mode over `split`, as Trainer.evaluate does, in timed slices.

    Each slice carries on where the last stopped (state and position kept; the split
    starts over when it runs out). The first `warmup` batches are not timed.
    """

    def __init__(self, exp, split: str, batch_size: int, warmup: int = 2):
        self.exp, self.split, self.batch_size, self.warmup = exp, split, batch_size, warmup
        self.state = None
        self.batches = self._endless()

    def _endless(self):
        while True:
            self.state = None  # a new pass over the split starts from a fresh state
            yield from self.exp.data.batches(self.split, rng=None, batch_size=self.batch_size)

    def step(self) -> int:
        batch = next(self.batches)
        _, self.state = self.exp.model.loss(batch, self.state)
        return item_count(batch)

    def run(self, seconds: float) -> tuple[int, float]:
        """One timed slice: (items, seconds)."""
        model = self.exp.model
        model.eval()
        try:
            with model.weights_fixed():  # as nnctl.metrics.score: derived weight layouts kept
                for _ in range(self.warmup):
                    self.step()
                self.warmup = 0
                return turns.timed_loop(self.step, seconds)
        finally:
            model.train()


def products_for(name: str, exp, training: bool, batch_size: int):
    if name.startswith("lm_"):
        m = exp.config["model"]
        return gemm_bound.lstm_lm_products(batch_size, exp.config["data"]["bptt"], m["embed_dim"],
                                           m["hidden_dim"], m["num_layers"], exp.model_extras["vocab_size"],
                                           training)
    if name == "cnn":
        return gemm_bound.simple_convnet_products(batch_size, training=training)
    return None  # CBOW has no dense products: gathers and sparse sums only


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--warmup", type=int, default=10, help="training steps before the clock starts")
    ap.add_argument("--seconds", type=float, default=30.0, help="timed training window")
    ap.add_argument("--turns", action="store_true",
                    help="after warm-up, time the slices run.py asks for on stdin (benchmarks/turns.py)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="train whole epochs instead of a window (cbow: corpus words/s and quality)")
    ap.add_argument("--eval-seconds", type=float, default=10.0)
    ap.add_argument("--profile-seconds", type=float, default=0.0,
                    help="extra untimed training for a sampling profiler attached by run.py")
    ap.add_argument("--gemm-seconds", type=float, default=0.15, help="timing budget per product shape")
    ap.add_argument("--vectors-out", default=None, help="cbow: save the word vectors (.npy) and words (.txt)")
    args = ap.parse_args(argv)

    keep_freed_memory()  # as the CLI does at start
    t_build = time.perf_counter()
    cfg, exp, trainer = build(args.workload, args.data_dir)
    build_s = time.perf_counter() - t_build
    batches = endless_batches(trainer, cfg["seed"])
    unit = exp.data.unit
    result = {"workload": args.workload, "unit": unit, "config": cfg, "build_s": round(build_s, 2),
              "params": exp.model.num_params()}

    eval_bs = exp.train.eval_batch_size or getattr(exp.data, "batch_size", None)
    split = "valid" if "valid" in exp.data.splits else "test"
    evaluation = EvalStream(exp, split, eval_bs)
    print("WORKLOAD " + json.dumps({"config": cfg, "eval_batch_size": eval_bs}), flush=True)  # for the peer's command
    if args.epochs:  # whole epochs, warm-up included, as gensim's train() is timed
        t0 = time.perf_counter()
        done_items, steps = 0, 0
        for epoch in range(args.epochs):
            trainer.progress.epoch = epoch
            rng = streams.stream(cfg["seed"], streams.EPOCH_ORDER, epoch)
            for batch in exp.data.batches("train", rng=rng):
                trainer.step(batch)
                done_items += item_count(batch)
                steps += 1
        train_s = time.perf_counter() - t0
        corpus_words = exp.data.corpus_words("train")
        result.update(train_epochs=args.epochs, train_s=train_s, train_steps=steps, train_examples=done_items,
                      corpus_words_per_epoch=corpus_words,
                      train_per_s=corpus_words * args.epochs / train_s,
                      train_examples_per_s=done_items / train_s)
        e_items, e_secs = evaluation.run(args.eval_seconds)
    else:
        run_steps(trainer, batches, steps=args.warmup)
        phases = {"train": lambda seconds: run_steps(trainer, batches, seconds=seconds)[:2],
                  "eval": evaluation.run}
        # with --turns, run.py hands out the slices, alternating with the peer
        totals = turns.play(phases, args.turns, {"train": args.seconds, "eval": args.eval_seconds})
        (items, secs), (e_items, e_secs) = totals["train"], totals["eval"]
        result.update(warmup_steps=args.warmup, train_items=items, train_s=secs,
                      train_per_s=items / secs if secs else None)

    if args.profile_seconds > 0:
        print("PROFILE_START", flush=True)
        run_steps(trainer, batches, seconds=args.profile_seconds)
        print("PROFILE_END", flush=True)

    result.update(eval_split=split, eval_batch_size=eval_bs, eval_items=e_items, eval_s=e_secs,
                  eval_per_s=e_items / e_secs if e_secs else None)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    # the count training ended on: tuned from step times (nnctl/thread_tuner.py), or fixed
    result["threads"] = {"count": trainer.threads.count, "tuning": trainer.threads.tuning,
                         "source": getattr(trainer.threads, "source", "tuned"),
                         "switches": getattr(trainer.threads, "switches", []),
                         "explorations": getattr(trainer.threads, "explorations", 0)}

    if args.vectors_out and hasattr(exp.model, "word_vectors"):
        out = Path(args.vectors_out)
        np.save(out.with_suffix(".npy"), exp.model.word_vectors())
        out.with_suffix(".txt").write_text("\n".join(exp.data.vocab.words) + "\n", encoding="utf-8")
        result["vectors"] = str(out.with_suffix(".npy"))

    train_bs = cfg["data"]["batch_size"]
    for phase, bs, per_s in (("train", train_bs, result["train_per_s"]), ("eval", eval_bs, result["eval_per_s"])):
        products = products_for(args.workload, exp, phase == "train", bs)
        if products is None or per_s is None or args.epochs:
            continue
        bound = gemm_bound.measure(products, args.gemm_seconds)
        items_per_batch = bs * (cfg["data"]["bptt"] if args.workload.startswith("lm_") else 1)
        bound["bound_per_s"] = items_per_batch / bound["seconds_per_batch"]
        bound["fraction"] = per_s / bound["bound_per_s"]
        result[f"{phase}_gemm"] = bound
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
