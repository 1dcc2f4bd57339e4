"""Hostile use: `runs`, `compare` and `plot` read run folders that others may have touched.

Beside a good run, generated damaged runs: metrics lines that are not records (lists,
strings, numbers, nested objects, strings or huge integers where numbers belong, cut
lines, bytes that are not UTF-8), a status.json that is a list, a string or nested, a
config whose sections are numbers, lists, YAML bombs or duplicate keys. The table is
always drawn (exit 0) with every run in it; `compare` and `plot` either draw or say in
one line why a run has nothing to draw.
"""

from __future__ import annotations

import json
import shutil

from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import TOY, assert_one_error_line, few, only_run, run_batch, write_yaml

BAD_LINES = ['[1, 2]', '"text"', '3', 'null', '{"split": 5}', '{"epoch": "1", "step": 1, "split": "train"}',
             '{"epoch": 1, "step": 1, "split": "valid", "loss": "low"}',
             '{"epoch": 1, "step": 1, "split": "train", "loss": ' + "9" * 400 + '}',
             '{"epoch": true, "step": 1, "split": "train", "loss": 1}', '{"epoch": 1, "step": 1, "split": "valid", '
             '"accuracy": [0.5]}', '{"epoch": 1', "[" * 5000 + "]" * 5000, '{"epoch": 1, "step": 1, "split": '
             '"valid", "lr": {"a": 1}}', '{"epoch": 1, "step": 1, "split": "train", "loss": NaN, "lr": Infinity}']
BAD_STATUS = ['[1, 2]', '"finished"', '3', '{"state": ["x"]}', '{"state": 5}', 'not json', '{"state": "' + "x" * 500 + '"}']
BAD_CONFIG = ["model: 5\ndata: [1]\n", "7\n", "- a\n- b\n", "model: {type: 5}\n", "a: 1\na: 2\n",
              "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
                  f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 8)),
              "{" * 3000, "model: !!python/name:os.system\n"]


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_damaged_run_folders_never_crash_the_table(rand, tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    runs = root / "runs"
    (trained,) = run_batch([{"args": ["train", write_yaml(root / "toy.yaml", TOY), "--runs-dir", runs, "-q"]}])
    assert trained.code == 0, str(trained)
    good = only_run(runs)
    damaged = []
    for i in range(12):
        folder = runs / "toy" / f"damaged-{i:02d}"
        shutil.copytree(good, folder)
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        for _ in range(rand.randint(1, 4)):
            lines.insert(rand.randint(0, len(lines)), rand.choice(BAD_LINES))
        if rand.random() < 0.3:
            lines = [rand.choice(BAD_LINES) for _ in lines]  # nothing usable left
        (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        if rand.random() < 0.3:
            with open(folder / "metrics.jsonl", "ab") as handle:
                handle.write(b"\xff\xfe{not utf-8\n")
        if rand.random() < 0.6:
            (folder / "status.json").write_text(rand.choice(BAD_STATUS))
        if rand.random() < 0.6:
            (folder / "config.yaml").write_text(rand.choice(BAD_CONFIG))
        damaged.append(folder)
    cases = [{"args": ["runs", runs]}, {"args": ["runs", runs / "toy"]}]
    cases += [{"args": ["compare", good, folder]} for folder in damaged]
    cases += [{"args": ["compare", *damaged[:6]]}, {"args": ["compare", *damaged[6:]]}]
    for folder in damaged[:1]:  # drawing is slow: one
        cases.append({"args": ["plot", good, folder, "-o", root / f"{folder.name}.png"]})
    results = run_batch(cases)
    for result in results[:2]:
        assert result.code == 0 and "Traceback" not in result.stderr, str(result)
        for folder in damaged:
            assert folder.name in result.stdout, (folder.name, result.stdout)
    for result in results[2:]:
        if result.code == 0:
            assert "Traceback" not in result.stderr and not result.stderr.strip(), str(result)
        else:
            assert_one_error_line(result, 1, "no train/valid metrics")
    assert json.loads((good / "status.json").read_text())["state"] == "finished"
    assert len(cases) >= 15
