"""Optimizers against hand-computed updates; sparse rows, clipping, checkpoints, validation."""

import math
import re

import numpy as np
import pytest

from nnctl.errors import CheckpointError, ConfigError
from nnctl.layers.base import Param
from nnctl.optim import (OPTIMIZERS, clip_grad_norm, global_grad_norm, has_nonfinite)

ALL = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "ntasgd"]

# Two gradients used by the hand-computed cases: step 1 then step 2, from p0 = [0, 0].
G1, G2 = [1.0, -2.0], [3.0, 0.0]
r = math.sqrt

# Expected parameter after step 1 and after step 2, worked out by hand below each rule.
HAND = {
    # p ← p − lr·g, lr = 0.1
    "sgd": ({"lr": 0.1},
            [[-0.1, 0.2],
             [-0.1 - 0.3, 0.2 - 0.0]]),
    # v ← 0.9v + g; p ← p − 0.1v
    # step 1: v = [1, -2]                          p = [-0.1, 0.2]
    # step 2: v = [0.9 + 3, -1.8 + 0] = [3.9, -1.8] p = [-0.1 - 0.39, 0.2 + 0.18]
    "momentum": ({"lr": 0.1, "momentum": 0.9},
                 [[-0.1, 0.2],
                  [-0.49, 0.38]]),
    # v ← 0.9v + g; p ← p − 0.1(g + 0.9v)
    # step 1: v = [1, -2]; g + 0.9v = [1.9, -3.8]               p = [-0.19, 0.38]
    # step 2: v = [3.9, -1.8]; g + 0.9v = [3 + 3.51, 0 - 1.62]   p = [-0.19 - 0.651, 0.38 + 0.162]
    "nesterov": ({"lr": 0.1, "momentum": 0.9},
                 [[-0.19, 0.38],
                  [-0.841, 0.542]]),
    # h ← h + g²; p ← p − 0.1·g/√h
    # step 1: h = [1, 4]; g/√h = [1, -1]                 p = [-0.1, 0.1]
    # step 2: h = [10, 4]; g/√h = [3/√10, 0]              p = [-0.1 - 0.3/√10, 0.1]
    "adagrad": ({"lr": 0.1},
                [[-0.1, 0.1],
                 [-0.1 - 0.3 / r(10), 0.1]]),
    # h ← 0.9h + 0.1g²; p ← p − 0.01·g/√h
    # step 1: h = [0.1, 0.4]; g/√h = [1/√0.1, -2/√0.4] = [√10, -√10]
    # step 2: h = [0.09 + 0.9, 0.36 + 0] = [0.99, 0.36]; g/√h = [3/√0.99, 0]
    "rmsprop": ({"lr": 0.01, "rho": 0.9},
                [[-0.01 * r(10), 0.01 * r(10)],
                 [-0.01 * r(10) - 0.03 / r(0.99), 0.01 * r(10)]]),
    # m ← 0.9m + 0.1g; v ← 0.999v + 0.001g²; p ← p − 0.1·m̂/√v̂
    # step 1: m = [0.1, -0.2], v = [0.001, 0.004]; m̂ = m/0.1 = [1, -2], v̂ = v/0.001 = [1, 4]
    #         p = [-0.1, 0.1]
    # step 2: m = [0.09 + 0.3, -0.18] = [0.39, -0.18]; v = [0.000999 + 0.009, 0.003996]
    #         m̂ = m/(1 − 0.81) = m/0.19, v̂ = v/(1 − 0.998001) = v/0.001999
    "adam": ({"lr": 0.1, "beta1": 0.9, "beta2": 0.999},
             [[-0.1, 0.1],
              [-0.1 - 0.1 * (0.39 / 0.19) / r(0.009999 / 0.001999),
               0.1 - 0.1 * (-0.18 / 0.19) / r(0.003996 / 0.001999)]]),
}
# AdamW without decay steps as Adam (its decay: tests/test_awd_optim.py);
# NT-ASGD is SGD until validation stalls (its switch and average: the same file)
HAND["adamw"] = ({**HAND["adam"][0], "weight_decay": 0.0}, HAND["adam"][1])
HAND["ntasgd"] = HAND["sgd"]


def make_param(values, dtype=np.float64, sparse=False) -> Param:
    # a copy: Param.init keeps the caller's array when the dtype already matches
    return Param.init(np.array(values, dtype=dtype), dtype=dtype, sparse=sparse)


def build(kind: str, params: dict, **config):
    return OPTIMIZERS.build({"type": kind, **config}, path="optimizer", params=params)


