"""Hostile use: writing outputs respects what the output path names.

`export -o` (both formats) and `plot -o` into: a character device (/dev/null stays the
device), a FIFO (written through, still a FIFO), a symlink (its target is replaced, the
link stays), a folder, a path under a file or a missing read-only place (one line naming
the path, never a temporary file), an existing file (its mode kept) and new files under
several umasks (0666 less the umask, as any tool would make them).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from hostile_cli import assert_one_error_line, run_batch, train_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    return tuple(train_runs(root, "w2v", "toy"))


def commands(w2v, toy, target):
    return [["export", w2v, "--format", "word2vec", "-o", target], ["export", w2v, "--format", "npy", "-o", target],
            ["plot", toy, "-o", target]]


def reader(fifo, sink):
    with open(fifo, "rb") as handle:
        sink.append(handle.read())


def test_outputs_respect_devices_fifos_links_and_modes(runs, tmp_path):
    pytest.importorskip("matplotlib")
    w2v, toy = runs
    planned = []  # (case, check)
    for args in commands(w2v, toy, "/dev/null")[:2]:
        planned.append(({"args": args}, ("ok", None)))
    for i, base in enumerate(["vec.txt", "vec.npy", "curves.png"]):
        umasks = (0o022, 0o077, 0o002, 0o027) if i < 2 else ()  # plot: drawing is slow, fewer cases
        real = tmp_path / f"real-{base}"
        real.write_bytes(b"old")
        link = tmp_path / f"link-{base}"
        link.symlink_to(real)
        args = commands(w2v, toy, link)[i]
        planned.append(({"args": args}, ("link", (link, real))))
        kept = tmp_path / f"kept-{base}"
        kept.write_bytes(b"old")
        os.chmod(kept, 0o644)
        planned.append(({"args": commands(w2v, toy, kept)[i]}, ("mode", (kept, 0o644))))
        for umask in umasks:
            new = tmp_path / f"new-{umask:o}-{base}"
            planned.append(({"args": commands(w2v, toy, new)[i], "umask": umask}, ("mode", (new, 0o666 & ~umask))))
        folder = tmp_path / f"dir-{base}"
        folder.mkdir()
        planned.append(({"args": commands(w2v, toy, folder)[i]}, ("error", folder)))
        under_file = real / "x" / base
        if i < 2:
            planned.append(({"args": commands(w2v, toy, under_file)[i]}, ("error", under_file)))
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    if os.geteuid() != 0:  # root writes anywhere
        for args in commands(w2v, toy, locked / "out.bin"):
            planned.append(({"args": args}, ("error", locked / "out.bin")))
    results = run_batch([case for case, _ in planned])
    for (case, (kind, detail)), result in zip(planned, results):
        if kind == "error":
            line = assert_one_error_line(result, 1, str(detail))
            assert ".tmp" not in line, line
            continue
        assert result.code == 0, str(result)
        if kind == "ok":
            assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
        elif kind == "link":
            link, real = detail
            assert link.is_symlink() and real.read_bytes() != b"old", str(result)
        elif kind == "mode":
            path, mode = detail
            assert stat.S_IMODE(path.stat().st_mode) == mode, (oct(path.stat().st_mode), oct(mode), str(result))
    assert not list(tmp_path.rglob(".*.tmp"))
    assert len(planned) >= 18


def test_a_fifo_is_written_through(runs, tmp_path):
    w2v, toy = runs
    cases, sinks, threads = [], [], []
    for i, args in enumerate(commands(w2v, toy, None)[:2]):
        fifo = tmp_path / f"pipe{i}{'.npy' if i else ''}"  # npy adds .npy to a name without it
        os.mkfifo(fifo)
        sink = []
        thread = threading.Thread(target=reader, args=(fifo, sink), daemon=True)
        thread.start()
        sinks.append(sink), threads.append(thread)
        cases.append({"args": [*args[:-1], fifo]})
    results = run_batch(cases)
    for result, sink, thread, i in zip(results, sinks, threads, range(2)):
        thread.join(10)
        assert result.code == 0, str(result)
        assert sink and len(sink[0]) > 10 and stat.S_ISFIFO(Path(cases[i]["args"][-1]).stat().st_mode)
