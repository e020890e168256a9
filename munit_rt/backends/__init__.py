"""Backend registry: name -> class, imported on demand so unused backends cost nothing.

`auto` takes the fastest one that can run here: tensorrt, then onnxruntime (which itself prefers CUDA
over CPU when onnxruntime-gpu and a GPU are present). openvino runs only when named (`--backend openvino`).

Precision is always explicit (`--precision`, default fp32): `check_precision` refuses, in one line and before
anything opens, a precision that is unknown, that the backend does not run, that this machine cannot run natively
(the backend's `precision_refusal`), or whose graph files the bundle lacks (bf16 runs from the fp32 graphs).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from munit_rt.errors import BackendUnavailable, BundleError, InputError, MunitRtError

if TYPE_CHECKING:
    from munit_rt.backends.base import Backend
    from munit_rt.bundle import Bundle

# name -> (module, class, install hint used when the module itself is not part of this installation)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "tensorrt": ("munit_rt.backends.tensorrt", "TensorRTBackend", "pip install 'munit-rt[tensorrt]'"),
    "onnxruntime": ("munit_rt.backends.onnxruntime", "OnnxRuntimeBackend", "pip install onnxruntime"),
    "torch": ("munit_rt.backends.torch", "TorchBackend", "pip install 'munit-rt[train]'"),
    "openvino": ("munit_rt.backends.openvino", "OpenVinoBackend", "pip install 'munit-rt[openvino]'"),
}
AUTO_ORDER = ("tensorrt", "onnxruntime")  # torch is a reference, never picked automatically


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise MunitRtError(f"unknown backend '{name}' (known: auto, {', '.join(BACKENDS)})")
    module_name, class_name, hint = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise BackendUnavailable(name, "not included in this munit-rt installation", hint=hint) from None
    return getattr(module, class_name)


def unavailable_reason(name: str) -> str | None:
    """None when backend `name` can run here, else a one-line reason with the install hint."""
    try:
        cls = backend_class(name)
    except BackendUnavailable as exc:
        return str(exc)
    reason = cls.unavailable_reason()
    return None if reason is None else str(BackendUnavailable(name, reason, hint=cls.install_hint))


def available_backends() -> list[str]:
    return [name for name in BACKENDS if unavailable_reason(name) is None]


def resolve_backend_name(name: str) -> str:
    if name != "auto":
        return name
    for candidate in AUTO_ORDER:
        if unavailable_reason(candidate) is None:
            return candidate
    raise BackendUnavailable("auto", "no inference backend can run here", hint="pip install onnxruntime")


def get_backend(name: str, bundle: Bundle, precision: str = "fp32", **opts) -> Backend:
    """An unopened backend for `bundle` (opening builds sessions/engines or loads the checkpoint)."""
    name = resolve_backend_name(name)
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(name, reason, hint=cls.install_hint)
    check_precision(cls, bundle, precision)
    return cls(bundle, precision=precision, **opts)


def check_precision(backend: str | type[Backend], bundle: Bundle | None, precision: str) -> None:
    """Refuse, in one line, a precision that `backend` cannot run here or whose graphs `bundle` lacks."""
    from munit_rt.bundle.reader import missing_precision_hint
    from munit_rt.bundle.schema import RUNTIME_PRECISIONS

    cls = backend_class(resolve_backend_name(backend)) if isinstance(backend, str) else backend
    if precision not in RUNTIME_PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (known: {', '.join(RUNTIME_PRECISIONS)})")
    if precision not in cls.precisions:
        others = [name for name in BACKENDS if name != cls.name and precision in _listed_precisions(name)]
        where = f"; use --backend {' or '.join(others)}" if others else ""
        raise InputError(f"--precision {precision}: the {cls.name} backend runs {', '.join(cls.precisions)}{where}, "
                         f"or --precision fp32")
    refusal = cls.precision_refusal(precision)
    if refusal is not None:
        raise InputError(refusal)
    stored = cls.precisions[precision]
    if bundle is not None and stored not in bundle.precisions:
        runtime = f"{precision} runs from the {stored} graphs; " if stored != precision else ""
        raise BundleError(f"bundle {bundle.path} has no {stored} graphs ({runtime}it holds "
                          f"{', '.join(bundle.precisions)}); {missing_precision_hint(bundle.path, stored)}, or pass "
                          f"--precision fp32")


def _listed_precisions(name: str) -> tuple[str, ...]:
    """The precisions backend `name` runs, without importing a backend this installation lacks."""
    try:
        return tuple(backend_class(name).precisions)
    except MunitRtError:
        return ()
