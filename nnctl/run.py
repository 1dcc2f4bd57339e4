"""A whole training run, from Python: everything `nnctl train` does, in one call.

    from nnctl import run
    result = run.train("configs/tiny_mlp_mnist.yaml", overrides=["optimizer.lr=0.01"])
    result.state, result.path, result.summary["test"]
    run.train(resume=result.path, overrides=["train.epochs=5"])   # train on

A run's life, in order:
1. Read and check everything (config or checkpoint, data, model) before anything is
   written: a mistake found here leaves no folder behind, and a resumed folder unchanged.
2. Restore a resumed run in memory, so a checkpoint that does not fit changes nothing.
3. Make the run folder whole (config.yaml, vocab.txt, status.json; rundir.RunDir.create),
   or, resuming, take its lock, remove temporary files a hard kill left, and cut
   metrics.jsonl back to the checkpoint's records.
4. Train. SIGINT/SIGTERM: the first finishes the current step, saves `last` and returns
   an "interrupted" result with the command that resumes it; a second stops at once
   (atomic writes leave no cut file).
5. status.json ends as finished, interrupted or failed.

Under MPI (`mpirun -n N nnctl train`) every rank calls this; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnctl import __version__, checkpoint, distributed, experiment
from nnctl import config as config_mod
from nnctl.data.text import Vocab
from nnctl.errors import CheckpointError, ConfigError, NnctlError, VocabError
from nnctl.rundir import RunDir
from nnctl.safe_files import atomic_write_text
from nnctl.runs import is_run_folder
from nnctl.trainer import Interrupted, SilentListener, Trainer, TrainingStopped

RESUME_HINT = ("the run cannot continue from it; start it again with `nnctl train {config}` "
               "(checkpoints/best.npz, if whole, still serves eval and generate)")


@dataclass
class RunResult:
    """How a run ended. `state` is "finished" or "interrupted" (errors are raised instead)."""

    state: str
    path: Path | None  # the run folder; None on the MPI ranks that write nothing
    summary: dict[str, Any] | None = None  # the final figures, once finished
    signum: int | None = None  # interrupted: the signal that stopped it
    resume_command: str | None = None  # interrupted with `last` saved: the command that continues it
    config: dict[str, Any] = field(default_factory=dict)  # the resolved experiment


def resume_command(run_path: Path, data_dir: Path | str | None, processes: int = 1) -> str:
    """The command that continues a run, with every option it needs that the run folder does not hold."""
    words = (["mpirun", "-n", str(processes)] if processes > 1 else []) + ["nnctl", "train", "--resume", str(run_path)]
    if data_dir is not None:
        words += ["--data-dir", str(data_dir)]
    return shlex.join(words)


def load_for_resume(run_path: Path, overrides: Sequence[str]):
    """(RunDir, Checkpoint, resolved config) of a run to resume; only `train.*` keys may be overridden.

    Reads only: nothing in the run folder changes until every check has passed.
    """
    run = RunDir(run_path)
    if not run.path.is_dir():
        raise ConfigError(f"--resume {run_path}: no such run folder; list runs with `nnctl runs`")
    if not is_run_folder(run.path):
        children = sorted(p for p in run.path.iterdir() if p.is_dir() and is_run_folder(p))
        if children:
            raise ConfigError(f"--resume {run_path}: a folder of runs, not a run; give one of them, "
                              f"e.g. the latest: --resume {children[-1]}")
    for text in overrides:
        parts, _ = config_mod.parse_override(text)
        if parts[0] != "train":
            raise ConfigError(f"--set {text}: a resumed run keeps its experiment; only train.* keys "
                              "(e.g. train.epochs) may change")
    last = run.checkpoint_path("last")
    hint = RESUME_HINT.format(config=run.config_path)
    if not last.is_file():
        raise CheckpointError(f"--resume {run_path}: no checkpoints/last.npz, so the run stopped before its "
                              f"first save; {hint}")
    ckpt = checkpoint.load(last, hint=hint)
    if "progress" not in ckpt.meta or not isinstance(ckpt.meta.get("config"), dict):
        raise CheckpointError(f"{last}: its meta record has no progress or config; {hint}")
    cfg = config_mod.resolve(config_mod.apply_overrides(ckpt.meta["config"], list(overrides)), str(run.config_path))
    if run.vocab_path.is_file() and ckpt.vocab is not None and Vocab.load(run.vocab_path).words != ckpt.vocab.words:
        raise VocabError(f"{run.vocab_path} does not match the vocabulary in {last}; the run folder was altered")
    progress, train_cfg = ckpt.meta["progress"], cfg["train"]
    if run.status().get("state") == "finished":
        early = train_cfg["early_stopping"]
        if early and progress.get("epochs_without_improvement", 0) >= early:
            raise NnctlError(f"--resume {run_path}: the run already finished (early stopping, {early} epochs "
                             "without improvement); to train on, raise train.early_stopping "
                             "(--set train.early_stopping=N) or drop it (--set train.early_stopping=null)")
        if progress.get("epoch", 0) >= train_cfg["epochs"]:
            raise NnctlError(f"--resume {run_path}: the run already finished its {train_cfg['epochs']} epochs; "
                             f"to train more, --set train.epochs={train_cfg['epochs'] + 1} (or more)")
    return run, ckpt, cfg


def build_trainer(cfg: dict[str, Any], data_dir: str | None = None, vocab=None, comm=None):
    """(Experiment, Trainer) for a resolved config, writing nowhere (the benchmarks time this Trainer)."""
    comm = comm or distributed.SingleProcess()
    exp = experiment.build(cfg, data_dir, vocab=vocab)
    distributed.check_shardable(comm, exp.data, exp.model, cfg["model"]["type"])
    trainer = Trainer(exp.model, exp.data, exp.optimizer, exp.schedule, exp.train, cfg, exp.model_extras,
                      listener=SilentListener(), comm=comm, device=cfg.get("device", "cpu"))
    return exp, trainer


class _StopOnSignal:
    """SIGINT/SIGTERM while training: the first asks the Trainer to stop after its step, a second stops at once."""

    def __init__(self):
        self.signum: int | None = None
        self.trainer: Trainer | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _on_signal(self, signum, frame):
        if self.signum is not None:  # the second: atomic writes leave no truncated file
            raise KeyboardInterrupt
        self.signum = signum
        if self.trainer is not None:
            self.trainer.request_stop(signum)

    def watch(self, trainer: Trainer) -> None:
        self.trainer = trainer
        if self.signum is not None:  # a signal came while the run was being set up
            trainer.request_stop(self.signum)


class _Fanout:
    """Send every Trainer event to several listeners (the caller's, and the one writing train.log)."""

    def __init__(self, *listeners):
        self.listeners = listeners

    def __getattr__(self, name):
        def call(*args, **kwargs):
            for listener in self.listeners:
                getattr(listener, name, lambda *a, **k: None)(*args, **kwargs)
        return call


def _describe_source(config) -> str:
    return str(config) if isinstance(config, (str, Path)) else "a config given from Python"


def train(config: str | Path | Mapping[str, Any] | None = None, *, overrides: Sequence[str] = (),
          resume: str | Path | None = None, runs_dir: str | Path = "runs", data_dir: str | Path | None = None,
          listener=None, quiet: bool = False, handle_signals: bool = True) -> RunResult:
    """Train the experiment `config` (a YAML path or a mapping) into a new run folder, or `resume` one.

    listener: receives the Trainer's events (see console.PlainListener for the methods);
    by default the console shows progress (a live display on a terminal, plain lines
    otherwise, only the summary with quiet). train.log is written either way.
    handle_signals: catch SIGINT/SIGTERM to stop cleanly (main thread only).

    Returns a RunResult; raises an NnctlError (ConfigError, CheckpointError, ...) for a
    mistake found before training, TrainingStopped when training cannot go on.
    """
    from nnctl.console import PlainListener, make_listener

    overrides = list(overrides)
    if resume is not None and config is not None:
        raise ConfigError("give either a CONFIG or --resume RUN_DIR, not both (a resumed run keeps its config)")
    if resume is None and config is None:
        raise ConfigError("missing CONFIG: give an experiment file (e.g. configs/mlp_mnist.yaml) or --resume RUN_DIR")
    comm = distributed.get_communicator()
    data_dir = str(data_dir) if data_dir is not None else None
    if resume is not None:
        run, ckpt, cfg = load_for_resume(Path(resume), overrides)
    elif isinstance(config, Mapping):
        cfg, ckpt, run = config_mod.resolve(config_mod.apply_overrides(dict(config), overrides), "config"), None, None
    else:
        cfg, ckpt, run = config_mod.load(Path(config), overrides), None, None
    exp, trainer = build_trainer(cfg, data_dir, vocab=ckpt.vocab if ckpt else None, comm=comm)
    lead = comm.rank == 0  # the one process that prints and writes the run folder
    status = {"state": "running", "nnctl_version": __version__, **({"processes": comm.size} if comm.size > 1 else {})}
    new_run = resume is None
    started = False  # True once this process holds the run folder and writes to it

    def write_status(state: dict) -> None:
        if run is not None and started:
            run.write_status(state)

    def close_listener() -> None:
        getattr(trainer.listener, "close", lambda: None)()

    stopper = _StopOnSignal()
    with stopper if handle_signals else contextlib.nullcontext():
        try:
            if ckpt is not None:
                trainer.resume_from(ckpt)
            distributed.prepare_ranks(comm, exp.model, exp.optimizer, cfg["seed"], trainer.progress.step)
            if not lead:
                run = None
            elif new_run:
                def prepare(folder: RunDir) -> None:
                    atomic_write_text(folder.config_path, f"# written by nnctl {__version__} from "
                                      f"{_describe_source(config)}\n" + config_mod.dump(cfg))
                    if exp.data.vocab is not None:
                        exp.data.vocab.save(folder.vocab_path)
                    folder.write_status(status)

                run = RunDir.create(Path(runs_dir), cfg["name"], prepare)
            else:
                run.lock()
                for stale in run.path.glob("**/.*.tmp"):  # a save cut short by a hard kill left it
                    stale.unlink()
                if overrides:  # the run folder's config.yaml says what the run now does (e.g. more epochs)
                    atomic_write_text(run.config_path, f"# written by nnctl {__version__}, resumed with "
                                      f"--set {' --set '.join(overrides)}\n" + config_mod.dump(cfg))
            started = run is not None
            if run is not None:
                trainer.run = run
                trainer.listener = make_listener(log=run.log, quiet=quiet) if listener is None else \
                    _Fanout(listener, PlainListener(echo=False, log=run.log))
                if not new_run:
                    run.truncate_metrics(trainer.progress.records)  # later records will be written again
                    write_status(status)
            elif listener is not None:
                trainer.listener = listener
            stopper.watch(trainer)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # NaN/inf: on_nonfinite says
                summary = trainer.fit()
            write_status({"state": "finished", "summary": summary, "nnctl_version": __version__})
            return RunResult("finished", run.path if run else None, summary=summary, config=cfg)
        except Interrupted as interrupted:
            close_listener()
            try:
                if interrupted.save_last:
                    trainer.save("last")
            except KeyboardInterrupt:  # a second signal while saving: the old `last` stays whole
                write_status({"state": "interrupted", "progress": trainer.progress.to_dict()})
                return RunResult("interrupted", run.path if run else None, signum=signal.SIGINT, config=cfg)
            write_status({"state": "interrupted", "progress": trainer.progress.to_dict()})
            command = resume_command(run.path, data_dir, comm.size) if run is not None else None
            return RunResult("interrupted", run.path if run else None, signum=interrupted.signum,
                             resume_command=command, config=cfg)
        except TrainingStopped as error:
            close_listener()
            write_status({"state": "failed", "reason": str(error), "progress": trainer.progress.to_dict()})
            raise
        except KeyboardInterrupt:
            close_listener()
            if new_run and started and not run.checkpoint_path("last").is_file():
                run.remove()  # nothing was trained in it: no folder to resume or to list as unknown
                return RunResult("interrupted", None, signum=signal.SIGINT, config=cfg)
            write_status({"state": "interrupted", "progress": trainer.progress.to_dict()})
            return RunResult("interrupted", run.path if run else None, signum=signal.SIGINT, config=cfg)
        except BaseException:
            close_listener()
            write_status({"state": "failed", "progress": trainer.progress.to_dict()})
            raise
        finally:
            if run is not None:
                run.unlock()  # the lock goes with the process anyway; in-process callers (tests) need it now
