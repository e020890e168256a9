"""Reading untrusted JSON key by key: bounded parsing, and typed getters whose errors name the key path.

A manifest may have been hand-edited, damaged or crafted. `load_json` refuses what Python's json module would
turn into a crash or a huge allocation (nesting deeper than MAX_DEPTH, integers longer than MAX_INT_DIGITS,
NaN and Infinity, documents over a size limit); `Fields` then reads one object: each getter checks the type,
and a range or a choice where the caller gives one, and raises `ManifestError(path, problem)` where `path` is
the dotted key (`graphs.decoder_a.inputs[1].shape`). Callers turn that into their own one-line error.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterator, Sequence

from munit_rt.text import printable

MAX_DEPTH = 32            # a manifest nests 6 levels; anything deeper is not ours
MAX_INT_DIGITS = 20       # int64 has 19
MAX_STRING = 4096         # names, paths, hashes, dates; configs hold longer text only in their own values
MAX_ITEMS = 100_000       # list and object sizes

_MISSING = object()


class ManifestError(ValueError):
    """A problem at one key of a JSON document; `path` is the dotted key ("" for the document itself). The
    message shows the key escaped and shortened (JSON keys are any text, of any length)."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"'{show_key(path)}' {problem}" if path else problem)


def show_key(text: str, limit: int = 160) -> str:
    """A key or path from the document for a one-line message: control characters escaped, at most `limit`."""
    text = printable(text, control=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_json(text: str | bytes, max_bytes: int) -> Any:
    """json.loads with the limits above; ManifestError("", reason) for anything refused."""
    if len(text) > max_bytes:
        raise ManifestError("", f"is {len(text)} bytes, more than the {max_bytes} a manifest may have")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError("", f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        raise ManifestError("", f"nests {depth} levels deep (at most {MAX_DEPTH})")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant, parse_float=_finite_float)
    except ManifestError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ManifestError("", f"is not valid JSON ({str(exc)[:200]})") from None


def _max_depth(text: str) -> int:
    """Deepest [ / { nesting outside strings, without building anything (json.loads would recurse)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ManifestError("", f"holds an integer of {len(text)} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ManifestError("", f"holds the number {text[:40]}, which is not finite")
    return value


def _no_constant(name: str) -> None:
    raise ManifestError("", f"holds {name}, which is not a JSON number")


class Fields:
    """One JSON object under validation. `Fields(data, "graphs.decoder_a")` names keys relative to that path."""

    def __init__(self, data: Any, path: str = ""):
        if not isinstance(data, dict):
            raise ManifestError(path, f"must be an object, got {_kind(data)}")
        self.data, self.path = data, path

    def key(self, name: str | int) -> str:
        if isinstance(name, int):
            return f"{self.path}[{name}]"
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        if name not in self.data:
            if default is _MISSING:
                raise ManifestError(self.key(name), "is missing")
            return default
        return self.data[name]

    # -- scalars -------------------------------------------------------------------------------------
    def str(self, name: str, default: Any = _MISSING, choices: Sequence[str] | None = None,
            max_len: int = MAX_STRING) -> Any:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        return check_str(value, self.key(name), choices, max_len)

    def int(self, name: str, default: Any = _MISSING, low: int | None = None, high: int | None = None) -> Any:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        return check_int(value, self.key(name), low, high)

    def float(self, name: str, default: Any = _MISSING, low: float | None = None, high: float | None = None) -> Any:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ManifestError(self.key(name), f"must be a finite number, got {_show(value)}")
        _check_range(float(value), self.key(name), low, high)
        return float(value)

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            raise ManifestError(self.key(name), f"must be true or false, got {_show(value)}")
        return value

    # -- containers ----------------------------------------------------------------------------------
    def obj(self, name: str, default: Any = _MISSING) -> Fields:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return Fields(value if isinstance(value, dict) else {}, self.key(name))
        return Fields(value, self.key(name))

    def list(self, name: str, default: Any = _MISSING, min_items: int = 0, max_items: int = MAX_ITEMS) -> list:
        value = self.raw(name, default)
        key = self.key(name)
        if not isinstance(value, list):
            raise ManifestError(key, f"must be a list, got {_kind(value)}")
        if not min_items <= len(value) <= max_items:
            raise ManifestError(key, f"must hold {min_items} to {max_items} items, got {len(value)}")
        return value

    def objects(self, name: str, min_items: int = 0) -> list[Fields]:
        """A list of objects, each as Fields."""
        key = self.key(name)
        return [Fields(item, f"{key}[{i}]") for i, item in enumerate(self.list(name, min_items=min_items))]

    def entries(self, name: str, min_items: int = 0, key_choices: Sequence[str] | None = None) \
            -> Iterator[tuple[str, Fields]]:
        """(key, Fields) of an object whose values are objects (graphs, domains, files by precision)."""
        mapping = self.obj(name)
        if len(mapping.data) < min_items:
            raise ManifestError(mapping.path, f"must hold at least {min_items} entr{'y' if min_items == 1 else 'ies'}")
        if len(mapping.data) > MAX_ITEMS:
            raise ManifestError(mapping.path, f"holds {len(mapping.data)} entries")
        for entry in mapping.data:
            check_str(entry, mapping.key(entry), key_choices)
            yield entry, mapping.obj(entry)

    def strings(self, name: str, default: Any = _MISSING, choices: Sequence[str] | None = None,
                unique: bool = True) -> tuple[str, ...]:
        if default is not _MISSING and name not in self.data:
            return tuple(default)
        items = self.list(name)
        values = tuple(check_str(item, self.key(name) + f"[{i}]", choices) for i, item in enumerate(items))
        if unique and len(set(values)) != len(values):
            raise ManifestError(self.key(name), "names an entry more than once")
        return values

    def numbers(self, name: str, length: int | None = None, default: Any = _MISSING,
                low: float | None = None, high: float | None = None) -> tuple[float, ...]:
        if default is not _MISSING and name not in self.data:
            return tuple(default)
        items = self.list(name, min_items=length or 0, max_items=length or MAX_ITEMS)
        sub = Fields({str(i): v for i, v in enumerate(items)}, self.key(name))
        return tuple(sub.float(str(i), low=low, high=high) for i in range(len(items)))

    def check(self, condition: bool, name: str, problem: str) -> None:
        if not condition:
            raise ManifestError(self.key(name), problem)

    def map(self, name: str, parse: Callable[[Fields], Any]) -> Any:
        return parse(self.obj(name))


def check_str(value: Any, key: str, choices: Sequence[str] | None = None, max_len: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise ManifestError(key, f"must be a string, got {_show(value)}")
    if len(value) > max_len:
        raise ManifestError(key, f"is {len(value)} characters long (at most {max_len})")
    if choices is not None and value not in choices:
        raise ManifestError(key, f"is {_show(value)}; expected one of {', '.join(map(str, choices))}")
    return value


def check_int(value: Any, key: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(key, f"must be an integer, got {_show(value)}")
    _check_range(value, key, low, high)
    return value


def _check_range(value: float, key: str, low: float | None, high: float | None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        raise ManifestError(key, f"must be {bounds}, got {value}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _show(value: Any) -> str:
    """A value for an error message: short, one line, control characters escaped."""
    if isinstance(value, (dict, list)):
        return _kind(value)
    text = json.dumps(value, ensure_ascii=True) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
