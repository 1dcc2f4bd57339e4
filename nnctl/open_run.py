"""Opening a trained run: the one way every command (eval, generate, similar, ...) gets at a model.

A person names a run three ways, and all of them mean the same here:

    runs/<name>                 its latest timestamped run (nnctl/runs.py resolve_run)
    runs/<name>/<timestamp>     that run: checkpoints/<which>.npz, else checkpoints/last.npz
    path/to/file.npz            that checkpoint

`open_run` finds the checkpoint, loads it, rebuilds the model with the experiment's own
`build_model` and restores its weights, then checks the model can do what the command
`needs`; a run of the wrong kind is one CheckpointError line, worded the same for every
command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from nnctl.errors import CheckpointError

if TYPE_CHECKING:  # the CLI imports this module for RUN_HELP; NumPy loads when a run is opened
    from nnctl.checkpoint import Checkpoint
    from nnctl.data.text import Vocab

# What every command that opens a run says of its RUN argument (the three forms above).
RUN_HELP = "`runs/<name>` (its latest run), a run folder (uses `checkpoints/best.npz`) or a .npz checkpoint."


@dataclass
class OpenedRun:
    path: Path  # the checkpoint file that was read
    checkpoint: Checkpoint
    model: Any
    vocab: Vocab | None
    config: dict[str, Any]  # the experiment the run was trained with, resolved

    @property
    def model_type(self) -> str:
        return model_type(self.checkpoint)


@dataclass(frozen=True)
class Need:
    """Something a command asks of a run's model, and how to say that a run lacks it."""

    met_by: Callable[[Any, Checkpoint], bool]  # (model, checkpoint) -> can it serve?
    lacks: str  # what the model is missing, after "model 'mlp' "
    fix: str  # which runs the commands asking this need
    vocab: bool = True  # the commands also read its words


def _has_scoring_config(model, ckpt: Checkpoint) -> bool:
    """Word vectors are scored on analogy and similarity files; the rest on a split of their data."""
    return hasattr(model, "word_vectors") or all(key in ckpt.meta.get("config", {}) for key in ("data", "train"))


NEEDS = {
    "language model": Need(lambda model, ckpt: hasattr(model, "logits") or hasattr(model, "translate"),
                           "is not a language model",
                           "generate needs a run of a language model (lstm_lm) or of a seq2seq model"),
    "word vectors": Need(lambda model, ckpt: hasattr(model, "word_vectors"), "has no word vectors",
                         "similar, analogy, export and plot-vectors need a word-vector run (cbow, ppmi_svd)"),
    "scoring": Need(_has_scoring_config, "has no data or train config in its meta record, so nothing to score it on",
                    "eval needs a run written by nnctl train", vocab=False),
    "recurrent": Need(lambda model, ckpt: hasattr(model, "cells"), "is not recurrent",
                      "gradflow needs a recurrent language model (lstm_lm, with cell lstm, gru or rnn)", vocab=False),
}


def wrong_kind(source: Path | str, model_type: str, needs: str) -> str:
    """The one wording of "this model cannot do what the command needs", for runs and configs alike."""
    need = NEEDS[needs]
    return f"{source}: model '{model_type}' {need.lacks}; {need.fix}"


def find_checkpoint(path: Path, which: str = "best") -> Path:
    """The checkpoint a user-given path means: a file is itself; a run folder (or runs/<name>, its
    latest run) gives checkpoints/<which>.npz, else checkpoints/last.npz."""
    from nnctl.runs import resolve_run

    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint file; list runs with `nnctl runs runs/`")
    run = resolve_run(path)
    for name in (which, "last"):
        candidate = run / "checkpoints" / f"{name}.npz"
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{run}: no checkpoint in {run / 'checkpoints'}; the run saved none "
                          "(it may have failed before its first epoch ended)")


def model_type(ckpt: Checkpoint) -> str:
    config = ckpt.meta.get("config", {})
    model_cfg = config.get("model") if isinstance(config, dict) else None
    return str(ckpt.meta.get("model_type") or (model_cfg or {}).get("type") or "?")


def rebuild_model(ckpt: Checkpoint, dtype=None):
    """The model a checkpoint was saved from, with its weights, on the CPU.

    dtype: the run's `dtype:` (float32 unless it was trained in float64) unless given.
    """
    import numpy as np

    from nnctl import checkpoint, experiment

    config = ckpt.meta.get("config", {})
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{ckpt.path}: meta has no model config; it was not written by nnctl train")
    extras = dict(ckpt.meta.get("model_extras", {}))
    if ckpt.vocab is not None:
        extras["vocab"] = ckpt.vocab
    # The weights are overwritten below; a fixed stream keeps dropout masks reproducible.
    model = experiment.build_model(config, extras, dtype, rng=np.random.default_rng(0))
    checkpoint.restore_model(model, ckpt)
    return model


def open_run(path: Path, which: str = "best", needs: str | None = None, dtype=None) -> OpenedRun:
    """Open `runs/<name>`, a run folder or a .npz: its checkpoint, model, vocabulary and config.

    needs: a key of NEEDS ("language model", "word vectors", "scoring", "recurrent"); a run
    whose model cannot serve it is one CheckpointError line naming the model and the fix.
    """
    if needs is not None and needs not in NEEDS:
        raise ValueError(f"needs={needs!r}: expected one of {', '.join(NEEDS)}")
    from nnctl import checkpoint

    ckpt = checkpoint.load(find_checkpoint(path, which))
    model = rebuild_model(ckpt, dtype)
    need = NEEDS.get(needs)
    if need is not None:
        if not need.met_by(model, ckpt):
            raise CheckpointError(wrong_kind(path, model_type(ckpt), needs))
        if need.vocab and ckpt.vocab is None:
            raise CheckpointError(f"{ckpt.path}: the checkpoint holds no vocabulary; it was not written by nnctl train")
    return OpenedRun(ckpt.path, ckpt, model, ckpt.vocab, ckpt.meta.get("config", {}))
