"""Configs of every family: frozen dataclasses with the upstream key names, built from YAML or a stored dict.

Unknown keys and bad values are refused with a `ConfigError` naming the file and the key, because a typo in a
training config otherwise silently trains the wrong model for a day. A family declares its fields with `key()`
(the checks ride along as field metadata) and builds them with `build_config`; the family of a mapping is its
`family` key, else the registry's default family (official MUNIT YAMLs have no such key).

    key(default, **checks)            a field and its checks: type (optional ints, name lists), choices (expect:
                                      how to say them), min, positive, nullable
    build_config(cls, data, source)   the dataclass, every key checked; nested dataclasses by prefix (gen.dim)
    config_from_dict(data, source)    any family's config
    load_config(path)                 the same from a YAML file
"""
from __future__ import annotations

import dataclasses
from dataclasses import field, fields
from pathlib import Path
from typing import Any

from munit_rt.training import registry
from munit_rt.training.errors import ConfigError


def key(default: Any, **checks: Any) -> Any:
    """A config field with its checks as metadata (see the module docstring)."""
    return field(default=default, metadata=checks)


def build_config(cls: type, data: Any, source: str, prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for name, value in data.items():
        path = f"{prefix}{name}"
        if name not in known:
            raise ConfigError(f"{source}: unknown key '{path}' (known: {', '.join(sorted(known))})")
        kwargs[name] = _check_value(known[name], value, path, source)
    return cls(**kwargs)


def _check_value(f: dataclasses.Field, value: Any, path: str, source: str) -> Any:
    nested = f.default_factory
    if isinstance(nested, type) and dataclasses.is_dataclass(nested):  # MUNIT's gen: and dis: sections
        return build_config(nested, value, source, prefix=f"{path}.")
    default = f.default if f.default is not dataclasses.MISSING else None
    if value is None and (default is None or f.metadata.get("nullable")):
        return None
    expected = f.metadata.get("type") or (type(default) if default is not None else str)
    if expected in (bool, tuple):
        return _check_bool_or_names(expected, value, path, source)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{source}: key '{path}' must be {expected.__name__}, got {value!r}")
    if "choices" in f.metadata and value not in f.metadata["choices"]:
        if "expect" in f.metadata:
            raise ConfigError(f"{source}: key '{path}' must be {f.metadata['expect']}, got {value!r}")
        choices = ", ".join(map(str, f.metadata["choices"]))
        raise ConfigError(f"{source}: key '{path}' is {value!r}; expected one of {choices}")
    if f.metadata.get("positive") and value <= 0:
        raise ConfigError(f"{source}: key '{path}' must be > 0, got {value!r}")
    if "min" in f.metadata and value < f.metadata["min"]:
        raise ConfigError(f"{source}: key '{path}' must be >= {f.metadata['min']}, got {value!r}")
    return value


def _check_bool_or_names(expected: type, value: Any, path: str, source: str) -> Any:
    """Booleans, and lists of names (YAML lists, stored as tuples so configs stay frozen)."""
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: key '{path}' must be true or false, got {value!r}")
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: key '{path}' must be a list of names, got {value!r}")
    duplicates = sorted({item for item in value if list(value).count(item) > 1})
    if duplicates:
        raise ConfigError(f"{source}: key '{path}' names {', '.join(duplicates)} more than once")
    return tuple(value)


def config_from_dict(data: Any, source: str = "config", family: str | None = None):
    """The config of the family named by `family` or by the mapping's `family` key (else the default family)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: config must be a mapping")
    named = data.get("family")
    if family is not None and named is not None and named != family:
        raise ConfigError(f"{source}: a '{named}' config where a '{family}' one is needed")
    spec = registry.get_family(family) if family is not None else registry.family_for(data, source)
    return spec.config_from_dict({k: v for k, v in data.items() if k != "family"}, source)


def load_config(path: str | Path, family: str | None = None):
    """Read a YAML config of any family (`family` given: it must be that family's); one-line `ConfigError`s."""
    return config_from_dict(read_yaml(path), source=str(path), family=family)


def read_yaml(path: str | Path) -> Any:
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        raise ConfigError(f"{path}: config is empty")
    return data
