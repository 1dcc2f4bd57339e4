"""PyTorch peer: SimpleConvNet on Fashion-MNIST, the network nnctl's `cnn` builds by default.

conv 30@5x5 -> ReLU -> maxpool 2 -> affine 100 -> ReLU -> affine 10; Adam 1e-3, batch 100,
whole data set in one tensor, batches from a per-epoch permutation (no DataLoader), as
/work/shared/bench/img_torch.py. Times one training and one evaluation window, or with
--turns the slices benchmarks/run.py asks for on stdin, alternating with nnctl
(../turns.py). Prints "RESULT {json}" with train and eval images/s. On the CPU by default;
`--device cuda` runs it on the GPU (benchmarks/gpu_check.py), data set and model there.
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import turns  # noqa: E402
from common import emit, torch_phases  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, prefix):
    x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    return torch.from_numpy((x.astype(np.float32) / 255.0)[:, None]), torch.from_numpy(y.astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="folder with the Fashion-MNIST idx .gz files")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--eval-batch", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--eval-seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--turns", action="store_true", help="time the slices benchmarks/run.py asks for on stdin")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xtr, ytr = (t.to(args.device) for t in load(args.data, "train"))
    xte, yte = (t.to(args.device) for t in load(args.data, "t10k"))
    model = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                          nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10)).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def endless_batches(n, size, shuffle):
        while True:
            order = torch.randperm(n, device=args.device) if shuffle else torch.arange(n, device=args.device)
            for i in range(0, n - size + 1 if shuffle else n, size):
                yield order[i:i + size]

    train_batches = endless_batches(len(xtr), args.batch, shuffle=True)
    eval_batches = endless_batches(len(xte), args.eval_batch, shuffle=False)

    def train_step():
        idx = next(train_batches)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
        loss.item()
        return len(idx)

    def eval_step():
        idx = next(eval_batches)
        with torch.no_grad():
            (model(xte[idx]).argmax(1) == yte[idx]).sum().item()
        return len(idx)

    phases = torch_phases(model, train_step, eval_step, args.warmup)
    totals = turns.play(phases, args.turns,
                        {"train": args.seconds, "eval": args.eval_seconds})
    emit({"peer": f"torch {torch.__version__}", "threads": torch.get_num_threads(), "device": args.device,
          **turns.rates(totals)})


if __name__ == "__main__":
    main()
