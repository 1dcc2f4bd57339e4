"""Shared bits of the peer scripts (standard library only: lm_torch.py and img_torch.py run
with the peers' interpreter, book_lm.py with nnctl's)."""

import json
import os
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def emit(result: dict) -> None:
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print("RESULT " + json.dumps(result), flush=True)


def read_ptb_ids(data_dir):
    """(vocab {word: id}, {"train": [ids], "valid": [ids]}), one <eos> after each line."""
    vocab, splits = {}, {}
    for name in ("train", "valid"):
        ids = []
        with open(os.path.join(data_dir, f"ptb.{name}.txt"), encoding="utf-8") as fh:
            for line in fh:
                for tok in line.split() + ["<eos>"]:
                    ids.append(vocab.setdefault(tok, len(vocab)))
        splits[name] = ids
    return vocab, splits


def add_lm_arguments(ap):
    """The LM workload's options, the same for every LM peer (run.py passes them all)."""
    ap.add_argument("--data", required=True, help="folder with ptb.{train,valid}.txt")
    ap.add_argument("--emb", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--eval-batch-size", type=int, default=10)
    ap.add_argument("--lr", type=float, default=20.0)
    ap.add_argument("--clip", type=float, default=0.25)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--eval-seconds", type=float, default=10.0)
    ap.add_argument("--turns", action="store_true", help="time the slices benchmarks/run.py asks for on stdin")


def torch_phases(model, train_step, eval_step, warmup: int) -> dict:
    """Warm up untimed (`warmup` training steps, then 2 evaluation steps), as nnctl's worker
    does; return turns.play's phases, each putting the module in its mode for the slice."""
    import turns  # benchmarks/, on sys.path as the peer scripts set it

    def train_slice(seconds):
        model.train()
        return turns.timed_loop(train_step, seconds)

    def eval_slice(seconds):
        model.eval()
        try:
            return turns.timed_loop(eval_step, seconds)
        finally:
            model.train()

    for _ in range(warmup):
        train_step()
    model.eval()
    for _ in range(2):
        eval_step()
    model.train()
    return {"train": train_slice, "eval": eval_slice}
