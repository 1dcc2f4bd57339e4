"""Sweeps: one experiment trained under several settings and seeds, then compared.

A sweep is planned whole before anything runs: the grid's cartesian product (or random
draws, as in the hyperparameter search of *Deep Learning from Scratch*, ch. 6), each
setting once per seed. Every trial's config is resolved first, so a wrong key stops the
sweep before any folder exists. Then

    runs/<name>/sweeps/<stamp>/
        sweep.yaml       the plan: each trial's setting, seed, overrides, run folder, state
        config.yaml      the experiment file as it was, which every trial starts from
        trial-03/<stamp>/   trial 3's run folder, an ordinary one (`nnctl eval` opens it)
        logs/trial-03.txt   what trial 3's process printed (its error line, if it failed)

Each trial is its own `nnctl train` process; `jobs` of them run at once, each with
cores / jobs BLAS threads, so the machine is never oversubscribed. A trial stopped by
Ctrl-C is an ordinary interrupted run; `resume` continues it exactly and starts the
trials that never began.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from nnctl import __version__
from nnctl import config as config_mod
from nnctl.errors import ConfigError
from nnctl.metrics import higher_is_better
from nnctl.rundir import RunDir
from nnctl.runs import RunSummary, is_run_folder, summarise_run
from nnctl.safe_files import atomic_write_text

SWEEP_FILE = "sweep.yaml"
FINISHED, INTERRUPTED, FAILED, PENDING, RUNNING = "finished", "interrupted", "failed", "pending", "running"


# -- the plan ------------------------------------------------------------------------------
def split_values(text: str, separator: str = ",") -> list[str]:
    """'a,b,[1,2],{x: 1, y: 2}' -> ['a', 'b', '[1,2]', '{x: 1, y: 2}']: separators inside brackets stay."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == separator and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def _key_and_rest(text: str, flag: str, example: str) -> tuple[str, str]:
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(key.split(".")):
        raise ConfigError(f"{flag} {text!r}: expected KEY={example}")
    return key, rest


def parse_grid(text: str) -> tuple[str, list[str]]:
    """`--grid optimizer.lr=0.1,0.01` -> ("optimizer.lr", ["0.1", "0.01"]); each value is YAML, as in --set."""
    key, rest = _key_and_rest(text, "--grid", "V1,V2,..., e.g. --grid optimizer.lr=0.1,0.01")
    values = split_values(rest)
    if not rest.strip() or any(not v for v in values):
        raise ConfigError(f"--grid {text!r}: an empty value; give a comma-separated list, "
                          "e.g. --grid optimizer.lr=0.1,0.01")
    return key, values


