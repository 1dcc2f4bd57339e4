"""YAML experiments: load safely, apply `--set` overrides, validate every key, fill in defaults.

An experiment has fixed sections; `type:` in data/model/optimizer/schedule picks a
registered class, and the class's constructor signature says which other keys are
allowed (see registry.py). Everything is checked here, before any data is read or any
run directory exists, and every mistake is one line naming the file and the dotted key:

    configs/x.yaml: model.hiden_dim: unknown key for model 'lstm_lm' (did you mean 'hidden_dim'?); ...
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from nnctl.errors import ConfigError, read_utf8
from nnctl.registry import did_you_mean, resolve_signature


@dataclass
class TrainConfig:
    """The `train:` section: how long to train and what to do along the way."""

    epochs: int = 10
    clip_grad_norm: float | None = None  # clip the global gradient norm to this value
    eval_every: int | None = None  # also evaluate on valid every N steps (besides every epoch)
    early_stopping: int | None = None  # stop after N epochs without a better validation metric
    checkpoint_every: int | None = None  # also save `last` every N steps (besides every epoch)
    eval_batch_size: int | None = None  # batch size for evaluation (default: the data's)
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss or gradient: stop, or skip that batch
    log_every: int = 50  # steps between plain progress lines when the output is not a terminal
    log_grad_norms: bool = False  # every log_every steps, each parameter's gradient norm (before clipping)
    threads: int | None = None  # BLAS and elementwise threads; null: measured while training (thread_tuner.py)

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm must be > 0 (or null), got {self.clip_grad_norm}")
        for key in ("eval_every", "early_stopping", "checkpoint_every", "eval_batch_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"{key} must be >= 1 (or null), got {value}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.threads is not None:
            from nnctl.threads import cores

            if not 1 <= self.threads <= cores():
                raise ValueError(f"threads must be between 1 and {cores()}, the cores this process may use, "
                                 f"got {self.threads} (or null: nnctl measures which count runs fastest)")


SECTIONS = ("name", "seed", "device", "dtype", "data", "model", "optimizer", "schedule", "train")
DTYPES = ("float32", "float64")
DEFAULT_SCHEDULE = {"type": "constant"}


def _registries():
    # Imported here: the registries fill up as their modules are imported.
    import nnctl.data  # noqa: F401
    import nnctl.models  # noqa: F401
    from nnctl.data.base import DATASETS
    from nnctl.models.base import MODELS
    from nnctl.optim import OPTIMIZERS
    from nnctl.schedules import SCHEDULES

    return {"data": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES}


MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; anything past 1 MiB is the wrong file
MAX_DEPTH = 64  # levels of nesting, aliases expanded (a config uses about four)
MAX_VALUES = 100_000  # values and collections, aliases expanded (an "alias bomb" asks for billions)


class _Rejected(Exception):
    """What _ConfigLoader refuses, with the place in the text."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.mark = problem, mark


