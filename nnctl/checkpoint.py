"""Checkpoints: one .npz of named arrays plus a JSON `meta`, never a pickle.

    model/<param or buffer name>     the model's arrays, float32 as trained
    optim/<name>/<slot>              optimizer state (Adam's m and v, step count)
    state/<i>                        carried model state (the LM's h and c), for exact resume
    vocab                            text models: the vocabulary, UTF-8, one word per line
    meta                             JSON: format version, nnctl version, the resolved config,
                                     the model's data-derived sizes, progress, RNG states,
                                     and a sha256 of every other array

Loading uses `allow_pickle=False`, so opening a checkpoint never runs code. Before any
array is read, each one's header is checked against the bytes the file holds (a header may
claim terabytes); then the checksum (format 2: over the arrays *and* the meta record, so an
edited meta is caught; format 1, written before, covered the arrays only and still loads),
and the meta record is validated with the same schema as a config. Anything wrong is one
CheckpointError line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import __version__
from nnctl.backend import as_numpy, get_xp
from nnctl.data.text import Vocab
from nnctl.errors import CheckpointError
from nnctl.safe_files import atomic_write

FORMAT_VERSION = 2  # 2: the checksum covers the meta record too
READABLE_VERSIONS = (1, 2)  # 1: the checksum covers the arrays only
LOAD_HINT = "it may be truncated or not an nnctl checkpoint; use another checkpoint (best.npz or last.npz)"


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


def checksum(arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> str:
    """sha256 of every array (name, dtype, shape, bytes) and, from format 2, of the meta record
    (as canonical JSON, its own "checksum" left out)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(a.dtype).encode())
        digest.update(str(a.shape).encode())
        digest.update(a.tobytes())
    if meta is not None:
        record = {k: v for k, v in meta.items() if k != "checksum"}
        digest.update(b"meta")
        digest.update(json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8"))
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
    full_meta = {"format_version": FORMAT_VERSION, "nnctl_version": __version__, **meta}
    full_meta = json.loads(json.dumps(full_meta))  # hashed as it will be read back (tuples -> lists)
    full_meta["checksum"] = checksum(arrays, full_meta)
    arrays["meta"] = np.frombuffer(json.dumps(full_meta).encode("utf-8"), dtype=np.uint8)

    def write(handle):
        np.savez(handle, **arrays)

    atomic_write(Path(path), write)


def _check_members(path: Path, hint: str) -> None:
    """Every .npy member's header against the bytes stored for it, before anything is allocated."""
    damaged = f"{path}: damaged checkpoint"
    try:
        archive_size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                    raise CheckpointError(f"{damaged} ('{info.filename}' claims {info.file_size:,} bytes, "
                                          f"holds {info.compress_size:,}); {hint}")
                if info.compress_size > archive_size or info.file_size > 64 * archive_size + (1 << 20):
                    raise CheckpointError(f"{damaged} ('{info.filename}' claims {info.file_size:,} bytes, "
                                          f"the file has {archive_size:,}); {hint}")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                    stored = info.file_size - member.tell()
                if dtype.hasobject or math.prod(shape) * dtype.itemsize != stored:
                    raise CheckpointError(f"{damaged} ('{info.filename}' has a header for shape {shape} "
                                          f"{dtype} and {stored:,} bytes of data); {hint}")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError, TypeError,
            OverflowError, MemoryError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}); {hint}") from None


