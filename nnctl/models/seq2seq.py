"""Encoder-decoder over characters (Sutskever et al. 2014), with three switches.

    source ids (N, S) -> Embedding -> encoder cell -> hs (N, S, H), final state
    target ids (N, T) -> Embedding -> decoder cell, started from the encoder's final state
                      -> [context | h_dec | h_enc] -> W, b -> softmax over the characters

* reverse_input: the encoder reads the source backwards, so the first characters of the
  answer sit close to the source characters they depend on (Sutskever et al. 2014).
* peeky: the encoder's final h is also concatenated to every decoder input and to every
  output projection's input (Cho et al. 2014; "PeekyDecoder" in Deep Learning from Scratch 2).
* attention: each decoder state h_dec attends over hs (dot product, padding masked,
  nnctl/layers/attention.py) and the context vector joins the output's input
  (Luong et al. 2015).

Training is teacher forcing: the decoder reads <s> and the answer, and is scored on the
answer and <eos> (padding scored nowhere). Evaluation decodes greedily, one output step
at a time for the whole batch at once, and counts an answer right when every character
up to and including <eos> is. The loss stays per character.

The decoder's start state is the encoder's end state, so its gradient (the decoder's
`dstate`) flows back into the encoder through `backward(dy, dstate)`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnctl.backend import get_xp
from nnctl.data.seq2seq import EOS_ID, PAD_ID, START_ID
from nnctl.layers.attention import DotAttention
from nnctl.layers.dense import Dropout
from nnctl.layers.embedding import Embedding, OutputProjection
from nnctl.layers.gru import GRU
from nnctl.layers.losses import SoftmaxCrossEntropy
from nnctl.layers.recurrent import LSTM
from nnctl.layers.rnn import RNN
from nnctl.models.base import MODELS, LossOutput, Model

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def final_h(state):
    """The last hidden state h_T (N, H) of a cell's state: (h, c) for an LSTM, h otherwise."""
    return state[0] if isinstance(state, tuple) else state


def add_to_h(state, dh):
    """A state-shaped gradient with dh added to its h part."""
    return (state[0] + dh, state[1]) if isinstance(state, tuple) else state + dh


