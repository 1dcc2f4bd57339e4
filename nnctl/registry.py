"""Registries map the short names used in `type:` keys to classes, and build them from config.

The constructor signature is the config schema: every keyword parameter is a config key,
its annotation is the expected type and its default the default. Keyword-only parameters
(after the `*`) are "extras" that come from the data or the runtime (vocab size, input
shape, rng, dtype) and may not be set in the YAML.

    MODELS = Registry("model")

    @MODELS.register("mlp")
    class MLP(Model):
        def __init__(self, hidden_sizes: list[int] = (256,), *, input_shape, num_classes, rng): ...

    MODELS.build({"type": "mlp", "hidden_sizes": [128]}, path="model",
                 input_shape=(784,), num_classes=10, rng=rng)
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
import types
import typing
from typing import Any, Callable

from nnctl.errors import ConfigError


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def add(cls: type) -> type:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._classes[name] = cls
            cls.registered_name = name
            return cls

        return add

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: Any, path: str = "type") -> type:
        if not isinstance(name, str) or name not in self._classes:
            raise ConfigError(
                f"{path}: {name!r} is not a registered {self.kind}{did_you_mean(name, self._classes)}; "
                f"choose one of: {', '.join(self.names())}"
            )
        return self._classes[name]

    def resolve(self, cfg: Any, path: str) -> dict[str, Any]:
        """Validate a `{type: ..., key: value}` section and fill in defaults, without building."""
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: expected a mapping with a 'type:' key, got {_describe(cfg)}")
        if "type" not in cfg:
            raise ConfigError(
                f"{path}.type: missing; choose one of: {', '.join(self.names())}"
            )
        cls = self.get(cfg["type"], f"{path}.type")
        values = resolve_signature(cls, {k: v for k, v in cfg.items() if k != "type"}, path,
                                   what=f"{self.kind} '{cfg['type']}'")
        return {"type": cfg["type"], **values}

    def build(self, cfg: dict[str, Any], path: str, **extras):
        """Build the registered class from a config section; `extras` come from the data."""
        resolved = self.resolve(cfg, path)
        cls = self.get(resolved["type"], f"{path}.type")
        kwargs = {k: v for k, v in resolved.items() if k != "type"}
        return construct(cls, kwargs, path, extras)


def construct(cls, kwargs: dict, path: str, extras: dict):
    """Call cls(**kwargs, **extras), turning a constructor's ValueError into a ConfigError."""
    accepted = inspect.signature(cls).parameters
    extras = {k: v for k, v in extras.items() if k in accepted}
    try:
        return cls(**kwargs, **extras)
    except ValueError as error:  # constructors validate values and say what is wrong
        message = str(error)
        key = message.split(" ", 1)[0]
        if key in kwargs:  # "lr must be > 0, got -1" -> "optimizer.lr: must be > 0, got -1"
            raise ConfigError(f"{path}.{key}: {message.split(' ', 1)[1]}") from None
        raise ConfigError(f"{path}: {message}") from None


def config_parameters(cls) -> dict[str, inspect.Parameter]:
    """The parameters of cls.__init__ that the YAML may set: all but the keyword-only extras."""
    out = {}
    for name, p in inspect.signature(cls).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind == p.KEYWORD_ONLY:
            continue  # an extra: supplied from the data or runtime, never from the config
        out[name] = p
    return out


def resolve_signature(cls, cfg: dict[str, Any], path: str, what: str) -> dict[str, Any]:
    params = config_parameters(cls)
    hints = typing.get_type_hints(cls.__init__)
    for key in cfg:
        if key not in params:
            raise ConfigError(
                f"{path}.{key}: unknown key for {what}{did_you_mean(key, params)}; "
                f"valid keys: {', '.join(params) or '(none)'}"
            )
    out = {}
    for name, p in params.items():
        if name in cfg:
            out[name] = check_type(cfg[name], hints.get(name, Any), f"{path}.{name}")
        elif p.default is p.empty:
            raise ConfigError(f"{path}.{name}: required key is missing for {what}")
        else:
            default = p.default
            out[name] = list(default) if isinstance(default, tuple) else default
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"[:80]


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def check_type(value: Any, tp, path: str) -> Any:
    """Check a YAML value against an annotation; int is accepted where float is expected."""
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"{path}: {value!r} is not allowed{did_you_mean(value, [str(a) for a in args])}; "
                          f"choose one of: {', '.join(str(a) for a in args)}")
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return check_type(value, option, path)
            except ConfigError as error:
                if "finite" in str(error):  # the right type, an impossible value: say that
                    raise
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")
        item_type = args[0] if args else Any
        return [check_type(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_describe(value)}")
        return value
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e308 else math.inf
        elif isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            number = float(value)  # PyYAML reads `1e-3` (no dot) as a string; we take it as meant
        if number is not None:
            if not math.isfinite(number):  # no option means anything with NaN or infinity
                raise ConfigError(f"{path}: expected a finite number, got {value!r}")
            return number
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")
