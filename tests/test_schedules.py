"""Learning-rate schedules: lr sequences worked out by hand, plateau state, validation."""

import json
import math
import re

import pytest

from nnctl.errors import CheckpointError, ConfigError
from nnctl.schedules import SCHEDULES


def build(cfg: dict, base_lr=1.0, steps_per_epoch=4, epochs=10):
    return SCHEDULES.build(cfg, path="schedule", base_lr=base_lr,
                           steps_per_epoch=steps_per_epoch, epochs=epochs)


def per_epoch(schedule, epochs, steps_per_epoch=4):
    """The lr of the first step of each epoch."""
    return [schedule.lr(e, e * steps_per_epoch) for e in range(epochs)]


def test_registered_names():
    assert SCHEDULES.names() == ["constant", "cosine", "linear", "plateau", "step"]


def test_constant():
    s = build({"type": "constant"}, base_lr=0.3)
    assert {s.lr(e, k) for e in range(3) for k in range(12)} == {0.3}
    assert s.state_dict() == {}


@pytest.mark.parametrize("cfg, expected", [
    # default: start = every = 1, so ×0.5 from epoch 1 on
    ({"factor": 0.5}, [1, 0.5, 0.25, 0.125, 0.0625]),
    # StepLR: every 2 epochs, starting at epoch 2
    ({"factor": 0.1, "every": 2}, [1, 1, 0.1, 0.1, 0.01, 0.01]),
    # Zaremba et al.'s small LSTM: 4 epochs at base_lr, then halved every epoch
    ({"factor": 0.5, "every": 1, "start": 4}, [1, 1, 1, 1, 0.5, 0.25, 0.125]),
    # first cut at epoch 3, then every 2 epochs: epochs 3-4 ×0.5, 5-6 ×0.25
    ({"factor": 0.5, "every": 2, "start": 3}, [1, 1, 1, 0.5, 0.5, 0.25, 0.25]),
])
def test_step_schedule_by_epoch(cfg, expected):
    s = build({"type": "step", **cfg})
    assert per_epoch(s, len(expected)) == pytest.approx(expected, rel=1e-12)
    # constant within an epoch: only the epoch matters
    assert {s.lr(2, k) for k in range(8, 12)} == {s.lr(2, 8)}