@pytest.mark.parametrize("kind", ALL)
def test_update_rule_matches_hand_computation(kind):
    config, expected = HAND[kind]
    p = make_param([0.0, 0.0])
    opt = build(kind, {"w": p}, **config)
    for g, want in zip([G1, G2], expected):
        p.grad[...] = g
        opt.step()
        # eps (1e-8) in the adaptive rules moves the result by ~1e-9 at most
        np.testing.assert_allclose(p.data, want, rtol=0, atol=1e-7)
    assert opt.step_count == 2


def test_registered_names():
    assert OPTIMIZERS.names() == sorted(ALL)


def test_weight_decay_is_l2_added_to_the_gradient():
    # g_eff = g + 0.5·p = [1, 1] + 0.5·[2, -4] = [2, -1];  p ← p − 0.1·g_eff = [1.8, -3.9]
    p = make_param([2.0, -4.0])
    opt = build("sgd", {"w": p}, lr=0.1, weight_decay=0.5)
    p.grad[...] = [1.0, 1.0]
    opt.step()
    np.testing.assert_allclose(p.data, [1.8, -3.9], rtol=0, atol=1e-12)
    # with momentum 0.9: v = g_eff_2 + 0.9·[2, -1], g_eff_2 = [1, 1] + 0.5·[1.8, -3.9] = [1.9, -0.95]
    # v = [1.9 + 1.8, -0.95 - 0.9] = [3.7, -1.85]; p = [1.8 - 0.37, -3.9 + 0.185]
    q = make_param([2.0, -4.0])
    mom = build("momentum", {"w": q}, lr=0.1, momentum=0.9, weight_decay=0.5)
    for _ in range(2):
        q.grad[...] = [1.0, 1.0]
        mom.step()
    np.testing.assert_allclose(q.data, [1.43, -3.715], rtol=0, atol=1e-12)


def test_lr_set_between_steps_is_used():
    p = make_param([0.0])
    opt = build("sgd", {"w": p}, lr=0.1)
    p.grad[...] = [1.0]
    opt.step()
    opt.lr = np.float64(0.5)  # as a schedule might hand it over
    opt.step()
    np.testing.assert_allclose(p.data, [-0.6], atol=1e-12)
    assert type(opt.lr) is float


@pytest.mark.parametrize("kind", ALL)
def test_float32_stays_float32(kind):
    rng = np.random.default_rng(0)
    w = make_param(rng.normal(size=(3, 4)), dtype=np.float32)
    e = make_param(rng.normal(size=(6, 4)), dtype=np.float32, sparse=True)
    opt = build(kind, {"w": w, "e": e}, weight_decay=0.01)
    for _ in range(3):
        w.grad[...] = rng.normal(size=w.shape)
        e.add_rows(np.array([0, 2]), rng.normal(size=(2, 4)).astype(np.float32))
        opt.lr = np.float64(0.01)
        opt.step()
        e.zero_grad()
    assert w.data.dtype == e.data.dtype == np.float32
    assert all(a.dtype == np.float32 for slots in opt.state.values() for a in slots.values())


