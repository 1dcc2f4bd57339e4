"""`nnctl train`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from nnctl import __version__
from nnctl.cli.app import app, fail, user_errors
from nnctl.cli.options import DATA_DIR_HELP, SET_HELP



RESUME_HINT = ("the run cannot continue from it; start it again with `nnctl train {config}` "
               "(checkpoints/best.npz, if whole, still serves eval and generate)")


def resume_command(run_path: Path, data_dir: Optional[Path], processes: int = 1) -> str:
    """The command that continues a run, with every option it needs that the run folder does not hold."""
    import shlex

    words = (["mpirun", "-n", str(processes)] if processes > 1 else []) + ["nnctl", "train", "--resume", str(run_path)]
    if data_dir is not None:
        words += ["--data-dir", str(data_dir)]
    return shlex.join(words)


def _load_for_resume(run_path: Path, overrides: list[str]):
    """The checkpoint and config of a run to resume; only `train.*` keys may be overridden.

    Reads only: nothing in the run folder changes until every check has passed.
    """
    from nnctl import checkpoint
    from nnctl import config as config_mod
    from nnctl.data.text import Vocab
    from nnctl.errors import CheckpointError, ConfigError, NnctlError, VocabError
    from nnctl.rundir import RunDir
    from nnctl.runs import is_run_folder

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
    cfg = config_mod.resolve(config_mod.apply_overrides(ckpt.meta["config"], overrides), str(run.config_path))
    if run.vocab_path.is_file() and ckpt.vocab is not None and Vocab.load(run.vocab_path).words != ckpt.vocab.words:
        raise VocabError(f"{run.vocab_path} does not match the vocabulary in {last}; the run folder was altered")
    progress, train = ckpt.meta["progress"], cfg["train"]
    if run.status().get("state") == "finished":
        early = train["early_stopping"]
        if early and progress.get("epochs_without_improvement", 0) >= early:
            raise NnctlError(f"--resume {run_path}: the run already finished (early stopping, {early} epochs "
                             "without improvement); to train on, raise train.early_stopping "
                             "(--set train.early_stopping=N) or drop it (--set train.early_stopping=null)")
        if progress.get("epoch", 0) >= train["epochs"]:
            raise NnctlError(f"--resume {run_path}: the run already finished its {train['epochs']} epochs; "
                             f"to train more, --set train.epochs={train['epochs'] + 1} (or more)")
    return run, ckpt, cfg


@app.command()
def train(
    config: Optional[Path] = typer.Argument(None, help="Experiment YAML file, e.g. configs/lstm_ptb.yaml."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder from its "
                                          "checkpoints/last.npz, exactly where it stopped."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are created."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final summary."),
):
    """Train the model an experiment file describes, writing a run folder.

    The folder `runs/<name>/<YYYYmmdd-HHMMSS>/` gets the resolved config.yaml, metrics.jsonl,
    train.log and checkpoints/best.npz + last.npz. Ctrl-C (or SIGTERM) saves `last` and
    stops; `--resume` continues from it.

    Example: `nnctl train configs/cnn_fashion_mnist.yaml --set train.epochs=3 --data-dir ~/data`

    Resume: `nnctl train --resume runs/cnn_fashion_mnist/20261130-101500`

    Several processes (MPI, `pip install "nnctl[mpi]"`): `mpirun -n 4 nnctl train CONFIG`
    shares each global batch over the 4 processes; only the first writes the run folder.
    """
    from nnctl import config as config_mod
    from nnctl import distributed, experiment
    from nnctl.cli.app import set_error_output
    from nnctl.console import console, make_listener
    from nnctl.rundir import RunDir, atomic_write_text
    from nnctl.trainer import Interrupted, SilentListener, Trainer, TrainingStopped

    with user_errors():
        comm = distributed.get_communicator()
        lead = comm.rank == 0  # the one process that prints and writes the run folder
        set_error_output(lead)  # every rank meets the same config error; one line is enough
        # Everything is read and checked first; the run folder appears (or, resuming, changes)
        # only once nothing is left that could stop the run before its first step.
        if resume is not None:
            if config is not None:
                fail("give either a CONFIG or --resume RUN_DIR, not both (a resumed run keeps its config)", 2)
            run, ckpt, cfg = _load_for_resume(resume, set_)
        else:
            if config is None:
                fail("missing CONFIG: give an experiment file (e.g. configs/mlp_mnist.yaml) or --resume RUN_DIR", 2)
            cfg, ckpt, run = config_mod.load(config, set_), None, None
        exp = experiment.build(cfg, str(data_dir) if data_dir else None, vocab=ckpt.vocab if ckpt else None)
        distributed.check_shardable(comm, exp.data, exp.model, cfg["model"]["type"])
        status = {"state": "running", "nnctl_version": __version__, **({"processes": comm.size} if comm.size > 1 else {})}
        new_run = resume is None

        started = False  # True once this process holds the run folder and writes to it

        def write_status(state: dict) -> None:
            if run is not None and started:
                run.write_status(state)

        stop = {"signum": None, "trainer": None}

        def on_signal(signum, frame):
            if stop["signum"] is None:  # first: finish the current step, save `last`, stop
                stop["signum"] = signum
                if stop["trainer"] is not None:
                    stop["trainer"].request_stop(signum)
            else:  # second: stop at once; atomic writes leave no truncated file
                raise KeyboardInterrupt

        def close_listener() -> None:
            if trainer is not None:
                getattr(trainer.listener, "close", lambda: None)()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        trainer = None
        try:
            # Restored in memory first: a checkpoint that does not fit the model changes nothing on disk.
            trainer = Trainer(exp.model, exp.data, exp.optimizer, exp.schedule, exp.train, cfg,
                              exp.model_extras, run=None, listener=SilentListener(), comm=comm,
                              device=cfg.get("device", "cpu"))
            if ckpt is not None:
                trainer.resume_from(ckpt)
            distributed.prepare_ranks(comm, exp.model, exp.optimizer, cfg["seed"], trainer.progress.step)
            if not lead:
                run = None
            elif new_run:
                def prepare(folder: RunDir) -> None:
                    atomic_write_text(folder.config_path, f"# written by nnctl {__version__} from {config}\n"
                                      + config_mod.dump(cfg))
                    if exp.data.vocab is not None:
                        exp.data.vocab.save(folder.vocab_path)
                    folder.write_status(status)

                run = RunDir.create(runs_dir, cfg["name"], prepare)
            else:
                run.lock()
                for stale in run.path.glob("**/.*.tmp"):  # a save cut short by a hard kill left it
                    stale.unlink()
                if set_:  # the run folder's config.yaml says what the run now does (e.g. more epochs)
                    atomic_write_text(run.config_path, f"# written by nnctl {__version__}, resumed with "
                                      f"--set {' --set '.join(set_)}\n" + config_mod.dump(cfg))
            started = run is not None
            if run is not None:
                trainer.run = run
                trainer.listener = make_listener(log=run.log, quiet=quiet)
                if not new_run:
                    run.truncate_metrics(trainer.progress.records)  # later records will be written again
                    write_status(status)
            stop["trainer"] = trainer
            if stop["signum"] is not None:
                trainer.request_stop(stop["signum"])
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # NaN/inf: on_nonfinite says
                summary = trainer.fit()
        except Interrupted as interrupted:
            close_listener()
            try:
                if interrupted.save_last:
                    trainer.save("last")
            except KeyboardInterrupt:  # a second signal while saving: the old `last` stays whole
                write_status({"state": "interrupted", "progress": trainer.progress.to_dict()})
                raise typer.Exit(130) from None
            write_status({"state": "interrupted", "progress": trainer.progress.to_dict()})
            if run is not None:
                console().print(f"interrupted: saved {run.checkpoint_path('last')}\n"
                                f"resume with: {resume_command(run.path, data_dir, comm.size)}")
            raise typer.Exit(130 if interrupted.signum == signal.SIGINT else 143)
        except TrainingStopped as error:
            close_listener()
            write_status({"state": "failed", "reason": str(error), "progress": trainer.progress.to_dict()})
            fail(str(error), 1)
        except KeyboardInterrupt:
            close_listener()
            if new_run and started and not run.checkpoint_path("last").is_file():
                run.remove()  # nothing was trained in it: no folder to resume or to list as unknown
            elif started:
                write_status({"state": "interrupted", "progress": trainer.progress.to_dict()})
            raise typer.Exit(130)
        except BaseException:
            close_listener()
            if started:
                write_status({"state": "failed", "progress": trainer.progress.to_dict()})
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if run is not None and sys.exc_info()[0] is not None:
                run.unlock()  # the lock goes with the process anyway; in-process callers (tests) need it now
        write_status({"state": "finished", "summary": summary, "nnctl_version": __version__})
        if run is not None:
            run.unlock()
