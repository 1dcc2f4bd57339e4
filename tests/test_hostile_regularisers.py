"""Hostile use of issue 14's keys: dropout rates outside [0, 1), negative AR/TAR, NT-ASGD's
nonmono < 1, AdamW with a negative decay, weight drop on a model without a recurrent matrix,
variable-length windows that do not fit: each is one line naming the key, exit 2, and no run
folder; all but the last (which only the data can tell) before any data is read. (A resumed
run cannot take them at all: it keeps its experiment.)"""

from __future__ import annotations

from hostile_cli import TOY, assert_one_error_line, lm_config, run_batch, write_yaml


def test_bad_values_are_one_line_naming_the_key_before_any_data(tmp_path):
    """The data files do not exist: a check that came after reading them would exit 3 instead."""
    lm = lm_config(tmp_path)
    lm["data"].update({"train": str(tmp_path / "no/train.txt"), "valid": str(tmp_path / "no/valid.txt"),
                       "test": str(tmp_path / "no/test.txt")})
    config = write_yaml(tmp_path / "lm.yaml", lm)
    toy = write_yaml(tmp_path / "toy.yaml", TOY)
    runs = tmp_path / "runs"
    cases = [(config, f"model.{key}={value}", f"model.{key}") for key in
             ("dropout", "dropout_input", "dropout_between", "dropout_output", "embedding_dropout", "weight_drop")
             for value in (1.0, -0.1, 1.5)]
    cases += [
        (config, "model.activation_reg=-1", "model.activation_reg"),
        (config, "model.temporal_activation_reg=-0.5", "model.temporal_activation_reg"),
        (config, "optimizer.type=ntasgd --set optimizer.nonmono=0", "optimizer.nonmono"),
        (config, "optimizer.type=adamw --set optimizer.weight_decay=-0.01", "optimizer.weight_decay"),
        (config, "data.variable_bptt=true --set data.min_bptt=9", "data.min_bptt"),
        (config, "data.variable_bptt=true --set data.max_bptt=2", "data.max_bptt"),
        (toy, "model.weight_drop=0.5", "model.weight_drop"),  # a model with no recurrent matrix has no such key
    ]
    sets = [[arg for s in given.split(" --set ") for arg in ("--set", s)] for _, given, _ in cases]
    results = run_batch([{"args": ["train", path, "--runs-dir", runs, *extra]} for (path, _, _), extra in zip(cases, sets)])
    for (_, _, key), result in zip(cases, results):
        assert_one_error_line(result, 2, key)
    assert not runs.exists()


def test_variable_windows_longer_than_the_data_are_refused_before_any_run_folder(tmp_path):
    config = write_yaml(tmp_path / "lm.yaml", lm_config(tmp_path))  # 2 streams of 42 tokens, bptt 3
    runs = tmp_path / "runs"
    results = run_batch([{"args": ["train", config, "--runs-dir", runs, "--set", "data.variable_bptt=true",
                                   *extra]} for extra in ([], ["--set", "data.max_bptt=1000"])])
    line = assert_one_error_line(results[0], 2, "data.max_bptt", "bptt + 40")
    assert_one_error_line(results[1], 2, "data.max_bptt: 1000 is longer than the train split allows")
    assert "data.variable_bptt" in line
    assert not runs.exists()
