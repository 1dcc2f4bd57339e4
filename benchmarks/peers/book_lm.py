"""The book's NumPy LSTM language model, re-created, timed on the same work as nnctl.

The issue's "3x the book's NumPy code" figures (5,393 / 2,553 / 556 tokens/s) were measured
on another machine (/work/shared/bench/README.md); this script measures the same design
here, so the ratio can be taken in one run. It is a re-creation, written for this suite,
of the published design of Saito, *Deep Learning from Scratch 2*, chapter 6 (common/
time_layers.py, ch06/rnnlm.py and better_rnnlm.py, common/trainer.py), not the book's
own files (they are not on this machine): float32 parameters; TimeEmbedding and TimeLSTM
looping over time steps with one layer object per step; the LSTM's input and recurrent
products per step; the embedding gradient zeroed and scattered per step with np.add.at;
TimeAffine as one product; softmax with loss over all (N*T, V) logits; weights tied as
W.T with the duplicate gradient summed (remove_duplicate); clip_grads; SGD; batches
gathered element by element as RnnlmTrainer.get_batch does.

Run by benchmarks/run.py with nnctl's interpreter (the same NumPy as nnctl) and
--turns; alone it times one training and one evaluation window. Prints "RESULT {json}".
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import turns  # noqa: E402
from common import add_lm_arguments, emit, read_ptb_ids  # noqa: E402


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    x = np.exp(x)
    x /= x.sum(axis=1, keepdims=True)
    return x


class Embedding:
    def __init__(self, W):
        self.params, self.grads, self.idx = [W], [np.zeros_like(W)], None

    def forward(self, idx):
        self.idx = idx
        return self.params[0][idx]

    def backward(self, dout):
        dW, = self.grads
        dW[...] = 0
        np.add.at(dW, self.idx, dout)


class TimeEmbedding:
    def __init__(self, W):
        self.params, self.grads, self.layers, self.W = [W], [np.zeros_like(W)], None, W

    def forward(self, xs):
        N, T = xs.shape
        out = np.empty((N, T, self.W.shape[1]), dtype="f")
        self.layers = []
        for t in range(T):
            layer = Embedding(self.W)
            out[:, t, :] = layer.forward(xs[:, t])
            self.layers.append(layer)
        return out

    def backward(self, dout):
        grad = 0
        for t in range(dout.shape[1]):
            layer = self.layers[t]
            layer.backward(dout[:, t, :])
            grad += layer.grads[0]
        self.grads[0][...] = grad


class LSTM:
    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev, c_prev):
        Wx, Wh, b = self.params
        H = h_prev.shape[1]
        A = np.dot(x, Wx) + np.dot(h_prev, Wh) + b
        f, g, i, o = sigmoid(A[:, :H]), np.tanh(A[:, H:2 * H]), sigmoid(A[:, 2 * H:3 * H]), sigmoid(A[:, 3 * H:])
        c_next = f * c_prev + g * i
        h_next = o * np.tanh(c_next)
        self.cache = (x, h_prev, c_prev, i, f, g, o, c_next)
        return h_next, c_next

    def backward(self, dh_next, dc_next):
        Wx, Wh, b = self.params
        x, h_prev, c_prev, i, f, g, o, c_next = self.cache
        tanh_c_next = np.tanh(c_next)
        ds = dc_next + (dh_next * o) * (1 - tanh_c_next ** 2)
        dc_prev = ds * f
        di, df, do, dg = ds * g, ds * c_prev, dh_next * tanh_c_next, ds * i
        di *= i * (1 - i)
        df *= f * (1 - f)
        do *= o * (1 - o)
        dg *= (1 - g ** 2)
        dA = np.hstack((df, dg, di, do))
        self.grads[0][...] = np.dot(x.T, dA)
        self.grads[1][...] = np.dot(h_prev.T, dA)
        self.grads[2][...] = dA.sum(axis=0)
        return np.dot(dA, Wx.T), np.dot(dA, Wh.T), dc_prev


class TimeLSTM:
    def __init__(self, Wx, Wh, b, stateful=True):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers, self.h, self.c, self.stateful = None, None, None, stateful

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, D = xs.shape
        H = Wh.shape[0]
        self.layers = []
        hs = np.empty((N, T, H), dtype="f")
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype="f")
        if not self.stateful or self.c is None:
            self.c = np.zeros((N, H), dtype="f")
        for t in range(T):
            layer = LSTM(*self.params)
            self.h, self.c = layer.forward(xs[:, t, :], self.h, self.c)
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        Wx = self.params[0]
        N, T, H = dhs.shape
        dxs = np.empty((N, T, Wx.shape[0]), dtype="f")
        dh, dc = 0, 0
        grads = [0, 0, 0]
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh, dc = layer.backward(dhs[:, t, :] + dh, dc)
            dxs[:, t, :] = dx
            for k, grad in enumerate(layer.grads):
                grads[k] += grad
        for k, grad in enumerate(grads):
            self.grads[k][...] = grad
        return dxs

    def reset_state(self):
        self.h, self.c = None, None


class TimeAffine:
    def __init__(self, W, b):
        self.params, self.grads, self.x = [W, b], [np.zeros_like(W), np.zeros_like(b)], None

    def forward(self, x):
        N, T, D = x.shape
        W, b = self.params
        self.x = x
        return (np.dot(x.reshape(N * T, -1), W) + b).reshape(N, T, -1)

    def backward(self, dout):
        x = self.x
        N, T, D = x.shape
        W, b = self.params
        dout = dout.reshape(N * T, -1)
        rx = x.reshape(N * T, -1)
        self.grads[0][...] = np.dot(rx.T, dout)
        self.grads[1][...] = np.sum(dout, axis=0)
        return np.dot(dout, W.T).reshape(*x.shape)


class TimeDropout:
    def __init__(self, ratio):
        self.params, self.grads, self.ratio, self.mask, self.train_flg = [], [], ratio, None, True

    def forward(self, xs):
        if self.train_flg:
            flg = np.random.rand(*xs.shape) > self.ratio
            self.mask = flg.astype(np.float32) * (1.0 / (1.0 - self.ratio))
            return xs * self.mask
        return xs

    def backward(self, dout):
        return dout * self.mask


class TimeSoftmaxWithLoss:
    def __init__(self):
        self.params, self.grads, self.cache = [], [], None

    def forward(self, xs, ts):
        N, T, V = xs.shape
        xs, ts = xs.reshape(N * T, V), ts.reshape(N * T)
        ys = softmax(xs)
        ls = np.log(ys[np.arange(N * T), ts])
        self.cache = (ts, ys, (N, T, V))
        return -np.sum(ls) / (N * T)

    def backward(self, dout=1):
        ts, ys, (N, T, V) = self.cache
        dx = ys
        dx[np.arange(N * T), ts] -= 1
        dx *= dout
        dx /= N * T
        return dx.reshape((N, T, V))


class BookLM:
    """ch06 Rnnlm (one layer, untied) or BetterRnnlm (stacked, dropout, tied as W.T)."""

    def __init__(self, V, D, H, layers, dropout, tied):
        rn = np.random.randn
        embed_W = (rn(V, D) / 100).astype("f")
        self.layers = [TimeEmbedding(embed_W)]
        self.lstms = []
        in_dim = D
        for _ in range(layers):
            if dropout:
                self.layers.append(TimeDropout(dropout))
            lstm = TimeLSTM((rn(in_dim, 4 * H) / np.sqrt(in_dim)).astype("f"),
                            (rn(H, 4 * H) / np.sqrt(H)).astype("f"), np.zeros(4 * H).astype("f"))
            self.layers.append(lstm)
            self.lstms.append(lstm)
            in_dim = H
        if dropout:
            self.layers.append(TimeDropout(dropout))
        affine_W = embed_W.T if tied else (rn(H, V) / np.sqrt(H)).astype("f")
        self.layers.append(TimeAffine(affine_W, np.zeros(V).astype("f")))
        self.loss_layer = TimeSoftmaxWithLoss()
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]

    def forward(self, xs, ts, train_flg=True):
        for layer in self.layers:
            if isinstance(layer, TimeDropout):
                layer.train_flg = train_flg
            xs = layer.forward(xs)
        return self.loss_layer.forward(xs, ts)

    def backward(self):
        dout = self.loss_layer.backward()
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def reset_state(self):
        for lstm in self.lstms:
            lstm.reset_state()


def remove_duplicate(params, grads):
    """The book's helper: shared weights (the same array, or one the other's transpose) are
    listed once, their gradients summed. Copies the lists, compares every pair each step."""
    params, grads = params[:], grads[:]
    while True:
        find_flg = False
        L = len(params)
        for i in range(0, L - 1):
            for j in range(i + 1, L):
                if params[i] is params[j]:
                    grads[i] += grads[j]
                    find_flg = True
                    params.pop(j)
                    grads.pop(j)
                elif (params[i].ndim == 2 and params[j].ndim == 2 and params[i].T.shape == params[j].shape
                      and np.all(params[i].T == params[j])):
                    grads[i] += grads[j].T
                    find_flg = True
                    params.pop(j)
                    grads.pop(j)
                if find_flg:
                    break
            if find_flg:
                break
        if not find_flg:
            break
    return params, grads


def clip_grads(grads, max_norm):
    total_norm = np.sqrt(sum(np.sum(grad ** 2) for grad in grads))
    rate = max_norm / (total_norm + 1e-6)
    if rate < 1:
        for grad in grads:
            grad *= rate


class Batches:
    """RnnlmTrainer.get_batch: batch_size streams `jump` apart, gathered element by element."""

    def __init__(self, ids, batch_size, time_size):
        self.ids, self.batch_size, self.time_size = ids, batch_size, time_size
        self.offsets = [i * ((len(ids) - 1) // batch_size) for i in range(batch_size)]
        self.time_idx = 0

    def next(self):
        xs, ts = self.ids[:-1], self.ids[1:]
        batch_x = np.empty((self.batch_size, self.time_size), dtype="i")
        batch_t = np.empty((self.batch_size, self.time_size), dtype="i")
        for t in range(self.time_size):
            for i, offset in enumerate(self.offsets):
                batch_x[i, t] = xs[(offset + self.time_idx) % len(xs)]
                batch_t[i, t] = ts[(offset + self.time_idx) % len(ts)]
            self.time_idx += 1
        return batch_x, batch_t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_lm_arguments(ap)
    args = ap.parse_args()

    np.random.seed(1)
    vocab, id_lists = read_ptb_ids(args.data)
    splits = {name: np.array(ids) for name, ids in id_lists.items()}
    model = BookLM(len(vocab), args.emb, args.hidden, args.layers, args.dropout, args.tied)
    train_batches = Batches(splits["train"], args.batch_size, args.bptt)
    eval_batches = Batches(splits["valid"], args.eval_batch_size, args.bptt)

    def train_step():
        xs, ts = train_batches.next()
        model.forward(xs, ts)
        model.backward()
        params, grads = remove_duplicate(model.params, model.grads)
        if args.clip:
            clip_grads(grads, args.clip)
        for param, grad in zip(params, grads):  # SGD.update
            param -= args.lr * grad
        return ts.size

    def eval_step():
        xs, ts = eval_batches.next()
        model.forward(xs, ts, train_flg=False)
        return ts.size

    def train_slice(seconds):
        return turns.timed_loop(train_step, seconds)

    def eval_slice(seconds):
        # the book's eval_perplexity: its own batch size, a fresh state, no dropout
        model.reset_state()
        try:
            return turns.timed_loop(eval_step, seconds)
        finally:
            model.reset_state()

    for _ in range(args.warmup):
        train_step()
    totals = turns.play({"train": train_slice, "eval": eval_slice}, args.turns,
                        {"train": args.seconds, "eval": args.eval_seconds})
    emit({"peer": "book (re-created)", "numpy": np.__version__, **turns.rates(totals)})


if __name__ == "__main__":
    main()
