"""Hostile use: inputs without end, and sizes checked before anything is allocated.

Devices that never end (/dev/zero, /dev/urandom) as a config, a corpus or an evaluation
file; a config too large; `generate` asked for billions of words; a CBOW window of 10^k;
checkpoints whose array headers claim shapes of terabytes (hypothesis draws the shapes
and the member). Each one is its documented exit code and one line, at once, and a
damaged checkpoint is exit 4 whatever is wrong inside it.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import assert_one_error_line, cbow_config, few, lm_config, run_batch, train_runs, write_yaml


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sizes")
    return root, *train_runs(root, "w2v", "lm")


def forge(source, target, member: str, shape: tuple, dtype: str = "<f4") -> None:
    """A copy of checkpoint `source` whose `member` has a header claiming `shape` (its data unchanged)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == f"{member}.npy":
                stream = io.BytesIO(data)
                version = np.lib.format.read_magic(stream)
                (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(stream)
                body = data[stream.tell():]
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False,
                                                              "shape": shape})
                data = header.getvalue() + body
            new.writestr(info.filename, data)


def huge_shape(rand) -> list[int]:
    while True:
        shape = [rand.choice([1, 7, 2**10, 2**16, 2**20, 2**31, rand.randint(1, 2**31)])
                 for _ in range(rand.randint(1, 4))]
        if np.prod(shape, dtype=float) > 1e6:
            return shape


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_endless_inputs_and_huge_sizes_are_one_line(rand, runs, tmp_path_factory):
    shapes = [(huge_shape(rand), rand.choice(["model/W", "meta", "vocab", "vocab_counts"])) for _ in range(12)]
    windows = rand.sample(range(3, 10), 4)
    root, w2v, lm = runs
    tmp = tmp_path_factory.mktemp("forged")
    big = tmp / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    planned = []
    for device in ("/dev/zero", "/dev/urandom"):
        planned += [
            (["config", "show", device], 2, device),
            (["train", write_yaml(tmp / f"{device[5:]}.yaml", {**lm_config(tmp), "data": {
                **lm_config(tmp)["data"], "train": device}}), "--runs-dir", tmp / "runs"], 3, device),
            (["eval", w2v, "--analogies", device], 3, device),
            (["eval", w2v, "--similarity", device], 3, device),
        ]
    planned.append((["config", "show", big], 2, "more than a config file can hold"))
    for length in (10**7, 10**9, 10**18):
        planned.append((["generate", lm, "--length", length], 2, "--length"))
    planned.append((["generate", lm, "--length", 10**6, "--num-samples", 1000], 2, "--length"))
    planned.append((["eval", lm, "--batch-size", 10**12], 3, "batch size"))
    for exponent in windows:
        cfg = cbow_config(tmp)
        cfg["data"]["window"] = 10**exponent
        planned.append((["train", write_yaml(tmp / f"w{exponent}.yaml", cfg), "--runs-dir", tmp / "runs"],
                        3, f"window {10**exponent}"))
    for i, (shape, member) in enumerate(shapes):
        source = (w2v if member.startswith("vocab") else lm) / "checkpoints" / "best.npz"
        if member == "model/W":
            with zipfile.ZipFile(source) as archive:  # a real array of that checkpoint
                member = next(n[:-4] for n in archive.namelist() if n.startswith("model/"))
        forged = tmp / f"{i}.npz"
        forge(source, forged, member, tuple(shape))
        planned.append((["eval", forged], 4, str(forged)))
    forge(lm / "checkpoints" / "best.npz", tmp / "object.npz", "meta", (3,), dtype="|O")
    planned.append((["eval", tmp / "object.npz"], 4, "object.npz"))
    results = run_batch([{"args": args} for args, _, _ in planned])
    for (_, code, expected), result in zip(planned, results):
        assert_one_error_line(result, code, expected)
        assert "out of memory" not in result.stderr and result.seconds < 5, str(result)
    assert not (tmp / "runs").exists()
    assert len(planned) >= 30