class _ConfigLoader(yaml.SafeLoader):
    """yaml.safe_load (tags never build Python objects) plus what a config needs: every key a
    name given once, and no more than MAX_DEPTH levels or MAX_VALUES values once aliases are
    expanded, so neither a deep file nor a few aliases can exhaust the stack or the memory."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), aliases expanded

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Rejected(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            alias = self.check_event(yaml.AliasEvent)
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias:  # the node it names, counted again where it is used
            if id(node) not in self._expanded:
                raise _Rejected("an alias is used inside the value it names (a loop); a config cannot "
                                "contain itself", mark)
            return node
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        sizes = [self._expanded[id(child)] for child in children]
        values = 1 + sum(v for v, _ in sizes)
        depth = 1 + max((d for _, d in sizes), default=0)
        if values > MAX_VALUES:
            raise _Rejected(f"aliases expand to more than {MAX_VALUES:,} values", node.start_mark)
        if depth > MAX_DEPTH:
            raise _Rejected(f"aliases expand to more than {MAX_DEPTH} levels of nesting", node.start_mark)
        self._expanded[id(node)] = (values, depth)
        return node

    def construct_mapping(self, node, deep=False):
        seen: dict[str, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` merges, later keys win
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise _Rejected(f"a key is a {kind}; keys are plain names", key_node.start_mark)
            if key_node.tag != "tag:yaml.org,2002:str":
                kind = key_node.tag.rsplit(":", 1)[-1]
                raise _Rejected(f"key {key_node.value!r} is read as {kind}, not a name; use a name, or quote "
                                f"it ('{key_node.value}') if it is one", key_node.start_mark)
            if key_node.value in seen:
                raise _Rejected(f"duplicate key '{key_node.value}' (first on line {seen[key_node.value].line + 1}); "
                                "keep one of them", key_node.start_mark)
            seen[key_node.value] = key_node.start_mark
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text -> plain values (mappings, lists, scalars), or one ConfigError naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader, see above
    except _Rejected as error:
        mark = error.mark
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise ConfigError(f"{source}:{where} {error.problem}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        if isinstance(error, yaml.constructor.ConstructorError):
            raise ConfigError(f"{source}:{where}: YAML tag not allowed ({problem}); a config holds plain "
                              "values, lists and mappings only") from None
        raise ConfigError(f"{source}:{where}: malformed YAML ({problem}); fix the syntax there") from None


def resolve_section(section: str, value: Any) -> dict[str, Any]:
    """One `type:` section (data, model, optimizer or schedule) validated, defaults filled in."""
    return _registries()[section].resolve(value, section)


def check_values(registry, resolved: dict[str, Any], section: str) -> None:
    """Values a class can judge without data (a model's dropout rates, an optimizer's decay), judged
    now by its `check_options(**keys)`, so that a mistake stops the run before any data is read.

    It raises ValueError("key must ..."), which becomes "section.key: must ...", as when building.
    """
    check = getattr(registry.get(resolved["type"], f"{section}.type"), "check_options", None)
    if check is None:
        return
    options = {k: v for k, v in resolved.items() if k != "type"}
    try:
        check(**options)
    except ValueError as error:
        message = str(error)
        key = message.split(" ", 1)[0]
        if key in options:
            raise ConfigError(f"{section}.{key}: {message.split(' ', 1)[1]}") from None
        raise ConfigError(f"{section}: {message}") from None


def read_yaml(path: Path) -> Any:
    path = Path(path)
    text = read_utf8(path, ConfigError, "config file", "check the path (examples are in configs/)",
                     limit=MAX_CONFIG_BYTES)
    return parse_yaml(text, str(path))


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=c` -> (["a", "b"], value parsed as YAML). Splits on the first '=' only."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optimizer.lr=0.01")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {text!r}: the key must be dotted names, e.g. optimizer.lr")
    try:
        value = parse_yaml(raw, f"--set {key}") if raw.strip() else None
    except ConfigError as error:
        if "malformed YAML" not in str(error):
            raise  # a tag, a duplicate key, an alias bomb: never taken as text
        value = raw  # not YAML: take the text as a string
    return parts, value


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        parts, value = parse_override(text)
        node = cfg
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {text!r}: {where} is not a section, so it has no keys")
            node = child
        node[parts[-1]] = value
    return cfg


def resolve(raw: Any, source: str = "config") -> dict[str, Any]:
    """Validate a raw experiment dict and return it with every default filled in."""
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{source}: the file is {kind}, not a mapping of sections "
                          f"({', '.join(SECTIONS)}); see configs/ for examples")
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"{source}: {key}: unknown section{did_you_mean(key, SECTIONS)}; "
                              f"sections are: {', '.join(SECTIONS)}")
    for key in ("data", "model", "optimizer"):
        if key not in raw:
            raise ConfigError(f"{source}: {key}: required section is missing")

    out: dict[str, Any] = {}
    name = raw.get("name", Path(source).stem if source != "config" else "run")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{source}: name: expected a plain folder name, got {name!r}")
    out["name"] = name
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"{source}: seed: expected an integer >= 0, got {seed!r}")
    out["seed"] = seed
    device = raw.get("device", "cpu")
    from nnctl.backend import devices  # cpu, gpu, and in the test suite its stand-in devices

    if device not in devices():
        raise ConfigError(f"{source}: device: {device!r} is not a device; choose cpu or gpu")
    out["device"] = device
    dtype = raw.get("dtype", "float32")  # float64: gradient checks and exact equivalence tests
    if dtype not in DTYPES:
        raise ConfigError(f"{source}: dtype: {dtype!r} is not a supported precision; choose float32 or float64")
    out["dtype"] = dtype

    registries = _registries()
    for section in ("data", "model", "optimizer", "schedule"):
        value = raw.get(section, DEFAULT_SCHEDULE if section == "schedule" else None)
        try:
            out[section] = registries[section].resolve(value, section)
            check_values(registries[section], out[section], section)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    train = raw.get("train", {}) or {}
    if not isinstance(train, dict):
        raise ConfigError(f"{source}: train: expected a mapping of keys, got {train!r}")
    try:
        values = resolve_signature(TrainConfig, train, "train", what="the train section")
        out["train"] = asdict(TrainConfig(**values))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    except ValueError as error:
        raise ConfigError(f"{source}: train: {error}") from None
    return out


def load(path: Path, overrides: list[str] = ()) -> dict[str, Any]:
    """Read, override and resolve an experiment file."""
    raw = read_yaml(path)
    if overrides:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the file is not a mapping of sections; cannot apply --set")
        raw = apply_overrides(raw, list(overrides))
    return resolve(raw, str(path))


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=100)
