"""Helpers for the hostile-input tests (tests/test_hostile_*.py): the real CLI, many cases per child.

`run_batch` starts one child Python that runs `nnctl ARGS` once per case, exactly as the
`nnctl` script does (`nnctl.cli.main()` with `sys.argv` set), and reports each case's exit
code, stdout and stderr; a traceback that escapes is caught and reported as exit -1. One
child per batch keeps a hundred cases to about a second. Cases that need a process of
their own (locks, signals, pipes) use `nnctl_process`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from hypothesis import HealthCheck, Phase, settings

TESTS = Path(__file__).parent


def few(examples: int):
    """Hypothesis settings for tests whose every example is a batch of CLI runs: few examples,
    no shrinking (a failing batch is printed whole), no deadline."""
    return settings(max_examples=examples, deadline=None, database=None,
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_DRIVER = r"""
import io, json, os, resource, signal, sys, time, traceback
sys.path.insert(0, %(tests)r)
import toyparts
import typer.main
from nnctl.cli import main

# Typer turns the app into Click commands on every call; a real `nnctl` makes one call, so
# the child builds them once for all its cases (the commands themselves run unchanged).
_commands = {}
_get_command = typer.main.get_command
typer.main.get_command = lambda app: _commands.setdefault(id(app), _get_command(app))

cases = json.loads(sys.stdin.read())
results = []
real_stdout, real_stderr, real_cwd = sys.stdout, sys.stderr, os.getcwd()
fsize = resource.getrlimit(resource.RLIMIT_FSIZE)
inside = [False]  # a timed Ctrl-C ("sigint_after") reaches only the command, never the driver


def ctrl_c(signum, frame):
    handler = signal.getsignal(signal.SIGINT)
    if inside[0] and callable(handler):
        handler(signal.SIGINT, frame)  # exactly what a SIGINT arriving now would run


