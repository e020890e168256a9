"""ONNX Runtime backend: one session per graph, created on first use, CUDA when it can run here."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from munit_rt.backends.base import Backend
from munit_rt.bundle import Bundle, GraphSpec

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def physical_cores() -> int:
    """Physical cores we may run on: hyper-threads slow ORT's conv kernels down rather than up."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        pairs, current = set(), {}
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                current[key.strip()] = value.strip()
                if not line.strip():
                    pairs.add((current.get("physical id"), current.get("core id")))
                    current = {}
        pairs.add((current.get("physical id"), current.get("core id")))
        pairs.discard((None, None))
        return max(1, min(usable, len(pairs) or usable))
    except OSError:
        return max(1, usable)


def cuda_usable() -> bool:
    """onnxruntime-gpu installed and a GPU present (the provider list alone says nothing about the GPU)."""
    import onnxruntime

    if CUDA_PROVIDER not in onnxruntime.get_available_providers():
        return False
    return not sys.platform.startswith("linux") or Path("/dev/nvidiactl").exists()


def session_from_path(path: Path | bytes, options: Any, providers: list[str]) -> Any:
    """Loader: model file or its verified bytes -> InferenceSession (separate so tests can hand in a fake)."""
    import onnxruntime

    model = path if isinstance(path, bytes) else str(path)
    return onnxruntime.InferenceSession(model, sess_options=options, providers=providers)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    install_hint = "pip install onnxruntime (or 'munit-rt[gpu]' for CUDA)"

    def __init__(self, bundle: Bundle, precision: str = "fp32", providers: list[str] | None = None,
                 threads: int | None = None, session_factory: Callable[..., Any] = session_from_path):
        super().__init__(bundle, precision)
        self._providers = providers
        self._threads = threads
        self._session_factory = session_factory
        self._sessions: dict[str, Any] = {}
        self._options: Any = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if importlib.util.find_spec("onnxruntime") else "onnxruntime is not installed"

    @property
    def device(self) -> str:
        providers = self._providers or []
        return "cuda" if CUDA_PROVIDER in providers else f"cpu, {self._threads or physical_cores()} threads"

    def _open(self) -> None:
        import onnxruntime

        if self._providers is None:
            self._providers = ([CUDA_PROVIDER] if cuda_usable() else []) + [CPU_PROVIDER]
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self._threads or physical_cores()
        options.inter_op_num_threads = 1  # graphs are a straight chain; parallelism lives inside ops
        options.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
        self._options = options

    def _session(self, graph: GraphSpec) -> Any:
        session = self._sessions.get(graph.name)
        if session is None:
            # from the bytes whose sha256 was just checked, so a file swapped after Bundle() is never run
            model = self.bundle.graph_bytes(graph.name, self.precision)
            session = self._session_factory(model, self._options, self._providers)
            self._sessions[graph.name] = session
        return session

    def _run(self, graph: GraphSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [t.name for t in graph.outputs]
        values = self._session(graph).run(names, feeds)
        return dict(zip(names, values))

    def _close(self) -> None:
        self._sessions.clear()
