"""The whole regularised language model against PyTorch autograd (float64): the same masks
(read back from nnctl's layers after its pass), the LSTM written out in torch one step at a
time, AR and TAR added to the loss. Equal loss and gradients for every parameter, so the
regularisers' backward passes are checked by a second, independent differentiation."""

from __future__ import annotations

import numpy as np
import pytest

from nnctl.models.lstm_lm import LSTMLanguageModel

torch = pytest.importorskip("torch")
ALPHA, BETA = 2.0, 1.0


def torch_loss(model, params, masks, ids, targets, state):
    """The model's training loss, in torch, from leaf tensors `params` and nnctl's masks."""
    t = {n: torch.tensor(m, dtype=torch.float64) for n, m in masks.items()}
    x = params["embedding.W"][torch.tensor(ids)] * t["words"] * t["dropouts.0"]
    H = model.cells[0].hidden_dim
    for layer in range(len(model.cells)):
        Wx, Wh, b = (params[f"lstms.{layer}.{k}"] for k in ("Wx", "Wh", "b"))
        Wh = Wh * t[f"weight_drops.{layer}"]
        h, c = (torch.tensor(s, dtype=torch.float64) for s in state[layer])
        outputs = []
        for step in range(x.shape[1]):
            a = x[:, step] @ Wx + h @ Wh + b
            i, f, o, g = (torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H: 2 * H]), torch.sigmoid(a[:, 2 * H: 3 * H]),
                          torch.tanh(a[:, 3 * H:]))
            c = f * c + i * g
            h = o * torch.tanh(c)
            outputs.append(h)
        top = torch.stack(outputs, dim=1)
        x = top * t[f"dropouts.{layer + 1}"]
    W = params["embedding.W"] if model.tie_weights else params["decoder.W"]
    logits = x @ W.T + params["decoder.b"]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.tensor(targets).reshape(-1))
    return ce + ALPHA * (x * x).mean() + BETA * ((top[:, 1:] - top[:, :-1]) ** 2).mean()


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_regularised_model_equals_torch_autograd(tie):
    model = LSTMLanguageModel(embed_dim=5, hidden_dim=5, num_layers=2, tie_weights=tie, dropout=0.3,
                              dropout_between=0.2, locked_dropout=True, embedding_dropout=0.3, weight_drop=0.4,
                              activation_reg=ALPHA, temporal_activation_reg=BETA, vocab_size=11,
                              rng=np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, 11, (3, 6)), rng.integers(0, 11, (3, 6))
    _, state = model.loss((rng.integers(0, 11, (3, 4)), rng.integers(0, 11, (3, 4))))  # a carried state
    state = [tuple(s.copy() for s in layer) for layer in state]
    model.zero_grad()
    out, _ = model.loss((ids, targets), state)
    model.backward()
    masks = {"words": model.embedding_dropout.scale,
             **{f"dropouts.{i}": d.scale for i, d in enumerate(model.dropouts)},
             **{f"weight_drops.{i}": cell.cache[-1] for i, cell in enumerate(model.cells)}}
    assert all(m is not None and (m == 0).any() for m in masks.values())  # every mask dropped something
    params = {n: torch.tensor(p.data, dtype=torch.float64, requires_grad=True) for n, p in model.named_params().items()}
    loss = torch_loss(model, params, masks, ids, targets, state)
    loss.backward()
    assert out.loss_sum / out.count == pytest.approx(loss.item(), rel=1e-14)
    for name, p in model.named_params().items():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-11, atol=1e-14, err_msg=name)