@MODELS.register("seq2seq")
class Seq2Seq(Model):
    """Character seq2seq scored by exact match. V, E, H = vocab_size, embed_dim, hidden_dim.

    cell: lstm, gru or rnn, for the encoder and the decoder alike.
    init_scale: embeddings and the output matrix start uniform in +-init_scale; the
    recurrent weights uniform in +-1/sqrt(H).
    dropout: on the two embeddings' outputs and on the output projection's input (the
    book uses none; 0 is the default).
    source_length, target_length: the widths the data set pads to (target_length counts
    <eos>); the longest prompt accepted and the most characters decoded.
    """

    metric = "accuracy"  # exact match: whole answers right, over examples
    metric_meanings = {"accuracy": "exact match: whole answers right, <eos> included",
                       "token_accuracy": "characters right",
                       "loss": "mean cross-entropy per character, in nats"}
    single_process = True  # LossOutput.examples / correct_tokens are not summed over MPI ranks

    def __init__(self, embed_dim: int = 16, hidden_dim: int = 128, cell: Literal["lstm", "gru", "rnn"] = "lstm",
                 reverse_input: bool = False, peeky: bool = False, attention: bool = False,
                 init_scale: float = 0.1, dropout: float = 0.0, *, vocab_size: int, source_length: int, target_length: int,
                 rng: np.random.Generator, dtype=np.float32):
        for name, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if vocab_size <= EOS_ID or source_length <= 0 or target_length <= 0:
            raise ValueError(f"a seq2seq data set gives vocab_size > 3 and positive lengths, got {vocab_size}, "
                             f"{source_length}, {target_length}")
        E, H = embed_dim, hidden_dim
        self.vocab_size, self.source_length, self.target_length = vocab_size, source_length, target_length
        self.cell, self.reverse_input, self.peeky, self.attention = cell, reverse_input, peeky, attention
        self.encoder_embedding = Embedding(vocab_size, E, rng=rng, init_scale=init_scale, dtype=dtype)
        self.encoder = CELLS[cell](E, H, rng=rng, dtype=dtype)
        self.decoder_embedding = Embedding(vocab_size, E, rng=rng, init_scale=init_scale, dtype=dtype)
        self.decoder = CELLS[cell](E + H if peeky else E, H, rng=rng, dtype=dtype)
        self.attend = DotAttention() if attention else None
        self.out_dim = H * (1 + attention + peeky)  # [context | h_dec | h_enc]
        self.output = OutputProjection(self.out_dim, vocab_size, rng=rng, init_scale=init_scale, dtype=dtype)
        self.criterion = SoftmaxCrossEntropy(ignore_index=PAD_ID)
        # after the encoder's embedding, the decoder's embedding, and before the output projection
        self.dropouts = [Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)), dtype=dtype)
                         for _ in range(3)]

    # -- the pieces ------------------------------------------------------------------
    def encode(self, source):
        """source (N, S) -> hs (N, S, H), final state, mask (N, S) (False on padding), in reading order."""
        ids = source[:, ::-1] if self.reverse_input else source
        hs, state = self.encoder(self.dropouts[0](self.encoder_embedding(ids)))
        return hs, state, ids != PAD_ID

    def decode(self, hs, mask, h_enc, inputs, state):
        """Decoder ids (N, T) from `state` -> output features (N, T, F) and the decoder's new state."""
        xp = get_xp(hs)
        x = self.dropouts[1](self.decoder_embedding(inputs))
        if self.peeky:
            x = self.with_peek(x, h_enc)
        hd, state = self.decoder(x, state)
        feats = [self.attend(hs, hd, mask)] if self.attention else []
        feats.append(hd)
        if self.peeky:
            feats.append(xp.broadcast_to(h_enc[:, None, :], hd.shape))
        return self.dropouts[2](xp.concatenate(feats, axis=-1) if len(feats) > 1 else hd), state

    @staticmethod
    def with_peek(x, h_enc):
        """x (N, T, D) with h_enc (N, H) appended at every step -> (N, T, D + H)."""
        xp = get_xp(x)
        N, T, _ = x.shape
        return xp.concatenate([x, xp.broadcast_to(h_enc[:, None, :], (N, T, h_enc.shape[-1]))], axis=-1)

    # -- training --------------------------------------------------------------------
    def loss(self, batch, state=None):
        source, target = batch
        inputs, labels = target[:, :-1], target[:, 1:]
        hs, enc_state, mask = self.encode(source)
        self.hs_shape = hs.shape
        feats, _ = self.decode(hs, mask, final_h(enc_state), inputs, enc_state)
        self.criterion.forward(self.output(feats), labels)
        if self.training:  # teacher-forced argmax: no extra pass (evaluation decodes greedily)
            guess = self.criterion.logp.argmax(axis=1).reshape(labels.shape)
        else:
            guess, _ = self.greedy(hs, enc_state, mask, labels.shape[1])
        scored = labels != PAD_ID
        hits = (guess == labels) & scored
        # Both counts packed in one integer, exact * (M + 1) + right with right <= M, so that a
        # device hands back one scalar for them, not two (nor an array).
        M = labels.size
        exact, right = divmod(int((hits | ~scored).all(axis=1).sum() * (M + 1) + hits.sum()), M + 1)
        out = LossOutput(self.criterion.loss_sum, self.criterion.count, int(exact),
                         examples=int(labels.shape[0]), correct_tokens=int(right))
        return out, None

    def backward(self) -> None:
        """Gradient of the mean character loss of the last `loss` call, added into every Param."""
        H, E = self.decoder.hidden_dim, self.decoder_embedding.W.shape[1]
        dfeats = self.dropouts[2].backward(self.output.backward(self.criterion.backward(1.0)))
        dhd = dfeats[..., H: 2 * H] if self.attention else dfeats[..., :H]
        dhs = None
        if self.attention:
            dhs, dhd_att = self.attend.backward(dfeats[..., :H])
            dhd = dhd + dhd_att
        dx = self.decoder.backward(dhd)
        dstate = self.decoder.dstate  # the decoder's start state is the encoder's end state
        if self.peeky:
            dh_enc = dfeats[..., -H:].sum(axis=1) + dx[..., E:].sum(axis=1)
            dstate = add_to_h(dstate, dh_enc)
            dx = dx[..., :E]
        self.decoder_embedding.backward(self.dropouts[1].backward(dx))
        if dhs is None:
            dhs = get_xp(dx).zeros(self.hs_shape, dtype=dx.dtype)  # only the final state was used
        self.encoder_embedding.backward(self.dropouts[0].backward(self.encoder.backward(dhs, dstate)))

    # -- evaluation and generation -------------------------------------------------------
    def greedy(self, hs, state, mask, steps: int):
        """Greedy decoding for the whole batch: ids (N, steps) and attention (N, steps, S) or None.

        One decoder step at a time (each reads the character just chosen); after <eos> a
        row's further characters are <pad>.
        """
        xp = get_xp(hs)
        N = hs.shape[0]
        h_enc = final_h(state)
        token = xp.full((N, 1), START_ID, dtype=np.int64)
        out = xp.full((N, steps), PAD_ID, dtype=np.int64)
        weights = xp.zeros((N, steps, hs.shape[1]), dtype=hs.dtype) if self.attention else None
        done = xp.zeros(N, dtype=bool)
        for t in range(steps):
            feats, state = self.decode(hs, mask, h_enc, token, state)
            token = self.output(feats).argmax(axis=-1)  # (N, 1)
            out[:, t] = xp.where(done, PAD_ID, token[:, 0])
            if self.attention:
                weights[:, t] = self.attend.weights[:, 0]
            done |= token[:, 0] == EOS_ID
            if bool(done.all()):
                break
        return out, weights

    def translate(self, source):
        """source ids (N, S) -> answer ids (N, target_length), attention (N, target_length, S) or None.

        The attention's source axis is in the source's own order, reversed input or not.
        """
        was_training = self.training
        self.eval()
        try:
            with self.weights_fixed():  # the decoder runs one step a forward: its Wh copy is kept
                hs, state, mask = self.encode(source)
                ids, weights = self.greedy(hs, state, mask, self.target_length)
        finally:
            self.train(was_training)
        if weights is not None and self.reverse_input:
            weights = weights[..., ::-1]
        return ids, weights

    @classmethod
    def gradcheck_case(cls, config, rng):
        """The configured switches and cell at width 4 over 8 characters; 3 examples, sources
        and targets of different lengths (padding masked and unscored)."""
        small = {**config, "embed_dim": 3, "hidden_dim": 4, "init_scale": 0.5}
        V, S, T = 8, 5, 3
        source = rng.integers(EOS_ID + 1, V, size=(3, S))
        source[0, 3:] = PAD_ID
        source[1, 4:] = PAD_ID
        target = np.full((3, T + 1), PAD_ID, dtype=np.int64)
        target[:, 0] = START_ID
        target[:, 1:3] = rng.integers(EOS_ID + 1, V, size=(3, 2))
        target[0, 2], target[1, 3], target[2, 3] = EOS_ID, EOS_ID, EOS_ID
        return small, {"vocab_size": V, "source_length": S, "target_length": T}, (source, target)
