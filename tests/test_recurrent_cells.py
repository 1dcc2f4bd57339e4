"""The recurrent cells RNN, GRU and LSTM: gradient checks (float64, central differences),
the fast layers against their plain per-step references (nnctl/layers/reference.py), and
RNN/GRU/LSTM against PyTorch's where PyTorch is importable."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from nnctl import gradcheck
from nnctl.layers.base import Layer
from nnctl.layers.gru import GRU
from nnctl.layers.recurrent import LSTM
from nnctl.layers.reference import reference_of
from nnctl.layers.rnn import RNN

F64 = np.float64
CELLS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}
SHAPES = [(2, 1, 3, 4), (2, 6, 3, 4), (3, 7, 2, 3)]  # (N, T, D, H)
SHAPE_IDS = [f"N{n}_T{t}_D{d}_H{h}" for n, t, d, h in SHAPES]


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def state_arrays(state):
    return list(state) if isinstance(state, tuple) else [state]


def as_state(arrays):
    return tuple(arrays) if len(arrays) == 2 else arrays[0]


class FromState(Layer):
    """A cell with its incoming state as differentiable inputs, so d(state) is checked too."""

    def __init__(self, cell):
        self.cell = cell

    def forward(self, x, *state):
        return self.cell.forward(x, as_state(list(state)))[0]

    def backward(self, dy):
        return (self.cell.backward(dy), *state_arrays(self.cell.dstate))


def carried_state(cell, N, seed):
    """The state after a first window, as the Trainer carries it into the next one."""
    _, state = cell.forward(normal((N, 4, cell.Wx.shape[0]), seed + 10))
    return [s.copy() for s in state_arrays(state)]


def check(layer, *inputs):
    report = gradcheck.check_layer(layer, *inputs, eps=1e-6)
    assert len(report.results) >= 3, "nothing was compared"
    assert report.max_rel_error < 1e-6, report.worst()


@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("N, T, D, H", SHAPES, ids=SHAPE_IDS)
def test_cell_backward_with_carried_state(cell, N, T, D, H):
    """A second window from the first one's state: dx, every Param and d(state), several steps."""
    layer = CELLS[cell](D, H, rng=np.random.default_rng(1), dtype=F64)
    check(FromState(layer), normal((N, T, D), 2), *carried_state(layer, N, seed=T))


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_cell_backward_from_zero_state(cell):
    layer = CELLS[cell](3, 4, rng=np.random.default_rng(0), dtype=F64)

    class Outputs(Layer):
        def __init__(self):
            self.cell = layer

        def forward(self, x):
            return layer.forward(x)[0]

        def backward(self, dy):
            return layer.backward(dy)

    check(Outputs(), normal((2, 5, 3)))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_reference_backward_matches_central_differences(cell):
    """The readable versions are right on their own, not only equal to the fast ones."""
    twin = reference_of(CELLS[cell](3, 4, rng=np.random.default_rng(2), dtype=F64))
    check(FromState(twin), normal((2, 5, 3), 3), *carried_state(twin, 2, seed=4))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("N, T, D, H", SHAPES, ids=SHAPE_IDS)
