"""Typed configs: dataclasses filled from YAML files and ``key=value`` overrides, checked field by field.

The path of a configurable command (``synth``, ``train``, ``eval``): ``--config FILE`` (or a built-in name), then
``--set key=value ...``, then the command's own options (shortcuts for keys, e.g. ``--scenes 4`` for
``scenes=4``), through :func:`load_config` (``labels`` and ``label-quality`` apply ``--set`` with
:func:`apply_overrides` over their file reader, which also takes class names). A config dataclass checks its values
in ``__post_init__`` and raises ValueError; :func:`load_config` turns that into the one-line error naming the file,
``--set`` or the options.

>>> from easyocc.training.config import TrainConfig
>>> config = config_from_dict(TrainConfig, {"optim": {"epochs": 3}})
>>> changed = apply_overrides(config, ["optim.lr=0.01", "model.backbone=resnet18"])
>>> changed.optim.lr, changed.optim.epochs, changed.model.backbone
(0.01, 3, 'resnet18')
"""

from __future__ import annotations

import dataclasses
import types
import typing
from os import PathLike
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from easyocc.errors import EasyOccError, InputError
from easyocc.fileio import atomic_write

T = TypeVar("T")


#: The configs shipped with the package (the repository's ``configs/`` links here): ``--config demo`` names one.
BUILTIN_CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def resolve_config_path(value: str | PathLike, builtin_dir: Path = BUILTIN_CONFIG_DIR, kind: str = "config") -> Path:
    """A config file: ``value`` itself when it is a file, else the built-in file of that name in ``builtin_dir``
    (``demo``); ``kind`` names what is looked for in the error."""
    path = Path(value)
    if path.is_file():
        return path
    builtin = builtin_dir / f"{path.name}.yaml"
    if path.parent == Path(".") and not path.suffix and builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in builtin_dir.glob("*.yaml")))
    raise InputError(path, f"{kind} file not found (built-in {kind}s: {names})")


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``dotted.key old -> new`` for every value that differs between two nested mappings (sorted by key)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out


class ConfigError(ValueError):
    """A value that does not fit its field; the message names the dotted key."""


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against (and, where lossless, converted to) the type ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {annotation}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        key_type, item = args if args else (Any, Any)
        return {_convert(k, key_type, f"{key} key {k!r}"): _convert(v, item, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _from_dict(annotation, value, key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, (str, PathLike)):  # a path given as an option
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {annotation}")


def _from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key '{where}{unknown[0]}' (known: {', '.join(fields)})")
    kwargs = {name: _convert(value, hints[name], f"{prefix}.{name}" if prefix else name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, EasyOccError) as exc:  # a dataclass's own __post_init__ check
        raise ConfigError(f"{prefix}: {exc}" if prefix else str(exc)) from None


def config_from_dict(cls: type[T], data: dict | None) -> T:
    """A ``cls`` dataclass from a (nested) mapping; missing keys keep their defaults. Raises ConfigError."""
    return _from_dict(cls, data or {})


def config_to_dict(config: Any) -> dict:
    """Plain nested dict (tuples as lists) that YAML and ``config_from_dict`` round-trip."""

    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def _set(data: dict, key: str, value: Any, item: str) -> None:
    """``data[a][b] = value`` for the dotted key ``a.b`` (which must exist); ``item`` names it in errors."""
    node = data
    parts = key.strip().split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"unknown key '{'.'.join(parts[: i + 1])}' in {item}")
        if i < len(parts) - 1:
            node = node[part]
    node[parts[-1]] = value


def apply_overrides(config: T, overrides: list[str] = (), values: Mapping[str, Any] | None = None) -> T:
    """A copy of ``config`` with ``dotted.key=value`` overrides applied, their values parsed as YAML
    (``model.backbone=resnet18``, ``data.image_size=[160,288]``, ``model.pretrained=null``), then ``values``
    (dotted key -> a Python value, e.g. a command's option; None = not given) as they are."""
    data = config_to_dict(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        _set(data, key, yaml.safe_load(text), f"override '{item}'")
    for key, value in (values or {}).items():
        if value is not None:
            _set(data, key, value, "the options")
    return config_from_dict(type(config), data)


def load_config(cls: type[T], path: str | PathLike | None, overrides: list[str] = (),
                options: Mapping[str, Any] | None = None) -> T:
    """Read a YAML config file (or the defaults when ``path`` is None), apply ``--set`` overrides, then a command's
    ``options`` (dotted key -> value; None = not given, so the file's value stays).

    Any problem is an InputError naming the file (or ``--set``) and the offending key; a bad option value is an
    EasyOccError naming the key.
    """
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "config file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(path, f"invalid YAML ({' '.join(str(exc).split())})") from None
        if data is None:  # not silently the defaults: an empty file is more likely a mistake than a choice
            raise InputError(path, "the config file is empty (write the keys to change; built-in configs: "
                                   f"{', '.join(sorted(p.stem for p in BUILTIN_CONFIG_DIR.glob('*.yaml')))})")
        if not isinstance(data, dict):
            raise InputError(path, "a config file must hold a mapping of keys to values")
    try:
        config = config_from_dict(cls, data)
    except ConfigError as exc:
        raise InputError(path or "<defaults>", str(exc)) from None
    try:
        config = apply_overrides(config, list(overrides))
    except ConfigError as exc:
        raise InputError("--set", str(exc)) from None
    try:
        return apply_overrides(config, values=options)
    except ConfigError as exc:
        raise EasyOccError(str(exc)) from None


def save_config(path: str | PathLike, config: Any) -> None:
    """Write ``config`` as YAML, atomically, in field order."""
    with atomic_write(path, "w") as handle:
        yaml.safe_dump(config_to_dict(config), handle, sort_keys=False)
