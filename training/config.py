"""The config of any family, from a stored dict or a YAML file: the family of a mapping is its `family` key,
else the registry's default family (official MUNIT YAMLs have no such key); the family builds its config with
munit_rt.training.config_fields.

    config_from_dict(data, source)    any family's config
    load_config(path)                 the same from a YAML file
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from munit_rt.training import registry
from munit_rt.training.errors import ConfigError


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