# -- sparse (lazy) updates -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL)
def test_sparse_step_equals_dense_step_on_touched_rows(kind):
    rng = np.random.default_rng(1)
    table = rng.normal(size=(6, 3))
    dense, sparse = make_param(table), make_param(table, sparse=True)
    opt_dense = build(kind, {"e": dense}, weight_decay=0.1)
    opt_sparse = build(kind, {"e": sparse}, weight_decay=0.1)
    rows, values = np.array([1, 4, 1]), rng.normal(size=(3, 3))  # row 1 twice: accumulates
    for p in (dense, sparse):
        p.add_rows(rows, values)
    opt_dense.step()
    opt_sparse.step()
    np.testing.assert_allclose(sparse.data[[1, 4]], dense.data[[1, 4]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(sparse.data[[0, 2, 3, 5]], table[[0, 2, 3, 5]])
    for slot in opt_dense.state["e"]:
        np.testing.assert_allclose(opt_sparse.state["e"][slot][[1, 4]],
                                   opt_dense.state["e"][slot][[1, 4]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ALL)
def test_sparse_untouched_rows_keep_weights_and_state(kind):
    rng = np.random.default_rng(2)
    table = make_param(rng.normal(size=(5, 2)), sparse=True)
    opt = build(kind, {"e": table}, weight_decay=0.1)
    table.add_rows(np.array([0, 3]), rng.normal(size=(2, 2)))
    opt.step()
    table.zero_grad()
    before = table.data.copy()
    state_before = {slot: a.copy() for slot, a in opt.state["e"].items()}
    table.add_rows(np.array([2]), rng.normal(size=(1, 2)))
    # garbage in an untouched row's grad must be ignored: only touched_rows are read
    table.grad[4] = 1e6
    opt.step()
    untouched = [0, 1, 3, 4]
    np.testing.assert_array_equal(table.data[untouched], before[untouched])
    assert not np.array_equal(table.data[2], before[2])
    for slot, array in opt.state["e"].items():
        np.testing.assert_array_equal(array[untouched], state_before[slot][untouched])


def test_sparse_adam_uses_global_step_for_bias_correction():
    # Row 0 is first touched at global step 3 with g = 1: m = 0.1, v = 0.001, and the
    # bias corrections use t = 3: m̂ = 0.1/(1 − 0.9³) = 0.1/0.271, v̂ = 0.001/(1 − 0.999³)
    table = make_param(np.zeros((2, 1)), sparse=True)
    opt = build("adam", {"e": table}, lr=0.1)
    for _ in range(2):
        table.add_rows(np.array([1]), np.ones((1, 1)))
        opt.step()
        table.zero_grad()
    table.add_rows(np.array([0]), np.ones((1, 1)))
    opt.step()
    expected = -0.1 * (0.1 / 0.271) / math.sqrt(0.001 / (1 - 0.999**3))
    np.testing.assert_allclose(table.data[0, 0], expected, rtol=1e-7)


def test_sparse_param_with_no_touched_rows_is_left_alone():
    table = make_param(np.ones((3, 2)), sparse=True)
    opt = build("adam", {"e": table})
    opt.step()
    np.testing.assert_array_equal(table.data, np.ones((3, 2)))
    assert opt.step_count == 1


def test_same_param_twice_is_rejected():
    p = make_param([1.0])
    with pytest.raises(ValueError, match="'a' and 'b' are the same Param"):
        OPTIMIZERS.get("sgd")(params={"a": p, "b": p})


# -- gradient utilities ------------------------------------------------------------------------
def test_clip_grad_norm_returns_pre_clip_norm_and_scales():
    a, b = make_param([0.0, 0.0]), make_param([0.0])
    a.grad[...] = [3.0, 0.0]
    b.grad[...] = [4.0]  # global norm √(9 + 16) = 5
    norm = clip_grad_norm([a, b], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    # scaled by 1/5 (up to the 1e-6 guard): [0.6, 0], [0.8]
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(b.grad, [0.8], rtol=1e-6)
    assert global_grad_norm([a, b]) <= 1.0


def test_clip_grad_norm_leaves_small_gradients_alone():
    a = make_param([0.0, 0.0])
    a.grad[...] = [0.3, 0.4]
    assert clip_grad_norm({"a": a}, max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(a.grad, [0.3, 0.4])


def test_clip_grad_norm_counts_a_tied_param_once_and_sparse_rows():
    a = make_param([3.0, 0.0])
    a.grad[...] = [3.0, 0.0]
    e = make_param(np.zeros((4, 2)), sparse=True)
    e.add_rows(np.array([2, 2]), np.array([[2.0, 0.0], [2.0, 0.0]]))  # row 2: [4, 0]
    norm = clip_grad_norm([a, e, a], max_norm=2.5)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(e.grad[2], [2.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(a.grad, [1.5, 0.0], rtol=1e-6)


def test_clip_grad_norm_float32_and_nonfinite():
    a = make_param([0.0, 0.0], dtype=np.float32)
    a.grad[...] = [30.0, 40.0]
    clip_grad_norm([a], 5.0)
    assert a.grad.dtype == np.float32
    np.testing.assert_allclose(a.grad, [3.0, 4.0], rtol=1e-5)
    assert not has_nonfinite([a])
    a.grad[1] = np.nan
    assert has_nonfinite([a])
    assert math.isnan(clip_grad_norm([a], 5.0))
    assert a.grad[0] == np.float32(3.0)  # left untouched
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0, got 0"):
        clip_grad_norm([a], 0)


# -- checkpointing -------------------------------------------------------------------------------
def _problem(seed=3):
    rng = np.random.default_rng(seed)
    params = {"W": make_param(rng.normal(size=(3, 2))),
              "embed.E": make_param(rng.normal(size=(5, 2)), sparse=True)}
    grads = [(rng.normal(size=(3, 2)), rng.integers(0, 5, size=3), rng.normal(size=(3, 2)))
             for _ in range(4)]
    return params, grads


def _run(opt, params, grads):
    for dense_g, rows, row_g in grads:
        for p in params.values():
            p.zero_grad()
        params["W"].grad[...] = dense_g
        params["embed.E"].add_rows(rows, row_g)
        opt.step()


@pytest.mark.parametrize("kind", ALL)
def test_state_dict_round_trip_resumes_exactly(kind, tmp_path):
    params, grads = _problem()
    straight = build(kind, params)
    _run(straight, params, grads)

    params2, _ = _problem()
    first = build(kind, params2)
    _run(first, params2, grads[:2])
    np.savez(tmp_path / "opt.npz", **first.state_dict())
    np.savez(tmp_path / "weights.npz", **{n: p.data for n, p in params2.items()})
    _run(first, params2, grads[2:3])  # later steps must not leak into the saved state

    resumed_params, _ = _problem()
    with np.load(tmp_path / "weights.npz") as weights:
        for name, p in resumed_params.items():
            p.data[...] = weights[name]
    resumed = build(kind, resumed_params, lr=0.5)  # lr comes back from the checkpoint
    with np.load(tmp_path / "opt.npz") as saved:
        resumed.load_state_dict(dict(saved))
    assert resumed.step_count == 2
    assert resumed.lr == straight.lr
    _run(resumed, resumed_params, grads[2:])
    for name in params:
        np.testing.assert_array_equal(resumed_params[name].data, params[name].data)


def test_state_dict_keys_are_flat_and_named():
    params, _ = _problem()
    sd = build("adam", params).state_dict()
    assert set(sd) == {"W/m", "W/v", "embed.E/m", "embed.E/v", "step_count", "lr"}
    assert all(isinstance(v, np.ndarray) for v in sd.values())


@pytest.mark.parametrize("change, key", [
    (lambda sd: sd.pop("W/m"), "W/m"),
    (lambda sd: sd.update({"W/v": np.zeros((2, 2))}), "W/v"),
    (lambda sd: sd.update({"other/m": np.zeros(3)}), "other/m"),
    (lambda sd: sd.pop("step_count"), "step_count"),
])
def test_load_state_dict_mismatch_names_the_key(change, key):
    params, _ = _problem()
    opt = build("adam", params)
    sd = opt.state_dict()
    change(sd)
    with pytest.raises(CheckpointError, match=re.escape(f"'{key}'")):
        opt.load_state_dict(sd)


def test_loading_another_optimizers_state_fails():
    params, _ = _problem()
    with pytest.raises(CheckpointError, match="'W/m'"):
        build("momentum", params).load_state_dict(build("adam", params).state_dict())


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, key, value, message", [
    ("sgd", "lr", -1.0, "lr must be a finite number > 0, got -1.0"),
    ("sgd", "lr", 0.0, "lr must be a finite number > 0, got 0.0"),
    ("adam", "lr", float("nan"), "lr must be a finite number > 0, got nan"),
    ("sgd", "weight_decay", -0.1, "weight_decay must be a finite number >= 0, got -0.1"),
    ("momentum", "momentum", 1.0, "momentum must be in [0, 1), got 1.0"),
    ("nesterov", "momentum", -0.5, "momentum must be in [0, 1), got -0.5"),
    ("adagrad", "eps", 0.0, "eps must be a finite number > 0, got 0.0"),
    ("rmsprop", "rho", 1.5, "rho must be in [0, 1), got 1.5"),
    ("adam", "beta1", 1.0, "beta1 must be in [0, 1), got 1.0"),
    ("adam", "beta2", -0.1, "beta2 must be in [0, 1), got -0.1"),
])
def test_invalid_hyperparameters(kind, key, value, message):
    params = {"w": make_param([1.0])}
    cls = OPTIMIZERS.get(kind)
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**{key: value}, params=params)
    with pytest.raises(ConfigError) as error:
        build(kind, params, **{key: value})
    # the registry names the section; accept "optimizer.lr: ..." or "optimizer: lr ..."
    assert re.search(rf"optimizer(\.|: ){key}\b", str(error.value)), str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_key_and_type_are_config_errors():
    params = {"w": make_param([1.0])}
    with pytest.raises(ConfigError, match=r"optimizer\.betas.*unknown key"):
        build("adam", params, betas=[0.9, 0.99])
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        OPTIMIZERS.build({"type": "adamm"}, path="optimizer", params=params)
