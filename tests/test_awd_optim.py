"""AdamW (decoupled weight decay) and NT-ASGD (SGD, then the average of its iterates once
validation stalls): hand-computed steps, torch.optim.AdamW, the switch, the average, the
hooks the Trainer calls, and state that resumes exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnctl import config as config_mod
from nnctl.errors import ConfigError
from nnctl.layers.base import Param
from nnctl.optim import OPTIMIZERS


def param(values, sparse=False):
    return Param.init(np.array(values, dtype=np.float64), dtype=np.float64, sparse=sparse)


def build(kind, params, **options):
    return OPTIMIZERS.build({"type": kind, **options}, "optimizer", params=params)


# -- AdamW ---------------------------------------------------------------------------------
def test_adamw_step_by_hand():
    # p0 = [1, -2], g = [0.5, 1] both steps, lr 0.1, weight_decay 0.1 (betas 0.9, 0.999):
    # step 1: decay p <- p (1 - 0.1 * 0.1) = [0.99, -1.98]; m = 0.1 g, v = 0.001 g^2, so
    #         m^ = g, v^ = g^2 and the Adam step is 0.1 * g / (|g| + 1e-8) ~ 0.1 * sign(g)
    #         p = [0.89, -2.08]
    # step 2: decay p <- [0.8811, -2.0592]; m = 0.19 g, v = 0.001999 g^2: m^ = g, v^ = g^2 again
    #         p = [0.7811, -2.1592]
    p = param([1.0, -2.0])
    opt = build("adamw", {"w": p}, lr=0.1, weight_decay=0.1)
    for want in ([0.89, -2.08], [0.7811, -2.1592]):
        p.grad[...] = [0.5, 1.0]
        opt.step()
        np.testing.assert_allclose(p.data, want, rtol=0, atol=1e-7)


def test_adamw_is_not_adam_with_l2():
    p, q = param([1.0, -2.0]), param([1.0, -2.0])
    decoupled = build("adamw", {"w": p}, lr=0.1, weight_decay=0.1)
    l2 = build("adam", {"w": q}, lr=0.1, weight_decay=0.1)
    for _ in range(3):
        p.grad[...] = q.grad[...] = [0.5, 1.0]
        decoupled.step(), l2.step()
    assert not np.allclose(p.data, q.data)


def test_adamw_equals_torch_adamw():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = {"W": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}
    ours = {n: param(v) for n, v in start.items()}
    theirs = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in start.items()}
    opt = build("adamw", ours, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.3)
    ref = torch.optim.AdamW(list(theirs.values()), lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)
    for step in range(6):
        lr = 0.01 * (1 + step % 3)  # a schedule changing the lr, which scales the decay too
        opt.lr = lr
        for group in ref.param_groups:
            group["lr"] = lr
        for name in start:
            g = rng.normal(size=start[name].shape)
            ours[name].grad[...] = g
            theirs[name].grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        ref.step()
    for name in start:
        np.testing.assert_allclose(ours[name].data, theirs[name].detach().numpy(), rtol=1e-13, atol=1e-15)


def test_sparse_adamw_decays_only_the_touched_rows():
    table, dense = param(np.ones((4, 2)), sparse=True), param(np.ones((4, 2)))
    sparse_opt, dense_opt = build("adamw", {"e": table}, lr=0.1), build("adamw", {"e": dense}, lr=0.1)
    table.add_rows(np.array([1]), np.array([[1.0, -1.0]]))
    dense.grad[1] = [1.0, -1.0]
    sparse_opt.step(), dense_opt.step()
    np.testing.assert_array_equal(table.data[[0, 2, 3]], 1.0)
    np.testing.assert_allclose(table.data[1], dense.data[1], rtol=0, atol=1e-15)


# -- NT-ASGD -------------------------------------------------------------------------------
def awd_trigger(losses, nonmono):
    """The evaluation at which AWD-LSTM's main.py switches to ASGD, or None (its rule, on a list)."""
    history = []
    for i, loss in enumerate(losses):
        if len(history) > nonmono and loss > min(history[:-nonmono]):
            return i
        history.append(loss)
    return None


@pytest.mark.parametrize("nonmono", [1, 2, 5])
def test_ntasgd_switches_where_awd_lstm_does(nonmono):
    rng = np.random.default_rng(nonmono)
    for trial in range(200):
        losses = list(np.cumsum(rng.normal(-0.3, 1.0, size=15)))  # falling, with noise
        opt = build("ntasgd", {"w": param([0.0])}, lr=1.0, nonmono=nonmono)
        switched = None
        for i, loss in enumerate(losses):
            opt.observe(loss)
            if opt.averaging and switched is None:
                switched = i
        assert switched == awd_trigger(losses, nonmono), (trial, losses)


