"""Backend registry: name -> class, imported on demand so unused backends cost nothing.

`auto` takes the fastest one that can run here: tensorrt, then onnxruntime (which itself prefers CUDA
over CPU when onnxruntime-gpu and a GPU are present).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from munit_rt.errors import BackendUnavailable, BundleError, MunitRtError

if TYPE_CHECKING:
    from munit_rt.backends.base import Backend
    from munit_rt.bundle import Bundle

# name -> (module, class, install hint used when the module itself is not part of this installation)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "tensorrt": ("munit_rt.backends.tensorrt", "TensorRTBackend", "pip install 'munit-rt[tensorrt]'"),
    "onnxruntime": ("munit_rt.backends.onnxruntime", "OnnxRuntimeBackend", "pip install onnxruntime"),
    "torch": ("munit_rt.backends.torch", "TorchBackend", "pip install 'munit-rt[train]'"),
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
    if precision not in bundle.precisions:
        raise BundleError(f"bundle {bundle.path} has no {precision} graphs (exported: {', '.join(bundle.precisions)}); "
                           f"re-export with --precision {precision} or pass --precision {bundle.precisions[0]}")
    return cls(bundle, precision=precision, **opts)
