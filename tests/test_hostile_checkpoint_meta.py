"""Hostile use: a checkpoint's meta record is covered by its checksum and validated.

Hypothesis edits one field of the meta record (any field, any kind of value) of a real
run's checkpoints. In the current format the checksum catches every edit: `eval` and
`--resume` are exit 4 with one line, and the run folder is unchanged. A checkpoint in the
old format 1 (checksum over the arrays only) still loads and resumes; an edit there that
breaks the schema is exit 4 too, never a traceback.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import TOY, assert_one_error_line, few, only_run, run_batch, tree_digest, write_yaml
from nnctl import checkpoint

VALUES = [None, "x", -1, 1.5, [], {}, True, 10**30, {"type": "mlp"}, [1, 2], "valid"]


def read(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return arrays, json.loads(arrays.pop("meta").tobytes().decode())


def write(path, arrays, meta):
    np.savez(path, **arrays, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def as_format_1(meta, arrays):
    """The meta as nnctl wrote it before format 2: the checksum over the arrays only."""
    return {**meta, "format_version": 1, "checksum": checkpoint.checksum(arrays)}


def paths(meta, prefix=()):
    for key, value in meta.items():
        if key in ("checksum", "format_version"):
            continue
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths(value, (*prefix, key))


def edited(meta, path, value):
    meta = json.loads(json.dumps(meta))
    node = meta
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return meta


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    config = write_yaml(root / "toy.yaml", {**TOY, "model": {"type": "toy_softmax", "dropout": 0.1}})
    (result,) = run_batch([{"args": ["train", config, "--runs-dir", root / "runs", "-q"]}])
    assert result.code == 0, str(result)
    return root, only_run(root / "runs")


def copy_run(run, target):
    shutil.copytree(run, target)
    return target


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_an_edited_meta_is_caught(rand, trained, tmp_path_factory):
    edits = [(rand.randrange(10**6), rand.choice(VALUES)) for _ in range(25)]
    root, run = trained
    tmp = tmp_path_factory.mktemp("edits")
    arrays, meta = read(run / "checkpoints" / "last.npz")
    fields = sorted(paths(meta))
    planned = []
    edits = [(("config", "data", "type"), "toy_blobs2"), (("progress", "epoch"), "1")] + \
            [(fields[i % len(fields)], value) for i, value in edits]
    for i, (field, value) in enumerate(edits):
        if edited(meta, field, value) == meta:
            continue  # the field already held that value: not an edit
        for fmt in (2, 1):
            folder = copy_run(run, tmp / f"{i}-{fmt}")
            changed = edited(meta, field, value)
            if fmt == 1:  # the old format: hashed as it was, then edited
                changed = edited(as_format_1(meta, arrays), field, value)
            for which in ("best", "last"):
                write(folder / "checkpoints" / f"{which}.npz", arrays, changed)
            planned.append((folder, fmt, field, {"args": ["eval", folder]}))
            planned.append((folder, fmt, field, {"args": ["train", "--resume", folder, "--set", "train.epochs=4"]}))
    before = {folder: tree_digest(folder) for folder, *_ in planned}
    results = run_batch([case for *_, case in planned])
    for (folder, fmt, field, case), result in zip(planned, results):
        if fmt == 2:
            assert_one_error_line(result, 4, "checksum mismatch")
            assert tree_digest(folder) == before[folder], (field, str(result))
        elif result.code in (2, 4, 5):  # format 1: an edit the schema refuses changes nothing
            assert_one_error_line(result, result.code)
            assert tree_digest(folder) == before[folder], (field, str(result))
        else:  # format 1 cannot tell a valid edit: it trains (and may diverge: exit 1), never a traceback
            assert result.code in (0, 1) and "Traceback" not in result.stderr, str(result)
            assert result.code == 0 or len(result.stderr.strip().splitlines()) == 1, str(result)
    assert len(planned) >= 80


def test_the_test_split_pointed_elsewhere_is_caught_and_format_1_still_works(trained, tmp_path):
    """The motivating case (meta edited so `eval --split test` would read other data) is exit 4;
    a checkpoint in format 1 evaluates and resumes, and is written back in the current format."""
    _, run = trained
    edited_run = copy_run(run, tmp_path / "run")
    arrays, meta = read(edited_run / "checkpoints" / "best.npz")
    write(edited_run / "checkpoints" / "best.npz", arrays, edited(meta, ("config", "data", "size"), 7))
    old = copy_run(run, tmp_path / "old")
    for which in ("best", "last"):
        arrays, meta = read(old / "checkpoints" / f"{which}.npz")
        write(old / "checkpoints" / f"{which}.npz", arrays, as_format_1(meta, arrays))
    caught, evaluated, resumed = run_batch([
        {"args": ["eval", edited_run, "--split", "test"]}, {"args": ["eval", old]},
        {"args": ["train", "--resume", old, "--set", "train.epochs=3", "-q"]}])
    assert_one_error_line(caught, 4, "checksum mismatch", "meta record")
    assert evaluated.code == 0 and "accuracy" in evaluated.stdout, str(evaluated)
    assert resumed.code == 0, str(resumed)
    assert read(old / "checkpoints" / "last.npz")[1]["format_version"] == checkpoint.FORMAT_VERSION
