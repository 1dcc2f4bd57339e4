"""Reading finished (or running) run folders back: one summary per run, shared by `runs`, `compare` and `plot`.

A run folder is what `nnctl train` writes (see nnctl/rundir.py). This module only reads:
config.yaml, metrics.jsonl and status.json; it never touches checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnctl.errors import CheckpointError
from nnctl.metrics import MAIN_METRICS, higher_is_better
from nnctl.rundir import RunDir
from nnctl.safe_files import read_jsonl

@dataclass
class RunSummary:
    """What a run folder says about itself. Values are None where the run has not produced them."""

    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]
    state: str  # running / finished / interrupted / failed / unknown
    metric: str  # perplexity, accuracy or loss
    epochs: int  # epochs trained (train records)
    elapsed: float  # seconds, as recorded
    best_valid: float | None
    best_epoch: int | None
    final: dict[str, dict[str, Any]]  # split -> its last record (train, valid, test)

    @property
    def test(self) -> float | None:
        rec = self.final.get("test")
        return None if rec is None else rec.get(self.metric)

    @property
    def model_type(self) -> str:
        return self._type_of("model")

    @property
    def data_type(self) -> str:
        return self._type_of("data")

    def _type_of(self, section: str) -> str:
        value = self.config.get(section)
        return str(value.get("type", "?")) if isinstance(value, dict) else "?"


def _read_config(path: Path) -> dict[str, Any]:
    from nnctl.config import MAX_CONFIG_BYTES, parse_yaml
    from nnctl.errors import ConfigError, read_utf8

    try:
        cfg = parse_yaml(read_utf8(path, ConfigError, "config file", limit=MAX_CONFIG_BYTES), str(path))
    except ConfigError:
        return {}  # a damaged config must not hide the run's metrics
    return cfg if isinstance(cfg, dict) else {}


# What a metrics record's fields must be to be shown; a record with any of them wrong is skipped.
_NUMBERS = ("loss", "perplexity", "accuracy", "lr", "elapsed", "throughput", "grad_norm")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:  # an integer too large for a float
        return False
    return True


def _usable(record: Any) -> bool:
    """A metrics line as nnctl writes it: a mapping with a split name, whole epoch and step, numbers."""
    if not isinstance(record, dict) or not isinstance(record.get("split"), str):
        return False
    for key in ("epoch", "step"):
        if isinstance(record.get(key), bool) or not isinstance(record.get(key), int):
            return False
    return all(_is_number(record[key]) for key in _NUMBERS if key in record)


def summarise_run(path: Path) -> RunSummary:
    """Summary of one run folder (it must exist; see resolve_run for user-given paths).

    Run folders may have been touched by hand or cut short: a metrics line that is not a
    record nnctl writes is skipped, a status or config that is not a mapping is read as
    unknown, so one damaged run never stops `runs`, `compare` or `plot`.
    """
    run = RunDir(path)
    try:
        records = [r for r in read_jsonl(run.metrics_path) if _usable(r)]
    except (OSError, UnicodeDecodeError):
        records = []
    metric = next((k for k in MAIN_METRICS if any(k in r for r in records)), "loss")
    valid = [r for r in records if r.get("split") == "valid" and metric in r]
    best = None
    if valid:
        pick = max if higher_is_better(metric) else min
        best = pick(valid, key=lambda r: r[metric])
    final = {}
    for rec in records:
        final[rec.get("split")] = rec  # later records win
    return RunSummary(
        path=run.path, config=_read_config(run.config_path), records=records,
        state=str(run.status().get("state", "unknown"))[:20], metric=metric,
        epochs=max((r.get("epoch", 0) for r in records if r.get("split") == "train"), default=0),
        elapsed=max((r.get("elapsed", 0) for r in records), default=0),
        best_valid=None if best is None else best[metric], best_epoch=None if best is None else best.get("epoch"),
        final=final,
    )


def is_run_folder(path: Path) -> bool:
    return any((path / name).exists() for name in ("config.yaml", "metrics.jsonl", "checkpoints"))


def find_runs(runs_dir: Path) -> list[Path]:
    """Every run folder below `runs_dir`, sorted by path (so by name, then time)."""
    return sorted(p.parent for p in Path(runs_dir).glob("**/config.yaml"))


def resolve_run(path: Path) -> Path:
    """A run folder as a user names it: the folder itself, or `runs/<name>` meaning its latest run."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run folder; list runs with `nnctl runs runs/`")
    if is_run_folder(path):
        return path
    # runs/<name>/ holds timestamped runs; the timestamps sort in time order.
    children = sorted(p for p in path.iterdir() if p.is_dir() and is_run_folder(p))
    if children:
        return children[-1]
    raise CheckpointError(f"{path}: not a run folder (no config.yaml, metrics.jsonl or checkpoints/); "
                          "give runs/<name>/<timestamp> or runs/<name>")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


_MISSING = object()


def differing_keys(configs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Dotted config keys whose values are not the same in every config, with each config's value.

    A key that one config lacks counts as differing; its value there is None.
    """
    flats = [flatten(c) for c in configs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    rows = []
    for key in keys:
        values = [flat.get(key, _MISSING) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, [None if v is _MISSING else v for v in values]))
    return rows


def short_labels(paths: list[Path]) -> list[str]:
    """The shortest trailing parts of each path that tell the runs apart, e.g. 'lstm/20261130-101500'."""
    parts = [Path(p).resolve().parts for p in paths]
    for depth in range(2, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]  # the same folder given twice