def test_ntasgd_is_sgd_then_averages_the_iterates_since_the_switch():
    p = param([1.0, 2.0])
    opt = build("ntasgd", {"w": p}, lr=0.5, nonmono=1)
    sgd_p = param([1.0, 2.0])
    sgd = build("sgd", {"w": sgd_p}, lr=0.5)
    grads = np.random.default_rng(0).normal(size=(7, 2))
    iterates = []
    for i, g in enumerate(grads):
        if i == 3:
            for loss in (3.0, 2.0, 3.5):  # 3.5 is worse than 3.0, the best from before the last 1
                opt.observe(loss)
            assert opt.averaging
        p.grad[...] = sgd_p.grad[...] = g
        opt.step(), sgd.step()
        np.testing.assert_array_equal(p.data, sgd_p.data)  # the steps are SGD's throughout
        if opt.averaging:
            iterates.append(p.data.copy())
    assert opt.average_count == 4
    np.testing.assert_allclose(opt.state["w"]["average"], np.mean(iterates, axis=0), rtol=0, atol=1e-15)
    trained = p.data.copy()
    with opt.averaged():
        np.testing.assert_allclose(p.data, np.mean(iterates, axis=0), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(p.data, trained)  # the trained weights come back


def test_averaged_is_a_no_op_before_the_switch_and_for_other_optimizers():
    for kind in ("ntasgd", "sgd", "adam", "adamw"):
        p = param([1.0, 2.0])
        opt = build(kind, {"w": p}, lr=0.1)
        p.grad[...] = [1.0, 1.0]
        opt.step()
        before = p.data.copy()
        opt.observe(1.0)
        with opt.averaged():
            np.testing.assert_array_equal(p.data, before)
        np.testing.assert_array_equal(p.data, before)


def test_ntasgd_state_resumes_exactly_while_averaging(tmp_path):
    grads = np.random.default_rng(1).normal(size=(8, 3))
    losses = [3.0, 2.0, 3.5, 2.6]

    def run(opt, p, steps, observe_at):
        for i in steps:
            if i in observe_at:
                opt.observe(losses[observe_at.index(i)])
            p.grad[...] = grads[i]
            opt.step()

    at = [1, 2, 3, 5]
    p = param(np.zeros(3))
    straight = build("ntasgd", {"w": p}, lr=0.3, nonmono=1)
    run(straight, p, range(8), at)
    q = param(np.zeros(3))
    first = build("ntasgd", {"w": q}, lr=0.3, nonmono=1)
    run(first, q, range(4), at)
    assert first.averaging
    np.savez(tmp_path / "opt.npz", **first.state_dict())
    r = param(q.data)
    resumed = build("ntasgd", {"w": r}, lr=0.3, nonmono=1)
    with np.load(tmp_path / "opt.npz") as saved:
        resumed.load_state_dict(dict(saved))
    for i in range(4, 8):  # the resumed optimizer has seen losses[:3]; observe_at[3] = 5 is still ahead
        if i == 5:
            resumed.observe(losses[3])
        r.grad[...] = grads[i]
        resumed.step()
    np.testing.assert_array_equal(r.data, p.data)
    for key, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value, err_msg=key)


# -- bad values, refused when the config is read (before any data) -------------------------
BASE = {"data": {"type": "ptb"}, "model": {"type": "lstm_lm"}}


@pytest.mark.parametrize("optimizer, key", [
    ({"type": "adamw", "weight_decay": -0.01}, "optimizer.weight_decay"),
    ({"type": "ntasgd", "nonmono": 0}, "optimizer.nonmono"),
    ({"type": "ntasgd", "nonmono": -3}, "optimizer.nonmono"),
    ({"type": "adamw", "beta1": 1.0}, "optimizer.beta1"),
])
def test_bad_optimizer_values_name_the_key_at_config_time(optimizer, key):
    with pytest.raises(ConfigError, match=rf"^config: {key}: "):
        config_mod.resolve({**BASE, "optimizer": optimizer})


def test_nonmono_must_be_an_integer():
    with pytest.raises(ConfigError, match=r"optimizer\.nonmono"):
        config_mod.resolve({**BASE, "optimizer": {"type": "ntasgd", "nonmono": 1.5}})
    assert math.isclose(config_mod.resolve({**BASE, "optimizer": {"type": "ntasgd"}})["optimizer"]["lr"], 30.0)
