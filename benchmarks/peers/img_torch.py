"""PyTorch CPU peer: SimpleConvNet on Fashion-MNIST, the network nnctl's `cnn` builds by default.

conv 30@5x5 -> ReLU -> maxpool 2 -> affine 100 -> ReLU -> affine 10; Adam 1e-3, batch 100,
whole data set in one tensor, batches from a per-epoch permutation (no DataLoader), as
/work/shared/bench/img_torch.py. Prints "RESULT {json}" with train and eval images/s.
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Window, emit  # noqa: E402


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
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    model = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                          nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    win, done = Window(args.warmup, args.seconds), False
    while not done:
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr) - args.batch + 1, args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            loss.item()
            if win.tick(args.batch):
                done = True
                break

    model.eval()
    ewin, done = Window(2, args.eval_seconds), False
    with torch.no_grad():
        while not done:
            for i in range(0, len(xte), args.eval_batch):
                (model(xte[i:i + args.eval_batch]).argmax(1) == yte[i:i + args.eval_batch]).sum().item()
                if ewin.tick(len(yte[i:i + args.eval_batch])):
                    done = True
                    break
    emit({"peer": f"torch {torch.__version__}", "threads": torch.get_num_threads(),
          "train_per_s": win.rate, "train_items": win.items, "train_s": win.elapsed,
          "eval_per_s": ewin.rate, "eval_items": ewin.items, "eval_s": ewin.elapsed})


if __name__ == "__main__":
    main()