@dataclass(frozen=True)
class Distribution:
    """What `--sample KEY=...` draws from: log:LOW:HIGH, uniform:LOW:HIGH or choice:A,B,..."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def draw(self, rng: np.random.Generator) -> str:
        """One value, as --set text."""
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "log":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return repr(float(f"{value:.4g}"))  # four digits: a value a person can read and type again


SAMPLE_EXAMPLE = "log:1e-4:1e-1, uniform:0:0.5 or choice:a,b"


def parse_sample(text: str) -> tuple[str, Distribution]:
    key, rest = _key_and_rest(text, "--sample", SAMPLE_EXAMPLE)
    kind, _, spec = rest.partition(":")
    wrong = ConfigError(f"--sample {text!r}: expected KEY={SAMPLE_EXAMPLE}")
    if kind == "choice":
        choices = tuple(split_values(spec))
        if not spec.strip() or any(not c for c in choices):
            raise wrong
        return key, Distribution("choice", choices=choices)
    if kind not in ("log", "uniform"):
        raise wrong
    bounds = spec.split(":")
    try:
        low, high = (float(b) for b in bounds)
    except ValueError:
        raise wrong from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"--sample {text!r}: the bounds must be finite numbers with LOW < HIGH")
    if kind == "log" and low <= 0:
        raise ConfigError(f"--sample {text!r}: a log range needs LOW > 0")
    return key, Distribution(kind, low, high)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in split_values(text)]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: expected distinct integers >= 0, e.g. --seeds 1,2,3")
    return seeds


@dataclass
class Trial:
    name: str  # trial-03: its folder in the sweep
    setting: dict[str, str]  # key -> value as --set text; the seed is not part of a setting
    seed: int | None  # None: the config's own seed
    fixed: list[str] = field(default_factory=list)  # --set overrides every trial shares
    run: str | None = None  # its run folder, relative to the sweep folder, once made
    state: str = PENDING

    @property
    def overrides(self) -> list[str]:
        return [*self.fixed, *(f"{k}={v}" for k, v in self.setting.items()),
                *([f"seed={self.seed}"] if self.seed is not None else [])]

    @property
    def label(self) -> str:
        return setting_label(self.setting)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "setting": dict(self.setting), "seed": self.seed, "fixed": list(self.fixed),
                "overrides": self.overrides, "run": self.run, "state": self.state}


def setting_label(setting: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items()) or "(the config as it is)"


def parse_case(text: str) -> dict[str, str]:
    """`--case "model.dropout=0 optimizer.lr=5"` -> one setting; spaces inside brackets stay."""
    example = "V [KEY=V ...], e.g. --case 'model.dropout=0 optimizer.lr=5'"
    words = [w for w in split_values(text, " ") if w]
    if not words:
        raise ConfigError(f"--case {text!r}: expected KEY={example}")
    setting = {}
    for word in words:
        key, value = _key_and_rest(word, "--case", example)
        if not value.strip():
            raise ConfigError(f"--case {text!r}: {key} has an empty value")
        setting[key] = value
    return setting


def plan_trials(grid: Sequence[tuple[str, list[str]]], samples: Sequence[tuple[str, Distribution]],
                trials: int, seeds: Sequence[int] | None, sweep_seed: int, fixed: Sequence[str] = (),
                cases: Sequence[dict[str, str]] = ()) -> list[Trial]:
    """Every (setting, seed) pair: each case (or none) times the grid's product, times `trials`
    random draws when sampling.

    `fixed`: --set overrides applied to every trial before its setting. `cases`: settings
    listed one by one (an ablation: each technique off in turn), not multiplied out."""
    keys = [k for k, _ in grid] + [k for k, _ in samples]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ConfigError(f"{repeated[0]}: given more than once in --grid/--sample; give each key once")
    clash = sorted({k for case in cases for k in case} & set(keys))
    if clash:
        raise ConfigError(f"{clash[0]}: given in both --case and --grid/--sample; give each key in one of them")
    settings = [dict(zip([k for k, _ in grid], combo)) for combo in itertools.product(*[v for _, v in grid])]
    if cases:
        settings = [{**case, **s} for case in cases for s in settings]
    if samples:
        rng = np.random.default_rng(sweep_seed)
        settings = [{**s, **{k: d.draw(rng) for k, d in samples}} for _ in range(trials) for s in settings]
    width = max(2, len(str(len(settings) * len(seeds or [None]) - 1)))
    planned = []
    for setting in settings:
        for seed in seeds or [None]:
            planned.append(Trial(f"trial-{len(planned):0{width}d}", setting, seed, list(fixed)))
    return planned


def check_trials(config: Path, trials: Sequence[Trial]) -> dict[str, Any]:
    """Resolve every trial's config (a wrong key, value or type is one line); the first trial's config."""
    resolved = None
    for trial in trials:
        cfg = config_mod.load(config, trial.overrides)
        resolved = resolved or cfg
    return resolved


# -- the sweep folder ----------------------------------------------------------------------
@dataclass
class Sweep:
    path: Path
    config: str  # the experiment file the sweep was made from, as given
    trials: list[Trial]
    data_dir: str | None = None
    jobs: int = 1

    @property
    def config_copy(self) -> Path:
        return self.path / "config.yaml"

    def log_path(self, trial: Trial) -> Path:
        return self.path / "logs" / f"{trial.name}.txt"

    def run_path(self, trial: Trial) -> Path | None:
        """The trial's run folder if it exists (its process may have made it without saying so)."""
        if trial.run and (self.path / trial.run).is_dir():
            return self.path / trial.run
        found = sorted(p for p in (self.path / trial.name).glob("*") if p.is_dir() and is_run_folder(p))
        if found:
            trial.run = str(found[-1].relative_to(self.path))
            return found[-1]
        return None

    def save(self) -> None:
        record = {"nnctl_version": __version__, "config": self.config, "data_dir": self.data_dir,
                  "jobs": self.jobs, "trials": [t.to_dict() for t in self.trials]}
        atomic_write_text(self.path / SWEEP_FILE, f"# written by nnctl {__version__}: nnctl sweep; "
                          f"continue it with nnctl sweep --resume {self.path}\n"
                          + yaml.safe_dump(record, sort_keys=False, width=100))

    @classmethod
    def create(cls, runs_dir: Path, name: str, config: Path, trials: list[Trial], **fields) -> "Sweep":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(runs_dir) / name / "sweeps"
        base.mkdir(parents=True, exist_ok=True)
        path, suffix = base / stamp, 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                suffix += 1
                path = base / f"{stamp}-{suffix}"
        sweep = cls(path, str(config), trials, **fields)
        (path / "logs").mkdir()
        atomic_write_text(sweep.config_copy, Path(config).read_text(encoding="utf-8"))
        sweep.save()
        return sweep

    @classmethod
    def open(cls, path: Path) -> "Sweep":
        path = Path(path)
        file = path / SWEEP_FILE
        if not file.is_file():
            raise ConfigError(f"{path}: not a sweep folder (no {SWEEP_FILE}); sweeps are made by "
                              "`nnctl sweep CONFIG` under runs/<name>/sweeps/")
        try:
            record = yaml.safe_load(file.read_text(encoding="utf-8"))
            trials = [Trial(t["name"], {str(k): str(v) for k, v in (t.get("setting") or {}).items()},
                            t.get("seed"), [str(o) for o in t.get("fixed") or []], t.get("run"),
                            t.get("state", PENDING)) for t in record["trials"]]
            sweep = cls(path, str(record["config"]), trials, record.get("data_dir"), int(record.get("jobs", 1)))
        except (yaml.YAMLError, TypeError, KeyError, ValueError, AttributeError, UnicodeDecodeError):
            raise ConfigError(f"{file}: not a sweep record nnctl wrote (damaged or edited); "
                              "start the sweep again with `nnctl sweep CONFIG`") from None
        if not sweep.config_copy.is_file():
            raise ConfigError(f"{sweep.config_copy}: missing, so the trials cannot be rebuilt; "
                              "start the sweep again with `nnctl sweep CONFIG`")
        return sweep

    def refresh_states(self) -> None:
        """Each trial's state as its run folder says (a process may have ended without telling us)."""
        for trial in self.trials:
            path = self.run_path(trial)
            if path is None:
                trial.state = PENDING
                continue
            state = summarise_run(path).state
            has_last = (path / "checkpoints" / "last.npz").is_file()
            if state in (FINISHED, FAILED):  # a failed trial would fail again: it stays as it ended
                trial.state = state
            else:  # interrupted, or a process killed while running: resumable from `last`, else anew
                trial.state = INTERRUPTED if has_last else PENDING