def load(path: Path, hint: str = LOAD_HINT) -> Checkpoint:
    """Read and check a checkpoint; `hint` is the fix an error line ends with."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; give a run folder or a .npz file")
    _check_members(path, hint)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError, MemoryError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}); {hint}") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: no 'meta' record; {hint}")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: its meta record is damaged; {hint}") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise CheckpointError(f"{path}: checkpoint format {version if version is not None else '?'} "
                              f"is not {FORMAT_VERSION}; it was written by another nnctl version")
    covered = "arrays" if version == 1 else "arrays or the meta record"
    if meta.get("checksum") != checksum(arrays, meta if version >= 2 else None):
        raise CheckpointError(f"{path}: checksum mismatch, the {covered} were altered or damaged; {hint}")
    meta = validate_meta(meta, path, hint)
    vocab = None
    if "vocab" in arrays:
        try:
            words = arrays["vocab"].tobytes().decode("utf-8").split("\n")
            vocab = Vocab(words, arrays.get("vocab_counts"))
        except (UnicodeDecodeError, ValueError, TypeError) as error:
            raise CheckpointError(f"{path}: its vocabulary is damaged ({error}); {hint}") from None
    return Checkpoint(arrays, meta, path, vocab)


def validate_meta(meta: dict[str, Any], path: Path, hint: str = LOAD_HINT) -> dict[str, Any]:
    """The meta record checked like a config: the experiment resolves, every field has its type.

    Returns the meta with its config resolved (defaults of options added since it was saved
    filled in). One CheckpointError line for the first thing wrong.
    """
    from nnctl import config as config_mod
    from nnctl.errors import ConfigError
    from nnctl.progress import Progress

    def wrong(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: meta {what}; {hint}")

    kinds = {"config": dict, "model_extras": dict, "schedule": dict, "rng": dict, "progress": dict,
             "model_type": str, "metric": str, "nnctl_version": str}
    for key, kind in kinds.items():
        if key in meta and not isinstance(meta[key], kind):
            raise wrong(f"{key} is {type(meta[key]).__name__}, not {kind.__name__}")
    meta = dict(meta)
    cfg = meta.get("config")
    try:
        if cfg and all(key in cfg for key in ("data", "model", "optimizer")):
            meta["config"] = config_mod.resolve(cfg, "config")
        elif cfg:  # saved outside `nnctl train` (tools, tests): the sections it has are checked
            meta["config"] = {**cfg, **{key: config_mod.resolve_section(key, cfg[key])
                                        for key in ("data", "model", "optimizer", "schedule") if key in cfg}}
    except ConfigError as error:
        raise wrong(f"holds an invalid experiment ({str(error).removeprefix('config: ')})") from None
    if "progress" in meta:
        fields = {f.name: f.type for f in dataclasses.fields(Progress)}
        for key, value in meta["progress"].items():
            if key not in fields:
                raise wrong(f"progress has an unknown field '{key}'")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            integer = isinstance(value, int) and not isinstance(value, bool)
            ok = (integer and value >= 0) if fields[key] == "int" else (value is None or number) \
                if "None" in str(fields[key]) else number
            if not ok:
                raise wrong(f"progress.{key} is {value!r}")
    for name, state in meta.get("rng", {}).items():
        if not (isinstance(state, dict) and isinstance(state.get("bit_generator"), str)
                and isinstance(state.get("state"), dict)):
            raise wrong(f"rng.{name} is not a generator state")
    return meta


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


def rng_states(model) -> dict[str, Any]:
    """Bit-generator states of every layer that owns an rng (dropout masks), for exact resume."""
    return {name or "<model>": layer.rng.bit_generator.state for name, layer in model.named_layers()
            if isinstance(getattr(layer, "rng", None), np.random.Generator)}


def restore_rng_states(model, states: dict[str, Any]) -> None:
    for name, layer in model.named_layers():
        key = name or "<model>"
        if key in states and isinstance(getattr(layer, "rng", None), np.random.Generator):
            try:
                layer.rng.bit_generator.state = states[key]
            except (TypeError, ValueError, KeyError) as error:
                raise CheckpointError(f"the checkpoint's random state for '{key}' does not fit ({error}); "
                                      "it was saved from a different model") from None


# -- a training run's checkpoints: what they hold besides the weights, and resuming from them --
def training_meta(experiment: dict[str, Any], model_extras: dict[str, Any], model, progress: dict[str, Any],
                  schedule) -> dict[str, Any]:
    """The meta record of a training checkpoint: enough to rebuild the model and resume exactly."""
    return {
        "config": experiment,  # the resolved config
        "model_extras": model_extras,  # the model's data-derived sizes (vocabulary, classes)
        "model_type": experiment["model"]["type"],
        "metric": model.metric,
        "progress": progress,
        "schedule": schedule.state_dict(),
        "rng": rng_states(model),
    }


def restore_training(ckpt: Checkpoint, model, optimizer, schedule) -> tuple[dict[str, Any], Any]:
    """Put a training checkpoint's weights, optimizer state, schedule and random states back
    in place; return its progress record and the carried model state (the whole global batch's)."""
    restore_model(model, ckpt)
    optimizer.load_state_dict(ckpt.group("optim"))
    schedule.load_state_dict(ckpt.meta.get("schedule", {}))
    restore_rng_states(model, ckpt.meta.get("rng", {}))
    return ckpt.meta["progress"], unflatten_state(ckpt.group("state"))
