"""The family registry of the runtime: name -> Family (munit_rt/families/base.py).

Every module of this package is imported on first use and registers its family, as timm's model files do; a
family added elsewhere (a plugin, a test) calls `register` itself. Nothing outside a family's own module
names it.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading

from munit_rt.families.base import Family, TranslatePlan  # noqa: F401 (re-exported)

_FAMILIES: dict[str, Family] = {}
_LOCK = threading.Lock()
_discovered = False


def register(family: Family) -> Family:
    """Add `family` under `family.name`; a second family of the same name is refused."""
    existing = _FAMILIES.get(family.name)
    if existing is not None and type(existing) is not type(family):
        raise ValueError(f"a model family named {family.name!r} is already registered ({type(existing).__name__})")
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family (tests that register a toy family clean up with this)."""
    _FAMILIES.pop(name, None)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    with _LOCK:
        if not _discovered:
            for module in pkgutil.iter_modules(__path__):
                if module.name != "base" and not module.name.startswith("_"):
                    importlib.import_module(f"{__name__}.{module.name}")
            _discovered = True


def families() -> dict[str, Family]:
    _discover()
    return dict(_FAMILIES)


def get_family(name: object) -> Family | None:
    """The family registered as `name`, or None (callers say what they expected)."""
    _discover()
    return _FAMILIES.get(name) if isinstance(name, str) else None