def test_cosine_without_warmup():
    # N = 2 epochs x 2 steps = 4 steps, base 1, min 0: lr = (1 + cos(π s/4)) / 2
    s = build({"type": "cosine"}, steps_per_epoch=2, epochs=2)
    got = [s.lr(k // 2, k) for k in range(5)]
    half = math.sqrt(2) / 2
    assert got == pytest.approx([1.0, (1 + half) / 2, 0.5, (1 - half) / 2, 0.0], abs=1e-12)


def test_cosine_with_warmup_and_min_lr():
    # N = 6 steps, W = 2: warmup 1·1/2, 1·2/2; then over 4 steps from 1 to 0.2:
    # s=2: 1; s=3: 0.2 + 0.8(1 + cos(π/4))/2; s=4: 0.6; s=5: 0.2 + 0.8(1 − cos(π/4))/2
    s = build({"type": "cosine", "warmup_steps": 2, "min_lr": 0.2}, steps_per_epoch=3, epochs=2)
    half = math.sqrt(2) / 2
    expected = [0.5, 1.0, 1.0, 0.2 + 0.4 * (1 + half), 0.6, 0.2 + 0.4 * (1 - half), 0.2, 0.2]
    assert [s.lr(k // 3, k) for k in range(8)] == pytest.approx(expected, abs=1e-12)


def test_plateau_cuts_when_no_improvement():
    s = build({"type": "plateau", "factor": 0.25})
    lrs = []
    for epoch, loss in enumerate([5.0, 4.0, 4.0, 3.0, 3.5, 2.0]):
        lrs.append(s.lr(epoch, 0))
        s.observe(epoch, loss)
    lrs.append(s.lr(6, 0))
    # epoch 2 does not improve on 4.0 (equal is no better) -> /4; epoch 4 worse than 3.0 -> /4
    assert lrs == [1, 1, 1, 0.25, 0.25, 0.0625, 0.0625]


def test_plateau_patience_min_lr_and_nan():
    s = build({"type": "plateau", "factor": 0.5, "patience": 1, "min_lr": 0.3})
    after = []
    for epoch, loss in enumerate([2.0, 2.5, 2.4, 3.0, float("nan"), 1.0]):
        s.observe(epoch, loss)
        after.append(s.lr(epoch + 1, 0))
    # 2.5: 1 bad (patience 1) keep; 2.4: 2 bad -> 0.5, count restarts; 3.0: 1 bad;
    # nan: 2 bad -> max(0.3, 0.25) = 0.3; 1.0 improves
    assert after == [1, 1, 0.5, 0.5, 0.3, 0.3]
    assert s.state_dict() == {"lr": 0.3, "best": 1.0, "bad_epochs": 0}


def test_plateau_state_round_trip():
    s = build({"type": "plateau", "patience": 2})
    for epoch, loss in enumerate([3.0, 2.0, 2.5]):
        s.observe(epoch, loss)
    state = json.loads(json.dumps(s.state_dict()))  # checkpoints keep it as JSON
    resumed = build({"type": "plateau", "patience": 2})
    resumed.load_state_dict(state)
    for epoch, loss in enumerate([2.6, 2.7, 2.8, 1.0], start=3):
        for schedule in (s, resumed):
            schedule.observe(epoch, loss)
        assert resumed.lr(epoch + 1, 0) == s.lr(epoch + 1, 0)
    assert resumed.state_dict() == s.state_dict() == {"lr": 0.25, "best": 1.0, "bad_epochs": 0}


def test_fresh_plateau_state_is_json():
    assert json.loads(json.dumps(build({"type": "plateau"}).state_dict())) == {
        "lr": 1.0, "best": None, "bad_epochs": 0}


@pytest.mark.parametrize("state, key", [
    ({"lr": 1.0, "best": None}, "bad_epochs"),
    ({"lr": 1.0, "best": None, "bad_epochs": 0, "extra": 1}, "extra"),
])
def test_plateau_load_mismatch_names_the_key(state, key):
    with pytest.raises(CheckpointError, match=f"'{key}'"):
        build({"type": "plateau"}).load_state_dict(state)


def test_stateless_schedule_rejects_foreign_state():
    with pytest.raises(CheckpointError, match="'lr'"):
        build({"type": "cosine"}).load_state_dict({"lr": 1.0, "best": None, "bad_epochs": 0})
    build({"type": "cosine"}).load_state_dict({})


@pytest.mark.parametrize("cfg, message", [
    ({"type": "step", "factor": 0.0}, "factor must be a finite number > 0"),
    ({"type": "step", "every": 0}, "every must be >= 1"),
    ({"type": "step", "start": 0}, "start must be >= 1"),
    ({"type": "cosine", "min_lr": 2.0}, "min_lr must be in [0, base_lr = 1.0], got 2.0"),
    ({"type": "cosine", "warmup_steps": 40}, "warmup_steps must be in [0, 40)"),
    ({"type": "plateau", "factor": 4.0},
     "factor must be in (0, 1): the lr is multiplied by it (0.25 divides by 4), got 4.0"),
    ({"type": "plateau", "patience": -1},
     "patience must be >= 0 (bad epochs tolerated before a cut), got -1"),
    ({"type": "plateau", "min_lr": -1.0}, "min_lr must be a finite number >= 0, got -1.0"),
])
def test_invalid_values_are_config_errors(cfg, message):
    key, rest = message.split(" ", 1)  # the error names the dotted key: "schedule.factor: must be ..."
    with pytest.raises(ConfigError, match=re.escape(f"schedule.{key}: {rest}")):
        build(cfg)


def test_bad_extras_are_rejected():
    with pytest.raises(ConfigError, match="steps_per_epoch must be >= 1, got 0"):
        build({"type": "constant"}, steps_per_epoch=0)
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0"):
        build({"type": "cosine"}, epochs=0)
