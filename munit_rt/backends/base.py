"""The backend contract: backends move tensors, families translate.

A backend opens once, runs a bundle's graphs by name, and closes. `run(graph, feeds)` takes host (numpy) arrays
or values it returned earlier and gives numpy outputs; with `to_host=False` the outputs stay where the backend
computed them (a GPU), as Polygraphy's runners do with `copy_outputs_to_host=False`, and `take`, `to_host`
and `to_device` move them. A family's translate job is written once against these few calls
(munit_rt.families.X) and so runs unchanged on every backend: the content code of an image never leaves a GPU.

Template methods, as Polygraphy's runners: the public methods hold the state and feed checks, subclasses
implement `_open/_run/_close` and, when their values live elsewhere than the host, the movement hooks.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from munit_rt.errors import InputError

if TYPE_CHECKING:
    from munit_rt.bundle import Bundle
    from munit_rt.bundle.schema import GraphSpec


class Backend(abc.ABC):
    name: ClassVar[str] = ""
    install_hint: ClassVar[str] = ""
    # the precisions it runs (`--precision`, munit_rt.bundle.schema.RUNTIME_PRECISIONS) -> the bundle's stored
    # graph files each one runs from (bf16, a runtime precision, runs from the fp32 graphs)
    precisions: ClassVar[dict[str, str]] = {"fp32": "fp32", "fp16": "fp16"}

    def __init__(self, bundle: Bundle, precision: str = "fp32"):
        self.bundle = bundle
        self.precision = precision
        self.is_open = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when this backend can run here; otherwise why not (cheap: no heavy import)."""
        return None

    @classmethod
    def precision_refusal(cls, precision: str) -> str | None:
        """None when this backend runs `precision` (one of `precisions`) natively on this machine; else one line
        saying what would happen instead and what it costs (cheap: no heavy import)."""
        return None

    @classmethod
    def precision_note(cls, precision: str) -> str | None:
        """A note for the run (printed, not refused) about how this backend runs `precision`; None: nothing."""
        return None

    @property
    def graph_precision(self) -> str:
        """The stored graph files this backend runs (`bundle.graph_bytes(name, graph_precision)`)."""
        return self.precisions.get(self.precision, self.precision)

    @property
    def device(self) -> str:
        """Where the graphs run, in words (for reports)."""
        return "cpu"

    @property
    def max_batch(self) -> int | None:
        """The largest batch a graph takes (TensorRT profiles); None: any."""
        return None

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

    def run(self, graph: str, feeds: Mapping[str, Any], to_host: bool = True) -> dict[str, Any]:
        """Run one graph of the bundle on `feeds` (numpy arrays, or this backend's values); opens on first use.
        Outputs are numpy arrays, or with to_host=False the backend's own values (see `to_host`, `take`)."""
        spec = self.bundle.graphs.get(graph)
        if spec is None:
            raise InputError(f"graph '{graph}' is not in the bundle (has: {', '.join(sorted(self.bundle.graphs))})")
        check_feeds(spec, {name: self.value_info(value) for name, value in feeds.items()})
        self.open()
        return self._run_to_host(spec, dict(feeds)) if to_host else self._run(spec, dict(feeds))

    # -- moving values (host backends keep numpy arrays; device backends override all four) ------------
    def to_device(self, array: np.ndarray) -> Any:
        """A host array as this backend's value (uploaded once, then fed to several runs)."""
        return np.ascontiguousarray(array)

    def to_host(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def take(self, value: Any, rows: np.ndarray) -> Any:
        """Rows of a value along axis 0 (repeats allowed), as a value of this backend: how a job broadcasts
        one image's content over its styles without a trip to the host."""
        return value[np.asarray(rows)]

    def value_info(self, value: Any) -> tuple[tuple[int, ...], str]:
        """(shape, dtype name) of a feed, for the checks in `run`."""
        if not isinstance(value, np.ndarray):
            raise InputError(f"feeds must be numpy arrays, got {type(value).__name__}")
        return tuple(value.shape), value.dtype.name

    def synchronize(self) -> None:
        """Wait until queued work is done (GPU backends; timing needs it)."""

    # -- subclass hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _run(self, graph: GraphSpec, feeds: dict[str, Any]) -> dict[str, Any]: ...

    def _run_to_host(self, graph: GraphSpec, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        """`_run` with the outputs downloaded; device backends may download straight from their buffers."""
        return {name: self.to_host(value) for name, value in self._run(graph, feeds).items()}

    def _close(self) -> None:
        pass


def check_feeds(graph: GraphSpec, feeds: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
    """Names, dtypes, ranks and fixed dims against the manifest, so a backend never sees a bad feed."""
    expected = {t.name: t for t in graph.inputs}
    if set(feeds) != set(expected):
        raise InputError(f"graph '{graph.name}' takes inputs {sorted(expected)}, got {sorted(feeds)}")
    for name, (shape, dtype) in feeds.items():
        spec = expected[name]
        if dtype != spec.dtype:
            raise InputError(f"graph '{graph.name}' input '{name}' must be a {spec.dtype} array, got {dtype}")
        if len(shape) != spec.rank:
            raise InputError(f"graph '{graph.name}' input '{name}' must have rank {spec.rank} {list(spec.shape)}, "
                             f"got shape {list(shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, shape)):
            if isinstance(want, int) and want != got:
                raise InputError(f"graph '{graph.name}' input '{name}' needs size {want} on axis {axis} "
                                 f"{list(spec.shape)}, got shape {list(shape)}")
