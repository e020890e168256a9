"""The backend contract: open once, run named graphs on numpy feeds, close. Template methods, as in
Polygraphy's runners: the public methods hold the state and feed checks, subclasses only `_open/_run/_close`.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from munit_rt.errors import InputError

if TYPE_CHECKING:
    from munit_rt.bundle import Bundle, GraphSpec


class Backend(abc.ABC):
    name: ClassVar[str] = ""
    install_hint: ClassVar[str] = ""

    def __init__(self, bundle: Bundle, precision: str = "fp32"):
        self.bundle = bundle
        self.precision = precision
        self.is_open = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when this backend can run here; otherwise why not (cheap: no heavy import)."""
        return None

    @property
    def device(self) -> str:
        """Where the graphs run, in words (for reports)."""
        return "cpu"

    # -- public template methods ---------------------------------------------------------------------
    def open(self) -> Backend:
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self._close()
            self.is_open = False

    def __enter__(self) -> Backend:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph of the bundle; opens the backend on first use."""
        spec = self.bundle.graphs.get(graph)
        if spec is None:
            raise InputError(f"graph '{graph}' is not in the bundle (has: {', '.join(sorted(self.bundle.graphs))})")
        check_feeds(spec, feeds)
        self.open()
        return self._run(spec, feeds)

    # -- subclass hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _run(self, graph: GraphSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _close(self) -> None:
        pass


def check_feeds(graph: GraphSpec, feeds: dict[str, np.ndarray]) -> None:
    """Names, dtypes, ranks and fixed dims against the manifest, so a backend never sees a bad feed."""
    expected = {t.name: t for t in graph.inputs}
    if set(feeds) != set(expected):
        raise InputError(f"graph '{graph.name}' takes inputs {sorted(expected)}, got {sorted(feeds)}")
    for name, array in feeds.items():
        spec = expected[name]
        if not isinstance(array, np.ndarray) or array.dtype != np.dtype(spec.dtype):
            got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise InputError(f"graph '{graph.name}' input '{name}' must be a {spec.dtype} array, got {got}")
        if array.ndim != spec.rank:
            raise InputError(f"graph '{graph.name}' input '{name}' must have rank {spec.rank} {list(spec.shape)}, "
                             f"got shape {list(array.shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, array.shape)):
            if isinstance(want, int) and want != got:
                raise InputError(f"graph '{graph.name}' input '{name}' needs size {want} on axis {axis} "
                                 f"{list(spec.shape)}, got shape {list(array.shape)}")
