"""PyTorch peer: the same character seq2seq as nnctl's `seq2seq` model, on batches of the same shape.

Encoder: embedding -> nn.LSTM (or GRU / RNN, --cell) over the source; decoder: embedding
(+ the encoder's final h at every step with --peeky) -> the same cell, started from the
encoder's final state; with --attention, dot-product scores against every encoder state
(padding masked), softmax, context; [context | h_dec | h_enc] -> linear -> cross-entropy
that ignores <pad> (id 0); Adam, gradient-norm clipping; float32, teacher forcing.
The ids are random with the data set's shapes and padding (speed does not depend on
which characters they are). Evaluation is greedy decoding, one step at a time for the
whole batch, as nnctl's. Prints "RESULT {json}" with train and eval examples/s; with
--turns it answers the slices benchmarks/seq2seq_speed.py asks for on stdin (../turns.py).
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
from common import emit, torch_phases  # noqa: E402

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
PAD, START = 0, 1


class Seq2Seq(nn.Module):
    def __init__(self, vocab, emb, hidden, cell, peeky, attention):
        super().__init__()
        self.peeky, self.attention = peeky, attention
        self.enc_embed, self.dec_embed = nn.Embedding(vocab, emb), nn.Embedding(vocab, emb)
        self.encoder = CELLS[cell](emb, hidden, batch_first=True)
        self.decoder = CELLS[cell](emb + hidden * peeky, hidden, batch_first=True)
        self.out = nn.Linear(hidden * (1 + peeky + attention), vocab)

    def final_h(self, state):
        return (state[0] if isinstance(state, tuple) else state)[-1]  # (N, H)

    def decode(self, hs, mask, h_enc, inputs, state):
        x = self.dec_embed(inputs)
        if self.peeky:
            x = torch.cat([x, h_enc[:, None].expand(-1, x.shape[1], -1)], -1)
        hd, state = self.decoder(x, state)
        feats = []
        if self.attention:
            scores = (hd @ hs.transpose(1, 2)).masked_fill(~mask[:, None, :], float("-inf"))
            feats.append(torch.softmax(scores, -1) @ hs)
        feats.append(hd)
        if self.peeky:
            feats.append(h_enc[:, None].expand_as(hd))
        return self.out(torch.cat(feats, -1)), state

    def forward(self, source, target):
        hs, state = self.encoder(self.enc_embed(source))
        logits, _ = self.decode(hs, source != PAD, self.final_h(state), target[:, :-1], state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target[:, 1:].reshape(-1), ignore_index=PAD)

    @torch.no_grad()
    def greedy(self, source, steps):
        hs, state = self.encoder(self.enc_embed(source))
        mask, h_enc = source != PAD, self.final_h(state)
        token = torch.full((source.shape[0], 1), START, dtype=torch.long)
        out = []
        for _ in range(steps):
            logits, state = self.decode(hs, mask, h_enc, token, state)
            token = logits.argmax(-1)
            out.append(token)
        return torch.cat(out, 1)


def batches(vocab, n, source_len, target_len, count, seed):
    """`count` (source, target) batches of random ids shaped like the data set's, each row padded at a random length."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        source = torch.randint(3, vocab, (n, source_len), generator=g)
        keep = torch.arange(source_len)[None] < torch.randint(1, source_len + 1, (n, 1), generator=g)
        source = source.masked_fill(~keep, PAD)
        target = torch.randint(3, vocab, (n, target_len + 1), generator=g)
        target[:, 0] = START
        ends = torch.randint(2, target_len + 1, (n, 1), generator=g)
        target = target.masked_fill(torch.arange(target_len + 1)[None] > ends, PAD)
        out.append((source, target))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--source-length", type=int, required=True)
    ap.add_argument("--target-length", type=int, required=True, help="answer + <eos>")
    ap.add_argument("--emb", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--cell", choices=list(CELLS), default="lstm")
    ap.add_argument("--peeky", action="store_true")
    ap.add_argument("--reverse-input", action="store_true", help="no effect on speed; accepted for the same options")
    ap.add_argument("--attention", action="store_true")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--eval-batch-size", type=int, default=1000)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--eval-seconds", type=float, default=5.0)
    ap.add_argument("--turns", action="store_true", help="take turns with the suite over stdin/stdout")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Seq2Seq(args.vocab, args.emb, args.hidden, args.cell, args.peeky, args.attention)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())
    train = batches(args.vocab, args.batch_size, args.source_length, args.target_length, 20, 1)
    evals = batches(args.vocab, args.eval_batch_size, args.source_length, args.target_length, 2, 2)
    k = {"train": 0, "eval": 0}

    def train_step():
        source, target = train[k["train"] % len(train)]
        k["train"] += 1
        opt.zero_grad(set_to_none=True)
        loss = model(source, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        loss.item()
        return source.shape[0]

    def eval_step():
        source, target = evals[k["eval"] % len(evals)]
        k["eval"] += 1
        with torch.no_grad():
            model(source, target).item()  # the loss, teacher-forced, as nnctl's evaluation reports it too
        model.greedy(source, args.target_length)
        return source.shape[0]

    phases = torch_phases(model, train_step, eval_step, args.warmup)
    totals = turns.play(phases, args.turns, {"train": args.seconds, "eval": args.eval_seconds})
    emit({"peer": f"torch {torch.__version__}", "threads": torch.get_num_threads(), **turns.rates(totals)})


if __name__ == "__main__":
    main()
