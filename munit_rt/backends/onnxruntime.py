"""ONNX Runtime backend: one session per graph, created on first use, CUDA when it can run here.

On the CPU, graphs run on numpy arrays (each FP32 session through the Winograd rewrite, munit_rt/winograd.py).
With I/O binding (on by default on CUDA) inputs and outputs stay in device memory as OrtValues: `to_host=False`
results feed later runs without a host round trip, and `take` gathers rows on the device with a one-node
Gather graph, so a job's content codes never leave the GPU.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from munit_rt import winograd
from munit_rt.backends.base import Backend
from munit_rt.bundle import Bundle
from munit_rt.bundle.schema import GraphSpec
from munit_rt.errors import MunitRtError

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
WINOGRAD_ENV_VAR = "MUNIT_RT_WINOGRAD"


def winograd_mode(mode: str | None = None) -> str:
    """The CPU conv rewrite mode: `mode` if given, else $MUNIT_RT_WINOGRAD, else auto (see munit_rt.winograd)."""
    source = "winograd" if mode is not None else WINOGRAD_ENV_VAR
    value = mode if mode is not None else os.environ.get(WINOGRAD_ENV_VAR, "auto")
    if value not in winograd.MODES:
        raise MunitRtError(f"{source} must be one of {', '.join(winograd.MODES)} (got '{value}'); "
                           "auto rewrites the 3x3 convs where it pays, off runs the graphs as exported")
    return value


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
    # int8: the QDQ graphs of `munit-rt quantize`; ONNX Runtime's CPU QDQ convolutions measured slower than its
    # FP32 ones (0.75x the whole job on an AMX CPU), so `translate` notes --backend openvino for them
    precisions = {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}

    def __init__(self, bundle: Bundle, precision: str = "fp32", providers: list[str] | None = None,
                 threads: int | None = None, winograd: str | None = None, io_binding: bool | None = None,
                 session_factory: Callable[..., Any] = session_from_path):
        super().__init__(bundle, precision)
        self._providers = providers
        self._io_binding = io_binding  # None: on where the graphs run on CUDA
        self._threads = threads
        self.winograd = winograd_mode(winograd)
        self._session_factory = session_factory
        self._sessions: dict[str, Any] = {}
        self._gather: dict[str, Any] = {}  # OrtValue element type -> session of a one-node Gather graph
        self._options: Any = None
        self.rewritten_convs: dict[str, int] = {}  # graph -> 3x3 convs run as Winograd (CPU sessions only)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if importlib.util.find_spec("onnxruntime") else "onnxruntime is not installed"

    @classmethod
    def precision_note(cls, precision: str) -> str | None:
        if precision != "int8" or cuda_usable():
            return None
        return ("note: ONNX Runtime's CPU int8 (QDQ) convolutions measured slower than its fp32 ones (the whole job "
                "0.75x fp32 on an AMX CPU, where --backend openvino ran the same int8 graphs 3.4x faster than fp32)")

    @property
    def device(self) -> str:
        if self._on_cuda:
            return "cuda"
        cpu = f"cpu, {self._threads or physical_cores()} threads"
        if self.winograd == "off" or self.precision != "fp32":
            return cpu
        reason = winograd.unavailable_reason()
        return f"{cpu}, Winograd 3x3 convs: " + (f"off, {reason}" if reason else self.winograd)

    @property
    def _on_cuda(self) -> bool:
        return CUDA_PROVIDER in (self._providers or [])

    @property
    def _winograd_for_cpu(self) -> str:
        """The rewrite only targets ONNX Runtime's FP32 CPU kernels; CUDA and FP16 graphs run as exported, and so
        does everything in an installation without `onnx` (slower, still correct; the run summary says so)."""
        usable = self.precision == "fp32" and winograd.unavailable_reason() is None
        return self.winograd if usable else "off"

    def _open(self) -> None:
        import onnxruntime

        if self._providers is None:
            self._providers = ([CUDA_PROVIDER] if cuda_usable() else []) + [CPU_PROVIDER]
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self._threads or physical_cores()
        options.inter_op_num_threads = 1  # graphs are a straight chain; parallelism lives inside ops
        options.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
        # The memory pattern, planned after the first run, allocates a second full set of buffers on the next
        # one: ~1 GB of fresh pages for a batch-8 decode at 256x256, seconds of page faults on a VM. Without
        # it the arena grown by the first run is reused from the second on (and peak memory is lower).
        options.enable_mem_pattern = False
        # A job runs three or four sessions in turn, each with its own thread pool; a pool that spins after its
        # graph finishes takes the cores the next session needs. Measured on the trained default model (64 px,
        # 1 image x 8 styles, 2 cores): 0.032 s per job with spinning, 0.021 s without; 256 px jobs unchanged.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._options = options
        if self._io_binding is None:
            self._io_binding = self._on_cuda

    def _session(self, graph: GraphSpec) -> Any:
        session = self._sessions.get(graph.name)
        if session is None:
            # from the bytes whose sha256 was just checked, so a file swapped after Bundle() is never run
            model = self.bundle.graph_bytes(graph.name, self.graph_precision)
            if not self._on_cuda:
                model, self.rewritten_convs[graph.name] = winograd.rewrite_bytes(model, self._winograd_for_cpu)
            session = self._session_factory(model, self._options, self._providers)
            self._sessions[graph.name] = session
        return session

    def _run(self, graph: GraphSpec, feeds: dict[str, Any]) -> dict[str, Any]:
        names = [t.name for t in graph.outputs]
        session = self._session(graph)
        if not self._io_binding:
            return dict(zip(names, session.run(names, {k: self.to_host(v) for k, v in feeds.items()})))
        return dict(zip(names, self._run_bound(session, feeds, names)))

    def _run_bound(self, session: Any, feeds: dict[str, Any], names: list[str]) -> list[Any]:
        binding = session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            else:
                binding.bind_ortvalue_input(name, value)
        for name in names:
            binding.bind_output(name, self._device_type)
        session.run_with_iobinding(binding)
        return binding.get_outputs()

    @property
    def _device_type(self) -> str:
        return "cuda" if self._on_cuda else "cpu"

    # -- device values (I/O binding) -------------------------------------------------------------------
    def to_device(self, array: np.ndarray) -> Any:
        if not self._io_binding:
            return super().to_device(array)
        import onnxruntime

        return onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self._device_type)

    def to_host(self, value: Any) -> np.ndarray:
        return value if isinstance(value, np.ndarray) else value.numpy()

    def take(self, value: Any, rows: np.ndarray) -> Any:
        if isinstance(value, np.ndarray):
            return value[np.asarray(rows)]
        element = value.data_type()
        session = self._gather.get(element)
        if session is None:
            session = self._gather[element] = self._session_factory(_gather_graph(element), self._options,
                                                                     self._providers)
        return self._run_bound(session, {"data": value, "rows": np.asarray(rows, np.int64)}, ["taken"])[0]

    def value_info(self, value: Any) -> tuple[tuple[int, ...], str]:
        if isinstance(value, np.ndarray):
            return super().value_info(value)
        return tuple(value.shape()), _ORT_TYPES.get(value.data_type(), value.data_type())

    def _close(self) -> None:
        self._sessions.clear()
        self._gather.clear()


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(double)": "float64"}


def _gather_graph(element: str) -> bytes:
    """A one-node graph `taken = Gather(data, rows, axis=0)` for values of ORT element type `element`."""
    from onnx import TensorProto, helper

    dtype = {"tensor(float)": TensorProto.FLOAT, "tensor(float16)": TensorProto.FLOAT16,
             "tensor(int64)": TensorProto.INT64}[element]
    graph = helper.make_graph([helper.make_node("Gather", ["data", "rows"], ["taken"], axis=0)], "take",
                              [helper.make_tensor_value_info("data", dtype, None),
                               helper.make_tensor_value_info("rows", TensorProto.INT64, ["K"])],
                              [helper.make_tensor_value_info("taken", dtype, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)  # any ORT reads 8
    return model.SerializeToString()