def test_fast_cell_equals_its_reference(cell, N, T, D, H):
    """Outputs, final state, input, state and parameter gradients, carried state in."""
    fast = CELLS[cell](D, H, rng=np.random.default_rng(5), dtype=F64)
    plain = reference_of(copy.deepcopy(fast))
    state = as_state(carried_state(fast, N, seed=6))
    x, dy = normal((N, T, D), 7), normal((N, T, H), 8)
    fast.zero_grad()
    plain.zero_grad()
    y_fast, s_fast = fast.forward(x, state)
    y_plain, s_plain = plain.forward(x, state)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-12, atol=1e-14)
    for a, b in zip(state_arrays(s_fast), state_arrays(s_plain)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.backward(dy), plain.backward(dy), rtol=1e-11, atol=1e-13)
    for a, b in zip(state_arrays(fast.dstate), state_arrays(plain.dstate)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    plain_grads = plain.named_params()
    for name, p in fast.named_params().items():
        np.testing.assert_allclose(p.grad, plain_grads[name].grad, rtol=1e-11, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cell_does_not_backprop_into_the_previous_window(cell):
    """Truncated BPTT: a window's gradient is the same whatever produced its incoming state."""
    layer = CELLS[cell](3, 4, rng=np.random.default_rng(0), dtype=F64)
    state = as_state(carried_state(layer, 2, seed=0))
    x, dy = normal((2, 5, 3), 1), normal((2, 5, 4), 2)
    layer.zero_grad()
    layer.forward(x, state)
    dx = layer.backward(dy)
    grads = {n: p.grad.copy() for n, p in layer.named_params().items()}
    layer.zero_grad()
    layer.forward(x, as_state([s.copy() for s in state_arrays(state)]))
    np.testing.assert_array_equal(layer.backward(dy), dx)
    for name, p in layer.named_params().items():
        np.testing.assert_array_equal(p.grad, grads[name])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cell_state_continues_the_sequence(cell):
    """Two windows with the state carried equal one window over both."""
    layer = CELLS[cell](3, 4, rng=np.random.default_rng(0), dtype=F64)
    x = normal((2, 8, 3))
    y_whole, s_whole = layer.forward(x)
    y_first, s_first = layer.forward(x[:, :5])
    y_second, s_second = layer.forward(x[:, 5:], s_first)
    np.testing.assert_allclose(np.concatenate([y_first, y_second], axis=1), y_whole, rtol=1e-13)
    for a, b in zip(state_arrays(s_second), state_arrays(s_whole)):
        np.testing.assert_allclose(a, b, rtol=1e-13)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cell_keeps_float32(cell):
    layer = CELLS[cell](3, 4, rng=np.random.default_rng(0))
    y, state = layer.forward(normal((2, 5, 3)).astype(np.float32))
    assert y.dtype == np.float32 and all(s.dtype == np.float32 for s in state_arrays(state))
    dx = layer.backward(normal((2, 5, 4)).astype(np.float32))
    assert dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.params())


# -- against PyTorch ------------------------------------------------------------------------

def torch_twin(layer):
    """torch.nn.RNN / GRU / LSTM (one layer, batch_first) with the layer's weights, in float64."""
    torch = pytest.importorskip("torch")
    D, H = layer.Wx.shape[0], layer.hidden_dim
    kind = {RNN: torch.nn.RNN, GRU: torch.nn.GRU, LSTM: torch.nn.LSTM}[type(layer)]
    net = kind(D, H, batch_first=True).double()
    bias_hh = np.zeros(layer.Wx.shape[1])
    bias_ih = layer.b.data.copy()
    if isinstance(layer, GRU):  # bias_hh's n block sits inside the reset gate's product
        bias_hh[2 * H:] = layer.bh_n.data
    if isinstance(layer, LSTM):  # torch's gate order is [i, f, g, o]; nnctl's [i, f, o, g]
        order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
    else:
        order = np.arange(layer.Wx.shape[1])
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(layer.Wx.data[:, order].T.copy()))
        net.weight_hh_l0.copy_(torch.from_numpy(layer.Wh.data[:, order].T.copy()))
        net.bias_ih_l0.copy_(torch.from_numpy(bias_ih[order]))
        net.bias_hh_l0.copy_(torch.from_numpy(bias_hh[order]))
    return net, order


def max_relative_error(a, b) -> float:
    a, b = np.asarray(a, dtype=F64), np.asarray(b, dtype=F64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cell_equals_pytorch_in_float64(cell):
    """Outputs, final states, input and state gradients, every parameter gradient: <= 1e-6 relative."""
    torch = pytest.importorskip("torch")
    N, T, D, H = 3, 6, 4, 5
    layer = CELLS[cell](D, H, rng=np.random.default_rng(3), dtype=F64)
    net, order = torch_twin(layer)
    state = carried_state(layer, N, seed=1)
    x, dy = normal((N, T, D), 2), normal((N, T, H), 4)

    layer.zero_grad()
    y, final = layer.forward(x, as_state(state))
    dx = layer.backward(dy)

    tx = torch.tensor(x, requires_grad=True)
    tstate = [torch.tensor(s[None], requires_grad=True) for s in state]  # (layers, N, H)
    ty, tfinal = net(tx, tuple(tstate) if cell == "lstm" else tstate[0])
    ty.backward(torch.from_numpy(dy))
    tfinal = tfinal if cell == "lstm" else (tfinal,)

    errors = {"y": max_relative_error(y, ty.detach().numpy()), "dx": max_relative_error(dx, tx.grad.numpy())}
    for k, (ours, theirs) in enumerate(zip(state_arrays(final), tfinal)):
        errors[f"state{k}"] = max_relative_error(ours, theirs.detach().numpy()[0])
    for k, (ours, theirs) in enumerate(zip(state_arrays(layer.dstate), tstate)):
        errors[f"dstate{k}"] = max_relative_error(ours, theirs.grad.numpy()[0])
    inverse = np.argsort(order)
    grad_ih, grad_hh = net.bias_ih_l0.grad.numpy()[inverse], net.bias_hh_l0.grad.numpy()[inverse]
    errors["dWx"] = max_relative_error(layer.Wx.grad, net.weight_ih_l0.grad.numpy().T[:, inverse])
    errors["dWh"] = max_relative_error(layer.Wh.grad, net.weight_hh_l0.grad.numpy().T[:, inverse])
    errors["db"] = max_relative_error(layer.b.grad, grad_ih)
    if cell == "gru":
        errors["dbh_n"] = max_relative_error(layer.bh_n.grad, grad_hh[2 * H:])
        # b's r and z blocks stand for bias_ih + bias_hh: both get the same gradient
        errors["db_hh_rz"] = max_relative_error(layer.b.grad[: 2 * H], grad_hh[: 2 * H])
    else:
        errors["db_hh"] = max_relative_error(layer.b.grad, grad_hh)
    assert max(errors.values()) <= 1e-6, errors