signal.signal(signal.SIGALRM, ctrl_c)
for case in cases:
    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    os.environ.update(case.get("env", {}))
    old_umask = os.umask(case["umask"]) if "umask" in case else None
    if case.get("closed_stdout"):
        r, w = os.pipe()
        os.close(r)
        out = os.fdopen(w, "w", buffering=1)
    sys.stdout, sys.stderr = out, err
    sys.argv = ["nnctl", *case["args"]]
    os.chdir(case.get("cwd", real_cwd))
    code = None
    started = time.perf_counter()
    try:
        if "fsize" in case:
            resource.setrlimit(resource.RLIMIT_FSIZE, (case["fsize"], fsize[1]))
        inside[0] = True
        if "sigint_after" in case:
            signal.setitimer(signal.ITIMER_REAL, case["sigint_after"])
        try:
            main()
            code = 0
        finally:
            inside[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            resource.setrlimit(resource.RLIMIT_FSIZE, fsize)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except KeyboardInterrupt:
        code = -2  # the timer fired after the command had returned
    except BaseException:
        traceback.print_exc(file=err)
        code = -1
    finally:
        sys.stdout, sys.stderr = real_stdout, real_stderr
        os.chdir(real_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        if old_umask is not None:
            os.umask(old_umask)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    stdout = "" if case.get("closed_stdout") else out.getvalue()
    if case.get("closed_stdout"):
        try:
            out.close()
        except OSError:
            pass
    results.append({"code": code, "stdout": stdout, "stderr": err.getvalue(),
                    "seconds": round(time.perf_counter() - started, 4)})
real_stdout.write(json.dumps(results))
"""


@dataclass
class Result:
    args: list
    code: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    def __str__(self):
        return f"nnctl {' '.join(map(str, self.args))} -> {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def run_batch(cases: list[dict], timeout: float = 120) -> list[Result]:
    """Each case: {"args": [...], optional "cwd", "env", "umask", "fsize", "sigint_after", "closed_stdout"}."""
    cases = [{**c, "args": [str(a) for a in c["args"]], **({"cwd": str(c["cwd"])} if "cwd" in c else {})} for c in cases]
    child = subprocess.run([sys.executable, "-c", _DRIVER % {"tests": str(TESTS)}], input=json.dumps(cases),
                           capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "COLUMNS": os.environ.get("COLUMNS", "200")})
    assert child.returncode == 0, child.stderr[-3000:]
    return [Result(c["args"], **r) for c, r in zip(cases, json.loads(child.stdout))]


def run_one(args: list, **case) -> Result:
    return run_batch([{"args": args, **case}])[0]


def nnctl_process(args: list, **popen_kwargs) -> subprocess.Popen:
    """`python3 -m nnctl ARGS` (toy parts importable) in a process of its own, for signals, locks, pipes."""
    code = ("import sys; sys.path.insert(0, %r); import toyparts; from nnctl.cli import main; "
            "sys.argv = ['nnctl'] + sys.argv[1:]; main()") % str(TESTS)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **popen_kwargs.pop("env", {})}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, text=True,
                            stdout=popen_kwargs.pop("stdout", subprocess.PIPE),
                            stderr=popen_kwargs.pop("stderr", subprocess.PIPE), **popen_kwargs)


def assert_one_error_line(result: Result, code: int, *expected: str) -> str:
    """The promise for every mistake: the documented exit code, one line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.code == code, str(result)
    assert len(lines) == 1, str(result)
    assert "Traceback" not in result.stderr + result.stdout and "internal error" not in result.stderr, str(result)
    for text in expected:
        assert text in lines[0], (text, str(result))
    return lines[0]


def tree_digest(folder: Path) -> dict[str, tuple]:
    """Every file and folder below `folder`: its content's sha256 and mode, to prove nothing changed."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        info = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        out[str(path.relative_to(folder))] = (content, info.st_mode)
    return out


TOY = {"name": "toy", "seed": 3, "data": {"type": "toy_blobs", "batch_size": 16},
       "model": {"type": "toy_softmax"}, "optimizer": {"type": "sgd", "lr": 0.5}, "train": {"epochs": 2}}
SENTENCES = "the cat sat on the mat\na dog ran to the cat\nthe mat sat on a dog\n"


def write_yaml(path: Path, cfg: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def text_data(folder: Path, repeat: int = 4, test_repeat: int | None = None) -> dict:
    """A tiny corpus in `folder` (train/valid/test.txt); returns the `data:` section's paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        times = test_repeat if split == "test" and test_repeat else repeat
        (folder / f"{split}.txt").write_text(SENTENCES * times)
    return {split: str(folder / f"{split}.txt") for split in ("train", "valid", "test")}


def lm_config(folder: Path, name: str = "lm", **train) -> dict:
    return {"name": name, "data": {"type": "text", **text_data(folder / "data"), "batch_size": 2, "bptt": 3},
            "model": {"type": "lstm_lm", "embed_dim": 4, "hidden_dim": 4, "num_layers": 1, "dropout": 0.0},
            "optimizer": {"type": "sgd", "lr": 1.0}, "train": {"epochs": 1, **train}}


def cbow_config(folder: Path, name: str = "w2v") -> dict:
    return {"name": name, "data": {"type": "text_cbow", **text_data(folder / "data"), "batch_size": 8, "window": 2},
            "model": {"type": "cbow", "vector_size": 4}, "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"epochs": 1}}


def only_run(runs_dir: Path) -> Path:
    (run,) = [p for p in Path(runs_dir).glob("*/*") if p.is_dir()]
    return run


def train_runs(root: Path, *kinds: str) -> list[Path]:
    """Train tiny runs of `kinds` ("w2v", "toy", "lm") in one child process; their run folders, in order."""
    configs = {"w2v": lambda: cbow_config(root), "toy": lambda: TOY, "lm": lambda: lm_config(root)}
    results = run_batch([{"args": ["train", write_yaml(root / f"{kind}.yaml", configs[kind]()), "--runs-dir",
                                   root / f"{kind}-runs", "-q"]} for kind in kinds])
    assert all(r.code == 0 for r in results), [str(r) for r in results]
    return [only_run(root / f"{kind}-runs") for kind in kinds]
