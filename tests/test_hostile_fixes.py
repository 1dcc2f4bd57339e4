"""Hostile use: the fix an error line suggests is one that works.

- `--resume runs/<name>` (a folder of runs, not a run) says to give a run folder and names
  the latest one; following that suggestion resumes.
- A `last.npz` damaged in any way (cut at any byte, bytes flipped anywhere, emptied)
  makes `--resume` say to start the run again from its config.yaml, never "use another
  checkpoint", which --resume cannot do; the suggested command works, and nothing in the
  run folder changed before.
"""

from __future__ import annotations

import shlex
import shutil

from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import TOY, assert_one_error_line, few, only_run, run_batch, tree_digest, write_yaml


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_suggested_fixes_work(rand, tmp_path_factory):
    root = tmp_path_factory.mktemp("fixes")
    config = write_yaml(root / "toy.yaml", TOY)
    (trained,) = run_batch([{"args": ["train", config, "--runs-dir", root / "runs", "-q"]}])
    assert trained.code == 0, str(trained)
    run = only_run(root / "runs")
    size = (run / "checkpoints" / "last.npz").stat().st_size
    damaged = []
    for i in range(24):
        folder = root / "copies" / f"{i:02d}"
        shutil.copytree(run, folder)
        data = bytearray((folder / "checkpoints" / "last.npz").read_bytes())
        kind = rand.choice(["cut", "flip", "empty"]) if i else "cut"
        if kind == "cut":
            data = data[:rand.randrange(size)]
        elif kind == "flip":
            for _ in range(rand.randint(1, 8)):
                data[rand.randrange(size)] ^= 1 << rand.randrange(8)
        else:
            data = bytearray()
        (folder / "checkpoints" / "last.npz").write_bytes(bytes(data))
        damaged.append(folder)
    before = {folder: tree_digest(folder) for folder in damaged}
    cases = [{"args": ["train", "--resume", root / "runs" / "toy"]}]
    cases += [{"args": ["train", "--resume", folder]} for folder in damaged]
    results = run_batch(cases)
    line = assert_one_error_line(results[0], 2, "folder of runs", str(run))
    follow = [{"args": ["train", "--resume", line.rsplit("--resume ", 1)[1], "--set", "train.epochs=3", "-q"]}]
    for folder, result in zip(damaged, results[1:]):
        if result.code == 0:  # a flipped bit in zip padding the checksum does not cover: still a valid file
            continue
        line = assert_one_error_line(result, 4, "start it again with `nnctl train")
        assert "use another checkpoint" not in line, line
        assert tree_digest(folder) == before[folder], str(result)
        suggested = line.split("`")[1]
        assert suggested == f"nnctl train {folder / 'config.yaml'}", line
        follow.append({"args": [*shlex.split(suggested)[1:], "--runs-dir", root / "again", "-q"]})
    followed = run_batch(follow[:2])
    for result in followed:
        assert result.code == 0, str(result)
    assert len(cases) == 25
