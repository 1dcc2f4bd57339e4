"""PyTorch peer: the same word-level LM as nnctl's lstm_lm, on the same PTB windows.

embedding -> dropout -> nn.LSTM, nn.GRU or nn.RNN (tanh) (--cell; layers, inter-layer
dropout) -> dropout -> linear decoder
(tied to the embedding if asked); truncated BPTT with the state carried (detached), SGD,
gradient-norm clipping; float32. After the shared /work/shared/bench/lm_torch.py, cut
down to timed slices: one training and one evaluation window, or with --turns the
slices benchmarks/run.py asks for on stdin, alternating with nnctl (../turns.py).
Prints "RESULT {json}" with train and eval tokens/s. On the CPU by default; `--device cuda`
runs it on the GPU (benchmarks/gpu_check.py), token ids and model there.
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import turns  # noqa: E402
from common import add_lm_arguments, emit, read_ptb_ids, torch_phases  # noqa: E402


def windows(ids, batch_size, bptt):
    """Time-major (T, N) windows over batch_size parallel streams, forever (epoch after epoch)."""
    steps = ids.numel() // batch_size
    streams = ids[: steps * batch_size].view(batch_size, steps).t().contiguous()
    while True:
        for start in range(0, steps - 1, bptt):
            n = min(bptt, steps - 1 - start)
            yield streams[start:start + n], streams[start + 1:start + 1 + n]


CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class WordLSTM(nn.Module):
    def __init__(self, vocab_size, emb, hidden, layers, dropout, tied, cell="lstm"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb)
        self.drop = nn.Dropout(dropout)
        self.lstm = CELLS[cell](emb, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0)
        self.proj = nn.Linear(hidden, vocab_size)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.zeros_(self.proj.bias)
        if tied:
            self.proj.weight = self.embed.weight
        else:
            nn.init.uniform_(self.proj.weight, -0.1, 0.1)

    def forward(self, x, state):
        h, state = self.lstm(self.drop(self.embed(x)), state)
        return self.proj(self.drop(h)).reshape(-1, self.proj.out_features), state


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    add_lm_arguments(ap)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    vocab, id_lists = read_ptb_ids(args.data)
    splits = {name: torch.tensor(ids, dtype=torch.long, device=args.device) for name, ids in id_lists.items()}
    model = WordLSTM(len(vocab), args.emb, args.hidden, args.layers, args.dropout, args.tied,
                     args.cell).to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    params = list(model.parameters())

    train_batches = windows(splits["train"], args.batch_size, args.bptt)
    eval_batches = windows(splits["valid"], args.eval_batch_size, args.bptt)
    carried = {"train": None, "eval": None}  # the LSTM state, carried from window to window

    def train_step():
        x, y = next(train_batches)
        state = carried["train"]
        if isinstance(state, tuple):  # the LSTM's (h, c)
            state = tuple(s.detach() for s in state)
        elif state is not None:  # the GRU's or RNN's h
            state = state.detach()
        opt.zero_grad(set_to_none=True)
        logits, carried["train"] = model(x, state)
        loss = F.cross_entropy(logits, y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        loss.item()
        return y.numel()

    def eval_step():
        x, y = next(eval_batches)
        with torch.no_grad():
            logits, carried["eval"] = model(x, carried["eval"])
            F.cross_entropy(logits, y.reshape(-1), reduction="sum").item()
        return y.numel()

    phases = torch_phases(model, train_step, eval_step, args.warmup)
    totals = turns.play(phases, args.turns,
                        {"train": args.seconds, "eval": args.eval_seconds})
    emit({"peer": f"torch {torch.__version__}", "threads": torch.get_num_threads(), "device": args.device,
          **turns.rates(totals)})


if __name__ == "__main__":
    main()