# -- running the trials --------------------------------------------------------------------
def threads_per_trial(jobs: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // jobs)


def trial_command(sweep: Sweep, trial: Trial, data_dir: str | None) -> list[str]:
    """The `nnctl train` arguments that start a trial, or resume it when it was interrupted."""
    if trial.state == INTERRUPTED:
        args = ["train", "--resume", str(sweep.run_path(trial))]
    else:
        args = ["train", str(sweep.config_copy), *[w for o in trial.overrides for w in ("--set", o)],
                "--set", f"name={trial.name}", "--runs-dir", str(sweep.path)]
    return args + (["--data-dir", str(data_dir)] if data_dir else []) + ["--quiet"]


def dry_run_commands(config: Path, trials: Sequence[Trial], data_dir: str | None) -> list[str]:
    """One `nnctl train` line per trial, for a cluster scheduler (a Slurm job array, GNU parallel)."""
    import shlex

    lines = []
    for trial in trials:
        words = ["nnctl", "train", str(config), *[w for o in trial.overrides for w in ("--set", o)]]
        lines.append(shlex.join(words + (["--data-dir", str(data_dir)] if data_dir else [])))
    return lines


def run_trials(sweep: Sweep, jobs: int, data_dir: str | None = None,
               on_event: Callable[[str, Trial], None] | None = None, poll_seconds: float = 0.1) -> bool:
    """Run every trial not yet finished, `jobs` at a time; True if none was interrupted.

    SIGINT/SIGTERM: passed on once to every running trial, which saves `last` and stops;
    then the sweep stops too. The trials run in sessions of their own, so a terminal's
    Ctrl-C reaches them only through here, once.
    """
    on_event = on_event or (lambda what, trial: None)
    lock = RunDir(sweep.path)  # one process runs a sweep at a time; its trials are locked each by theirs
    lock.lock()
    try:
        return _run_trials(sweep, jobs, data_dir, on_event, poll_seconds)
    finally:
        lock.unlock()


def _run_trials(sweep: Sweep, jobs: int, data_dir: str | None, on_event, poll_seconds: float) -> bool:
    sweep.refresh_states()
    waiting = [t for t in sweep.trials if t.state in (PENDING, INTERRUPTED)]
    for trial in waiting:
        if trial.state == PENDING and sweep.run_path(trial) is not None:
            _remove_unresumable(sweep, trial)
    threads = str(threads_per_trial(jobs))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads, "NNCTL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    running: dict[subprocess.Popen, Trial] = {}
    stop = {"signum": None}

    def on_signal(signum, frame):
        stop["signum"] = signum
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while running or (waiting and stop["signum"] is None):
            while waiting and len(running) < jobs and stop["signum"] is None:
                trial = waiting.pop(0)
                log = open(sweep.log_path(trial), "a", encoding="utf-8")
                process = subprocess.Popen(train_process(trial_command(sweep, trial, data_dir)), env=env,
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
                log.close()
                running[process] = trial
                trial.state = RUNNING
                sweep.save()
                on_event("start", trial)
            time.sleep(poll_seconds)
            for process in [p for p in running if p.poll() is not None]:
                trial = running.pop(process)
                path = sweep.run_path(trial)
                state = summarise_run(path).state if path is not None else FAILED
                if process.returncode == 0 and state == FINISHED:
                    trial.state = FINISHED
                elif process.returncode in (130, 143):  # stopped before its first save: it starts anew
                    saved = path is not None and (path / "checkpoints" / "last.npz").is_file()
                    trial.state = INTERRUPTED if saved else PENDING
                else:
                    trial.state = FAILED
                sweep.save()
                on_event(trial.state, trial)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return stop["signum"] is None


def _remove_unresumable(sweep: Sweep, trial: Trial) -> None:
    """A trial folder without a `last` checkpoint (killed before its first save) holds nothing to keep."""
    import shutil

    shutil.rmtree(sweep.path / trial.name, ignore_errors=True)
    trial.run = None


def train_process(args: list[str]) -> list[str]:
    """The command line of one `nnctl train` process (the same Python, the same nnctl)."""
    return [sys.executable, "-m", "nnctl", *args]


# -- comparing the settings ----------------------------------------------------------------
@dataclass
class SettingResult:
    label: str
    setting: dict[str, str]
    runs: list[RunSummary]  # the finished trials of this setting, one per seed
    trials: int  # all of its trials, finished or not
    metric: str

    def values(self, which: str) -> list[float]:
        """Each finished run's best validation ("valid"), test ("test") or last training ("train") metric."""
        if which == "train":
            picked = [r.final.get("train", {}).get(self.metric) for r in self.runs]
        else:
            picked = [r.best_valid if which == "valid" else r.test for r in self.runs]
        return [v for v in picked if v is not None]

    def mean_std(self, which: str) -> tuple[float | None, float | None]:
        return mean_std(self.values(which))

    def steps_to(self, target: float) -> list[int | None]:
        """Each run's first step whose validation metric reached `target` (None: never)."""
        better = higher_is_better(self.metric)
        return [next((r["step"] for r in run.records if r.get("split") == "valid" and self.metric in r
                      and (r[self.metric] >= target if better else r[self.metric] <= target)), None)
                for run in self.runs]


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than two values)."""
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None


def compare_settings(sweep: Sweep) -> list[SettingResult]:
    """One result per setting (its seeds together), the best mean validation metric first."""
    groups: dict[str, list[Trial]] = {}
    for trial in sweep.trials:
        groups.setdefault(trial.label, []).append(trial)
    results = []
    for label, trials in groups.items():
        runs = [summarise_run(p) for t in trials if (p := sweep.run_path(t)) is not None]
        finished = [r for r in runs if r.state == FINISHED]
        metric = next((r.metric for r in runs), "loss")
        results.append(SettingResult(label, trials[0].setting, finished, len(trials), metric))

    def order(result: SettingResult):
        mean, _ = result.mean_std("valid")
        if mean is None:
            return (1, 0.0)
        return (0, -mean if higher_is_better(result.metric) else mean)

    return sorted(results, key=order)


def describe_failure(sweep: Sweep, trial: Trial) -> str:
    """The last line a failed trial printed (its one-line error)."""
    try:
        lines = [l for l in sweep.log_path(trial).read_text(encoding="utf-8", errors="replace").splitlines() if l]
    except OSError:
        lines = []
    return lines[-1].removeprefix("error: ") if lines else "it printed nothing"
