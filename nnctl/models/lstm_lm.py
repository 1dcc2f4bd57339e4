"""Word-level recurrent language model (Zaremba, Sutskever & Vinyals 2014), optionally with tied weights.

    ids (N, T) -> Embedding -> Dropout -> [cell -> Dropout] x num_layers -> W.T, b -> softmax over V

The cell is an LSTM by default; `cell: gru` or `cell: rnn` (Elman, tanh) puts the other
recurrent layers in its place with every other option unchanged, to compare the three.

Dropout sits only on the non-recurrent connections (between layers, never on h_{t-1} ->
h_t), as Zaremba et al. found necessary. With tie_weights the output layer's weight IS
the embedding matrix — one Param, whose gradient is the sum of both uses (Press & Wolf
2017; Inan et al. 2017) — which needs embed_dim == hidden_dim.

Regularisers (Merity et al. 2017, "AWD-LSTM"; nnctl/layers/regularisers.py), all off by
default, so a config without them trains exactly as before:

    dropout_input, dropout_between, dropout_output   the dropout rate on the embedding output,
                            between recurrent layers and on the top layer's output; each
                            defaults to `dropout`
    locked_dropout: true    those three become variational dropout (Gal & Ghahramani 2016):
                            one mask per sequence of a window, shared by its time steps
    embedding_dropout       whole words dropped from the embedding matrix for a batch, the
                            rest rescaled (units of the embedding OUTPUT: dropout_input)
    weight_drop             DropConnect on every layer's recurrent matrix Wh, one mask per window
    activation_reg          AR: alpha * mean(d^2) on the top layer's dropped output d
    temporal_activation_reg TAR: beta * mean((h_t - h_{t-1})^2) on its output h before dropout

AR and TAR are part of the objective in training: the loss a training step reports (and
differentiates) is the mean cross-entropy plus both penalties. In eval mode nothing is
dropped and nothing is added, so validation and test perplexities are plain.

The state carried between BPTT windows is a list with each layer's state ((h, c) for an
LSTM, h for a GRU or RNN); the Trainer passes
it back in and resets it to None at each epoch and before evaluation. There is no hidden
`stateful` flag: resetting the state is passing None, and cutting it from the graph at a
window boundary is automatic, since backward never propagates into the state passed in.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnctl.layers.decoder_loss import DecoderCrossEntropy
from nnctl.layers.dense import Dropout, check_rate
from nnctl.layers.embedding import Embedding
from nnctl.layers.gru import GRU
from nnctl.layers.recurrent import LSTM
from nnctl.layers.regularisers import ActivationPenalty, EmbeddingDropout, LockedDropout, WeightDrop
from nnctl.layers.rnn import RNN
from nnctl.models.base import MODELS, LossOutput, Model

State = list  # one state per layer: (h, c) for an LSTM, h for a GRU or RNN; each (N, H)
CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@MODELS.register("lstm_lm")
class LSTMLanguageModel(Model):
    """A recurrent LM scored by perplexity. V, E, H = vocab_size, embed_dim, hidden_dim.

    cell: lstm, gru or rnn (nnctl/layers/recurrent.py, gru.py, rnn.py).
    forget_bias: added to the LSTM forget gates' initial bias (1.0 in Jozefowicz et al.
    2015); 0 keeps PyTorch's initialisation, where the forget gates start half closed.
    init_scale: embeddings (and an untied output matrix) start uniform in +-init_scale;
    recurrent weights uniform in +-1/sqrt(H).
    sparse_embedding: keep the (untied) embedding's gradient as the rows a batch touched
    (a sparse Param), so zero_grad, the gradient norm, clipping and the optimizer visit
    those rows instead of the whole table: with plain SGD (no weight decay) the same
    update, computed faster; stateful optimizers update those rows lazily (see optim.py).
    The regularisers' keys are in the module docstring.
    """

    metric = "perplexity"

    def __init__(self, embed_dim: int = 650, hidden_dim: int = 650, num_layers: int = 2,
                 dropout: float = 0.5, tie_weights: bool = True, init_scale: float = 0.1,
                 sparse_embedding: bool = False, cell: Literal["lstm", "gru", "rnn"] = "lstm",
                 forget_bias: float = 0.0, dropout_input: float | None = None,
                 dropout_between: float | None = None, dropout_output: float | None = None,
                 locked_dropout: bool = False, embedding_dropout: float = 0.0, weight_drop: float = 0.0,
                 activation_reg: float = 0.0, temporal_activation_reg: float = 0.0, *,
                 vocab_size: int, rng: np.random.Generator, dtype=np.float32):
        self.check_options(embed_dim=embed_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout,
                           tie_weights=tie_weights, init_scale=init_scale, sparse_embedding=sparse_embedding,
                           cell=cell, forget_bias=forget_bias, dropout_input=dropout_input,
                           dropout_between=dropout_between, dropout_output=dropout_output,
                           embedding_dropout=embedding_dropout, weight_drop=weight_drop,
                           activation_reg=activation_reg, temporal_activation_reg=temporal_activation_reg)
        self.vocab_size = vocab_size
        self.tie_weights = tie_weights
        self.embedding = Embedding(vocab_size, embed_dim, rng=rng, init_scale=init_scale, dtype=dtype,
                                   sparse=sparse_embedding)
        self.cell = cell
        options = {"forget_bias": forget_bias} if cell == "lstm" else {}
        # The layers' attribute is named after the cell ("lstms", "grus", "rnns"), so the
        # parameter names say what they are ("grus.0.Wh") and checkpoints saved before
        # `cell` existed ("lstms.0.Wh") load unchanged.
        setattr(self, f"{cell}s", [CELLS[cell](embed_dim if layer == 0 else hidden_dim, hidden_dim, rng=rng,
                                               dtype=dtype, **options) for layer in range(num_layers)])
        # dropouts[0] after the embedding, dropouts[l + 1] after recurrent layer l
        rates = [dropout_input] + [dropout_between] * (num_layers - 1) + [dropout_output]
        kind = LockedDropout if locked_dropout else Dropout
        self.dropouts = [kind(dropout if rate is None else rate, rng=np.random.default_rng(rng.integers(2**63)),
                              dtype=dtype) for rate in rates]
        self.decoder = DecoderCrossEntropy(hidden_dim, vocab_size, rng=rng, init_scale=init_scale, dtype=dtype,
                                           weight=self.embedding.W if tie_weights else None)
        # The regularisers that draw masks get their generators last, and only when they are
        # on, so the weights above (and a config without them) are exactly as they were.
        self.embedding_dropout = (EmbeddingDropout(embedding_dropout, vocab_size,
                                                   rng=np.random.default_rng(rng.integers(2**63)))
                                  if embedding_dropout else None)
        self.weight_drops = ([WeightDrop(weight_drop, rng=np.random.default_rng(rng.integers(2**63)))
                              for _ in range(num_layers)] if weight_drop else [])
        self.penalty = (ActivationPenalty(activation_reg, temporal_activation_reg)
                        if activation_reg or temporal_activation_reg else None)

    @classmethod
    def check_options(cls, *, embed_dim, hidden_dim, num_layers, dropout, tie_weights, init_scale,
                      sparse_embedding, cell, forget_bias, dropout_input, dropout_between, dropout_output,
                      embedding_dropout, weight_drop, activation_reg, temporal_activation_reg, **_others) -> None:
        """ValueError naming the key for a value this model cannot take; needs no data, so the
        config check (config.resolve) calls it before any data is read, and so does __init__."""
        for name, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        for name, value in (("dropout", dropout), ("dropout_input", dropout_input),
                            ("dropout_between", dropout_between), ("dropout_output", dropout_output),
                            ("embedding_dropout", embedding_dropout), ("weight_drop", weight_drop)):
            if value is not None:
                check_rate(name, value)
        for name, value in (("activation_reg", activation_reg), ("temporal_activation_reg", temporal_activation_reg)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if dropout_between is not None and num_layers == 1:
            raise ValueError("dropout_between is the rate between recurrent layers, and num_layers is 1; "
                             "remove it or use num_layers >= 2")
        if init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        if tie_weights and embed_dim != hidden_dim:
            raise ValueError(f"tie_weights needs embed_dim == hidden_dim (the output weight IS the embedding), "
                             f"got embed_dim {embed_dim} and hidden_dim {hidden_dim}; make them equal "
                             "or set tie_weights: false")
        if tie_weights and sparse_embedding:
            raise ValueError("sparse_embedding needs tie_weights: false (a tied embedding is also the output "
                             "matrix, whose gradient fills every row); set one of them to false")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if forget_bias != 0.0 and cell != "lstm":
            raise ValueError(f"forget_bias is for cell: lstm (a {cell.upper()} has no forget gate); "
                             "remove it or set cell: lstm")

    @property
    def cells(self) -> list:
        """The recurrent layers, bottom first."""
        return getattr(self, f"{self.cell}s")

    def forward(self, ids, state: State | None = None):
        """ids (N, T) -> top-layer outputs after dropout (N, T, H), new state.

        Keeps the top layer's output before dropout in `self.top` (TAR's h).
        """
        x = self.embedding(ids)
        if self.embedding_dropout is not None:
            x = self.embedding_dropout(ids, x)
        x = self.dropouts[0](x)
        new_state = []
        for layer, (cell, drop) in enumerate(zip(self.cells, self.dropouts[1:])):
            layer_state = None if state is None else state[layer]
            if self.weight_drops:
                x, layer_state = cell.forward(x, layer_state, self.weight_drops[layer].scale_for(cell.Wh.data))
            else:
                x, layer_state = cell(x, layer_state)
            self.top = x
            x = drop(x)
            new_state.append(layer_state)
        return x, new_state

    def loss(self, batch, state: State | None = None) -> tuple[LossOutput, State]:
        x, y = batch
        h, state = self.forward(x, state)
        loss_sum = self.decoder.forward(h, y)
        self.count = y.size
        self.penalised = self.penalty is not None and self.training
        if self.penalised:  # AR + TAR, per token, so that loss_sum / count is the objective
            loss_sum = float(loss_sum) + self.count * self.penalty.forward(h, self.top)
        return LossOutput(float(loss_sum), int(y.size)), state

    def backward(self) -> None:
        """Gradient of the mean token loss of the last `loss` call (with AR and TAR in training), into every Param."""
        dx = self.decoder.backward(1.0 / self.count)
        dtop = None
        if self.penalised:
            d_dropped, dtop = self.penalty.backward(1.0)
            dx = dx + d_dropped
        for layer, (cell, drop) in enumerate(zip(reversed(self.cells), reversed(self.dropouts[1:]))):
            dx = drop.backward(dx)
            if layer == 0 and dtop is not None:
                dx = dx + dtop
            dx = cell.backward(dx)
        dx = self.dropouts[0].backward(dx)
        if self.embedding_dropout is not None:
            dx = self.embedding_dropout.backward(dx)
        self.embedding.backward(dx)

    @classmethod
    def gradcheck_case(cls, config, rng):
        """The configured cell, depth, dropout and tying at width 4 over 7 words; a (2, 3) window."""
        small = {**config, "embed_dim": 4, "hidden_dim": 4, "init_scale": 0.5}
        V = 7
        return small, {"vocab_size": V}, (rng.integers(0, V, size=(2, 3)), rng.integers(0, V, size=(2, 3)))

    def logits(self, ids, state: State | None = None):
        """ids (N, T) -> next-word logits (N, T, V) and the new state: generation's step.

        Runs in whatever mode the model is in; call eval() first to turn dropout off.
        """
        h, state = self.forward(ids, state)
        return self.decoder.logits(h), state
