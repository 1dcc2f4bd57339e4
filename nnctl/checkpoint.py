"""Checkpoints: one .npz of named arrays plus a JSON `meta`, never a pickle.

    model/<param or buffer name>     the model's arrays, float32 as trained
    optim/<name>/<slot>              optimizer state (Adam's m and v, step count)
    state/<i>                        carried model state (the LM's h and c), for exact resume
    vocab                            text models: the vocabulary, UTF-8, one word per line
    meta                             JSON: format version, nnctl version, the resolved config,
                                     the model's data-derived sizes, progress, RNG states,
                                     and a sha256 of every other array

Loading uses `allow_pickle=False`, so opening a checkpoint never runs code, and checks the
checksum, every name and every shape; anything wrong is one CheckpointError line.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import __version__
from nnctl.backend import as_numpy, get_xp
from nnctl.data.text import Vocab
from nnctl.errors import CheckpointError
from nnctl.rundir import atomic_write

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path | None = None
    vocab: Vocab | None = field(default=None)

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays under `prefix/`, with the prefix stripped."""
        start = prefix + "/"
        return {k[len(start):]: v for k, v in self.arrays.items() if k.startswith(start)}


def checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(a.dtype).encode())
        digest.update(str(a.shape).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def flatten_state(state: Any, prefix: str = "state") -> dict[str, np.ndarray]:
    """Nested tuples/lists of arrays -> {"state/0/1": array}; None -> {}."""
    if state is None:
        return {}
    if isinstance(state, (tuple, list)):
        out = {}
        for i, item in enumerate(state):
            out.update(flatten_state(item, f"{prefix}/{i}"))
        return out
    return {prefix: as_numpy(state)}


def unflatten_state(arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of flatten_state for the arrays under "state/" (already stripped of the prefix)."""
    if not arrays:
        return None
    tree: dict = {}
    for key, value in arrays.items():
        node = tree
        parts = [int(p) for p in key.split("/")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def build(node):
        if isinstance(node, dict):
            return tuple(build(node[i]) for i in sorted(node))
        return node

    return build(tree)


def model_arrays(model) -> dict[str, np.ndarray]:
    arrays = {f"model/{n}": as_numpy(p.data) for n, p in model.named_params().items()}
    arrays.update({f"model/{n}": as_numpy(b) for n, b in model.named_buffers().items()})
    return arrays


def save(path: Path, model, meta: dict[str, Any], *, optimizer=None, state: Any = None,
         vocab: Vocab | None = None) -> None:
    """Write a checkpoint atomically: the old file stays whole until the new one is complete."""
    arrays = model_arrays(model)
    if optimizer is not None:
        arrays.update({f"optim/{k}": as_numpy(v) for k, v in optimizer.state_dict().items()})
    arrays.update(flatten_state(state))
    if vocab is not None:
        arrays["vocab"] = np.frombuffer("\n".join(vocab.words).encode("utf-8"), dtype=np.uint8)
        arrays["vocab_counts"] = np.asarray(vocab.counts, dtype=np.int64)
    full_meta = {"format_version": FORMAT_VERSION, "nnctl_version": __version__, **meta,
                 "checksum": checksum(arrays)}
    arrays["meta"] = np.frombuffer(json.dumps(full_meta).encode("utf-8"), dtype=np.uint8)

    def write(handle):
        np.savez(handle, **arrays)

    atomic_write(Path(path), write)


def load(path: Path) -> Checkpoint:
    path = Path(path)
    hint = "it may be truncated or not an nnctl checkpoint; use another checkpoint (best.npz or last.npz)"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; give a run folder or a .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}); {hint}") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: no 'meta' record; {hint}")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: its meta record is damaged; {hint}") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format_version') if isinstance(meta, dict) else '?'} "
                              f"is not {FORMAT_VERSION}; it was written by another nnctl version")
    if meta.get("checksum") != checksum(arrays):
        raise CheckpointError(f"{path}: checksum mismatch, the arrays were altered or damaged; {hint}")
    vocab = None
    if "vocab" in arrays:
        words = arrays["vocab"].tobytes().decode("utf-8").split("\n")
        vocab = Vocab(words, arrays.get("vocab_counts"))
    return Checkpoint(arrays, meta, path, vocab)


def restore_model(model, ckpt: Checkpoint) -> None:
    """Copy the checkpoint's arrays into `model`, checking every name and shape."""
    saved = ckpt.group("model")
    expected = {**{n: p.data for n, p in model.named_params().items()}, **model.named_buffers()}
    for name, target in expected.items():
        if name not in saved:
            raise CheckpointError(f"{ckpt.path}: has no array for '{name}'; it was saved from a different model")
        if saved[name].shape != target.shape:
            raise CheckpointError(f"{ckpt.path}: '{name}' has shape {saved[name].shape}, the model expects "
                                  f"{target.shape}; it was saved from a different model configuration")
    extra = sorted(set(saved) - set(expected))
    if extra:
        raise CheckpointError(f"{ckpt.path}: unexpected array '{extra[0]}'; it was saved from a different model")
    for name, target in expected.items():
        target[...] = get_xp(target).asarray(saved[name])  # a no-op copy on the CPU, a host->device one on a GPU


def resolve_path(run_or_checkpoint: Path, which: str = "best") -> Path:
    """A run folder -> its checkpoints/<which>.npz (else last.npz); a file -> itself."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        for name in (which, "last"):
            candidate = path / "checkpoints" / f"{name}.npz"
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{path}: no checkpoint in {path / 'checkpoints'}; the run saved none "
                              "(it may have failed before its first epoch ended)")
    if path.is_file():
        return path
    raise CheckpointError(f"{path}: no such run folder or checkpoint file")


def build_model(ckpt: Checkpoint, dtype=None):
    """Rebuild the model a checkpoint was saved from, with its weights, on the CPU.

    dtype: the run's `dtype:` (float32 unless it was trained in float64) unless given.
    """
    from nnctl.models import MODELS
    from nnctl.registry import construct

    config = ckpt.meta.get("config", {})
    model_cfg = config.get("model")
    if not isinstance(model_cfg, dict):
        raise CheckpointError(f"{ckpt.path}: meta has no model config; it was not written by nnctl train")
    extras = dict(ckpt.meta.get("model_extras", {}))
    dtype = np.dtype(config.get("dtype", "float32")) if dtype is None else dtype
    extras.update(rng=np.random.default_rng(0), dtype=dtype)
    if ckpt.vocab is not None:
        extras["vocab"] = ckpt.vocab
    cls = MODELS.get(model_cfg.get("type"), "model.type")
    kwargs = {k: v for k, v in model_cfg.items() if k != "type"}
    model = construct(cls, kwargs, "model", extras)
    restore_model(model, ckpt)
    return model


def rng_states(model) -> dict[str, Any]:
    """Bit-generator states of every layer that owns an rng (dropout masks), for exact resume."""
    return {name or "<model>": layer.rng.bit_generator.state for name, layer in model.named_layers()
            if isinstance(getattr(layer, "rng", None), np.random.Generator)}


def restore_rng_states(model, states: dict[str, Any]) -> None:
    for name, layer in model.named_layers():
        key = name or "<model>"
        if key in states and isinstance(getattr(layer, "rng", None), np.random.Generator):
            layer.rng.bit_generator.state = states[key]
