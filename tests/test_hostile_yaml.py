"""Hostile use: YAML that is not what it looks like.

Generated files: a key given twice (at any level, any distance apart), nesting past the
limit (lists, flow and block mappings), alias bombs of any fan-out, aliases that loop,
and keys that are numbers, nulls, booleans, lists or mappings. Each one, through
`config show`, `train` and `--set`, is exit 2 with one line naming the line and the
problem, within a second, and no run folder.
"""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from hostile_cli import TOY, assert_one_error_line, few, run_batch, write_yaml

import yaml

TOY_TEXT = yaml.safe_dump(TOY, sort_keys=False)
SECTIONS = ["data", "model", "optimizer", "train"]


def duplicate_key(section: str, gap: int) -> tuple[str, str]:
    """TOY with one key of `section` written twice, `gap` other keys apart."""
    lines = [f"{section}:", "  type: x" if section != "train" else "  epochs: 1"]
    key = lines[1].split(":")[0].strip()
    lines += [f"  k{i}: {i}" for i in range(gap)] + [f"  {key}: again"]
    other = {k: v for k, v in TOY.items() if k != section}
    return yaml.safe_dump(other, sort_keys=False) + "\n".join(lines) + "\n", f"duplicate key '{key}'"


def deep(kind: str, depth: int) -> tuple[str, str]:
    if kind == "flow list":
        value = "[" * depth + "]" * depth
    elif kind == "flow map":
        value = "{a: " * depth + "1" + "}" * depth
    else:  # block mappings, one level per line (600 levels: the file stays under the 1 MiB limit)
        depth = min(depth, 600)
        value = "\n" + "".join("  " * (i + 1) + "a:\n" for i in range(depth - 1)) + "  " * depth + "a: 1"
    return TOY_TEXT + f"train_extra: {value}\n", "levels"


def bomb(fanout: int, levels: int) -> tuple[str, str]:
    lines = [f"l0: &l0 [{', '.join(['x'] * fanout)}]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]")
    return "\n".join(lines) + "\n" + TOY_TEXT, "aliases expand"


def loop(depth: int) -> tuple[str, str]:
    return TOY_TEXT + "extra: &a " + "[" * depth + "*a" + "]" * depth + "\n", "loop"


def odd_key(key: str, section: str) -> tuple[str, str]:
    other = yaml.safe_dump({k: v for k, v in TOY.items() if k != section}, sort_keys=False)
    return other + f"{section}:\n  {key}: 1\n", "key"


KEYS = ["1", "2.5", "null", "~", "true", "no", "[a, b]", "{a: 1}", "? [x]\n  ", "0x1F", "2026-12-01"]


def files(draw_dupes, draw_depths, draw_bombs, draw_loops):
    out = []
    for section, gap in draw_dupes:
        out.append(duplicate_key(section, gap))
    for kind, depth in draw_depths:
        out.append(deep(kind, depth))
    for fanout, levels in draw_bombs:
        out.append(bomb(fanout, levels))
    for depth in draw_loops:
        out.append(loop(depth))
    for i, key in enumerate(KEYS):
        out.append(odd_key(key, SECTIONS[i % len(SECTIONS)]))
    return out


@few(1)
@given(rand=st.randoms(use_true_random=True))
def test_yaml_that_is_not_what_it_looks_like_is_one_line(rand, tmp_path_factory):
    dupes = [(rand.choice(SECTIONS), rand.randint(0, 30)) for _ in range(8)]
    depths = [(rand.choice(["flow list", "flow map", "block"]), rand.randint(65, 3000)) for _ in range(8)]
    bombs = []
    while len(bombs) < 8:  # fanout ** (levels + 1) values once expanded
        fanout, levels = rand.randint(3, 12), rand.randint(6, 12)
        if fanout ** (levels + 1) > 200_000:
            bombs.append((fanout, levels))
    loops = [rand.randint(1, 20) for _ in range(4)]
    root = tmp_path_factory.mktemp("yaml")
    cases, expected = [], []
    for i, (text, what) in enumerate(files(dupes, depths, bombs, loops)):
        path = root / f"{i}.yaml"
        path.write_text(text)
        cases.append({"args": ["config", "show", path]})
        cases.append({"args": ["train", path, "--runs-dir", root / "runs"]})
        expected += [(path, what)] * 2
    toy = write_yaml(root / "toy.yaml", TOY)
    for text, what in [("{a: 1, a: 2}", "duplicate key 'a'"), ("&a [*a]", "loop"), ("{1: x}", "key '1'"),
                       ("[" * 100 + "]" * 100, "levels"), ("!!python/name:os.system", "tag not allowed")]:
        cases.append({"args": ["train", toy, "--runs-dir", root / "runs", "--set", f"model.scale={text}"]})
        expected.append(("--set", what))
    started = time.perf_counter()
    results = run_batch(cases)
    for (where, what), result in zip(expected, results):
        line = assert_one_error_line(result, 2, str(where), what)
        assert where == "--set" or " line " in line, line  # the place in the file is named
        assert result.seconds < 2, (result.seconds, str(result))  # an alias bomb is refused, not expanded
    assert not (root / "runs").exists()
    assert len(cases) >= 80 and time.perf_counter() - started < 60


def test_what_is_allowed_still_loads(tmp_path):
    """Anchors, aliases and merge keys within the limits, and quoted numeric keys, are fine."""
    text = TOY_TEXT.replace("optimizer:\n", "optimizer: &opt\n") + \
        "schedule: {<<: {type: step}, factor: 0.5}\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    (result,) = run_batch([{"args": ["config", "show", path]}])
    assert result.code == 0 and "factor: 0.5" in result.stdout, str(result)
