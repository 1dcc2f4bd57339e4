"""Hostile input: every malformed experiment ends in one error line and exit code 2.

Hypothesis generates configs (random YAML text, random values at every key, Python
object tags); the loader must either accept them or raise ConfigError: never another
exception, never a traceback, never a run directory.
"""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import TOY_CONFIG
from nnctl import config as config_mod
from nnctl.cli import app
from nnctl.errors import ConfigError

runner = CliRunner(env={"COLUMNS": "200"})

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(string.printable, max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(string.ascii_letters, max_size=8),
                                                                       inner, max_size=3)), max_leaves=6)
KEYS = [("data", "batch_size"), ("data", "size"), ("data", "type"), ("model", "scale"), ("model", "dropout"),
        ("model", "type"), ("optimizer", "lr"), ("optimizer", "type"), ("optimizer", "momentum"),
        ("schedule", "type"), ("schedule", "factor"), ("train", "epochs"), ("train", "clip_grad_norm"),
        ("train", "on_nonfinite"), ("seed", None), ("name", None), ("train", "unknown_key")]

def check_loader(raw) -> None:
    """The loader accepts `raw` or raises ConfigError with a one-line message."""
    try:
        config_mod.resolve(raw, "hostile.yaml")
    except ConfigError as error:
        assert "\n" not in str(error) and str(error).startswith("hostile.yaml"), str(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=values)
def test_any_value_at_any_key_is_accepted_or_one_config_error(key, value):
    raw = yaml.safe_load(yaml.safe_dump(TOY_CONFIG))
    section, name = key
    if name is None:
        raw[section] = value
    else:
        raw.setdefault(section, {})[name] = value
    check_loader(raw)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_random_yaml_text_never_escapes_as_another_exception(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        config_mod.load(path)
    except ConfigError as error:
        assert "\n" not in str(error)


@settings(max_examples=100, deadline=None)
@given(section=st.sampled_from(["data", "model", "optimizer", "train", "seed"]),
       tag=st.sampled_from(["!!python/object/apply:os.system ['true']", "!!python/name:os.system",
                            "!!python/object:collections.OrderedDict {}", "!!binary aGVsbG8=",
                            "!!set {a, b}", "&a [*a]"]))
def test_yaml_tags_never_build_python_objects(section, tag, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "hostile.yaml"
    path.write_text(yaml.safe_dump(TOY_CONFIG) + f"\n{section}_x: {tag}\n")
    with pytest.raises(ConfigError):
        config_mod.load(path)


# Named cases through the real CLI: exit 2, one line, no run directory.
CASES = {
    "zero batch size": {"data": {"type": "toy_blobs", "batch_size": 0}},
    "negative batch size": {"data": {"type": "toy_blobs", "batch_size": -5}},
    "lr zero": {"optimizer": {"type": "sgd", "lr": 0}},
    "lr negative": {"optimizer": {"type": "adam", "lr": -0.001}},
    "dropout one": {"model": {"type": "toy_softmax", "dropout": 1.0}},
    "bool for float": {"optimizer": {"type": "sgd", "lr": True}},
    "list for int": {"train": {"epochs": [1, 2]}},
    "unknown optimizer": {"optimizer": {"type": "adamax", "lr": 0.1}},
    "unknown schedule": {"schedule": {"type": "cosne"}},
    "schedule without type": {"schedule": {"factor": 0.5}},
    "section not a mapping": {"model": "toy_softmax"},
    "negative seed": {"seed": -1},
    "bad name": {"name": "../escape"},
    "nonfinite policy": {"train": {"on_nonfinite": "ignore"}},
    "device": {"device": "tpu"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_named_hostile_configs_exit_2_with_one_line(case, tmp_path):
    raw = {**yaml.safe_load(yaml.safe_dump(TOY_CONFIG)), **CASES[case]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, (case, result.output)
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
