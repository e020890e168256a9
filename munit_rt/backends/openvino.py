"""OpenVINO backend (CPU): the bundle's graphs at fp32, bf16, fp16 or int8, with the executed precision read back.

    OpenVinoBackend(bundle, "bf16")   # --backend openvino --precision bf16 (pip install 'munit-rt[openvino]')

Precision is always set, never left to OpenVINO (whose CPU default is bf16 wherever the CPU has it):

    fp32  the fp32 graphs, INFERENCE_PRECISION_HINT f32
    bf16  the fp32 graphs, hint bf16: only where the CPU runs bf16 natively (AVX512_BF16 or AMX-BF16); elsewhere
          OpenVINO emulates it (0.32x its fp32 speed, measured with AVX-512 but no BF16) or fails to compile
          (AVX2), so it is refused
    fp16  the fp32 graphs, hint f16: only where the CPU runs fp16 natively (AVX512_FP16 or AMX-FP16); outputs are
          checked for float16 overflow (non-finite values), which MUNIT's decoder hits on such a CPU
    int8  the bundle's int8 graphs (QDQ, `munit-rt quantize`): quantized convolutions in int8, the rest in bf16
          where native, else fp32

What a compiled graph executes is read back from the runtime (`executed`): the compiled model's
INFERENCE_PRECISION_HINT and the runtime precision of each convolution and matrix multiply of its execution
graph; `device` says it in one line ("cpu, 2 threads, bf16 executed: 64/64 convs, 6/6 matmuls").

Compiling: on open, every graph is read from its verified bytes and compiled once with dynamic shapes (~0.5 s
for a MUNIT bundle), so a graph OpenVINO cannot read or compile is a one-line BundleError before anything runs,
and the executed precision is known from the start. Each new input-shape signature is then compiled with static
shapes (5-15% faster than dynamic, measured) and cached, up to `static_shapes` per graph; further shapes run on
the dynamic compile. One synchronous infer request per compiled model with the LATENCY hint and
INFERENCE_NUM_THREADS = physical cores: a second asynchronous request (AsyncInferQueue) measured 0.98-1.03x on
the large graphs on 2 cores, so it is not used.
"""
from __future__ import annotations

import collections
import functools
import importlib.util
import os
import re
from typing import Any, Callable

import numpy as np

from munit_rt.backends.base import Backend
from munit_rt.bundle.schema import GraphSpec
from munit_rt.errors import BackendUnavailable, BundleError, InputError, MunitRtError
from munit_rt.text import printable

INSTALL_HINT = "pip install 'munit-rt[openvino]'"
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # --precision -> OpenVINO's element type name
OV_TYPES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "u8": "int8", "i8": "int8"}  # executed -> ours
COMPUTE_LAYERS = {"Convolution": "conv", "Deconvolution": "conv", "FullyConnected": "matmul", "MatMul": "matmul"}
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) in increasing order; a cap below an ISA turns its native path off
ISA_ORDER = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
             "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
             "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2")
NATIVE = {  # precision -> (CPU flags any of which runs it natively, the lowest ISA cap that keeps it)
    "bf16": (("avx512_bf16", "amx_bf16"), "AVX512_CORE_BF16"),
    "fp16": (("avx512_fp16", "amx_fp16"), "AVX512_CORE_FP16"),
}
REFUSALS = {
    "bf16": "--precision bf16: this CPU has no native bf16 (AVX512_BF16 or AMX-BF16); OpenVINO would emulate it at "
            "about a third of its fp32 speed (0.32x, measured on AVX-512 without BF16) or fail to compile it "
            "(AVX2); use --precision fp32, or int8 (munit-rt quantize)",
    "fp16": "--precision fp16: this CPU has no native fp16 arithmetic (AVX512_FP16 or AMX-FP16), so OpenVINO would "
            "not run it natively; use --precision fp32 (or bf16 where the CPU has it)",
}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo; None where there is none to read (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return None


def native(precision: str) -> bool:
    """Whether this CPU runs `precision` natively for OpenVINO (fp32 and int8 always: int8 is integer code)."""
    if precision not in NATIVE:
        return True
    flags, lowest_cap = NATIVE[precision]
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap in ISA_ORDER and ISA_ORDER.index(cap) < ISA_ORDER.index(lowest_cap):
        return False
    present = cpu_flags()
    if present is None:  # no /proc/cpuinfo: OpenVINO's own capability list (it lists BF16 for emulation too)
        import openvino

        return {"bf16": "BF16", "fp16": "FP16"}[precision] in openvino.Core().get_property(
            "CPU", "OPTIMIZATION_CAPABILITIES")
    return any(flag in present for flag in flags)


def one_line(exc: BaseException) -> str:
    """OpenVINO's multi-line messages ("Exception from src/...", "Check '...' failed at ...") -> the line that says
    what is wrong."""
    text = str(exc)
    match = re.search(r"No conversion rule found for operations?: (.+)", text)
    if match:
        return f"unsupported ONNX operation(s): {match.group(1).strip()}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '", "To facilitate", "[ ",
                                                              "FrontEnd API failed", "Model wasn't", "Summary:"))]
    return printable((useful or lines or [type(exc).__name__])[-1], control=True)[:300]


def physical_cores() -> int:
    from munit_rt.backends.onnxruntime import physical_cores as cores

    return cores()


class OpenVinoBackend(Backend):
    name = "openvino"
    install_hint = INSTALL_HINT
    precisions = {"fp32": "fp32", "bf16": "fp32", "fp16": "fp32", "int8": "int8"}

    def __init__(self, bundle: Any, precision: str = "fp32", threads: int | None = None, static_shapes: int = 4,
                 core_factory: Callable[[], Any] | None = None):
        """`threads`: INFERENCE_NUM_THREADS (default: physical cores); `static_shapes`: input-shape signatures
        per graph compiled with static shapes (0: always the dynamic compile); `core_factory`: makes the
        openvino.Core (tests hand in a fake)."""
        if precision not in self.precisions:
            raise BackendUnavailable("openvino", f"it runs {', '.join(self.precisions)}, not {precision}",
                                     hint="pass --precision fp32")
        refusal = self.precision_refusal(precision)  # also when built directly, not through get_backend
        if refusal is not None:
            raise InputError(refusal)
        super().__init__(bundle, precision)
        self.threads = threads or physical_cores()
        self.static_shapes = static_shapes
        self._core_factory = core_factory
        self._core: Any = None
        self._models: dict[str, Any] = {}       # graph -> ov.Model (dynamic shapes) read from the verified bytes
        self._dynamic: dict[str, Any] = {}      # graph -> (compiled model, infer request)
        self._static: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
        self._outputs: dict[str, list[int]] = {}  # graph -> output port index of each manifest output
        self.hints: dict[str, str] = {}          # graph -> the hint it was compiled with (int8 may fall back)
        self.notes: list[str] = []
        self._executed: dict[str, dict[str, Any]] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if importlib.util.find_spec("openvino") else "openvino is not installed"

    @classmethod
    def precision_refusal(cls, precision: str) -> str | None:
        return None if native(precision) else REFUSALS.get(precision)

    @property
    def float_hint(self) -> str:
        """The precision of what is not quantized: the requested one; int8's rest in bf16 where native."""
        if self.precision == "int8":
            return "bf16" if native("bf16") else "f32"
        return HINTS[self.precision]

    # -- opening: read and compile every graph once ----------------------------------------------------
    def _open(self) -> None:
        try:
            import openvino
        except ImportError as exc:
            raise BackendUnavailable("openvino", f"cannot import openvino ({exc})", hint=INSTALL_HINT) from None
        self._core = self._core_factory() if self._core_factory else openvino.Core()
        for name, spec in self.bundle.graphs.items():
            self._models[name] = self._read(spec)
            self._dynamic[name] = self._compile(spec, self._models[name])

    def _cannot(self, verb: str, spec: GraphSpec) -> str:
        entry = spec.files[self.graph_precision]
        return (f"bundle {printable(str(self.bundle.path), control=True)}: OpenVINO cannot {verb} graph "
                f"'{spec.name}' ({self.graph_precision} file {entry.path})")

    def _read(self, spec: GraphSpec) -> Any:
        data = self.bundle.graph_bytes(spec.name, self.graph_precision)  # the bytes whose sha256 was checked
        try:
            model = self._core.read_model(model=data)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError and its own types
            raise BundleError(f"{self._cannot('read', spec)}: {one_line(exc)}; run it with --backend "
                              "onnxruntime") from None
        ports = []
        for tensor in spec.outputs:  # a port carries every name of its tensor; find the manifest's
            index = next((i for i, port in enumerate(model.outputs) if tensor.name in port.get_names()), None)
            if index is None:
                raise BundleError(f"{self._cannot('map', spec)}: no output named '{tensor.name}'")
            ports.append(index)
        self._outputs[spec.name] = ports
        return model

    def _config(self, hint: str) -> dict[str, Any]:
        return {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY"}

    def _compile(self, spec: GraphSpec, model: Any, shapes: dict[str, tuple[int, ...]] | None = None) -> Any:
        hint = self.hints.get(spec.name, self.float_hint)
        try:
            compiled = self._core.compile_model(model, "CPU", self._config(hint))
        except Exception as exc:  # noqa: BLE001
            if not (self.precision == "int8" and hint != "f32"):
                at = f" at shapes {shapes}" if shapes else ""
                raise BundleError(f"{self._cannot('compile', spec)}{at} at {self.precision}: {one_line(exc)}; run "
                                  "it with --backend onnxruntime or another --precision") from None
            # a QDQ pattern without a bf16 kernel (seen with other quantizers' graphs): its float part in f32
            self.notes.append(f"{spec.name}: no {hint} kernels for its int8 graph ({one_line(exc)}), rest in f32")
            self.hints[spec.name] = "f32"
            return self._compile(spec, model, shapes)
        self.hints.setdefault(spec.name, hint)
        self._executed[spec.name] = read_executed(compiled)
        return compiled, compiled.create_infer_request()

    def _compiled(self, spec: GraphSpec, feeds: dict[str, np.ndarray]) -> Any:
        signature = (spec.name, tuple(sorted((name, value.shape) for name, value in feeds.items())))
        entry = self._static.get(signature)
        if entry is not None:
            self._static.move_to_end(signature)
            return entry
        if sum(1 for key in self._static if key[0] == spec.name) >= self.static_shapes:
            return self._dynamic[spec.name]
        model = self._models[spec.name].clone()
        shapes = {name: tuple(value.shape) for name, value in feeds.items()}
        model.reshape({name: list(shape) for name, shape in shapes.items()})
        entry = self._static[signature] = self._compile(spec, model, shapes)
        return entry

    # -- running -----------------------------------------------------------------------------------------
    def _run(self, graph: GraphSpec, feeds: dict[str, Any]) -> dict[str, Any]:
        feeds = {name: np.ascontiguousarray(value) for name, value in feeds.items()}
        _, request = self._compiled(graph, feeds)
        try:
            request.infer(feeds)
        except Exception as exc:  # noqa: BLE001
            raise MunitRtError(f"OpenVINO failed running graph '{graph.name}': {one_line(exc)}") from None
        outputs = {tensor.name: request.get_output_tensor(index).data.copy()
                   for tensor, index in zip(graph.outputs, self._outputs[graph.name])}
        if self.precision == "fp16":
            for name, value in outputs.items():
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    raise MunitRtError(f"graph '{graph.name}' output '{name}' overflowed float16 on OpenVINO fp16 "
                                       "(non-finite values); use --precision bf16 or fp32")
        return outputs

    def _close(self) -> None:
        self._static.clear()
        self._dynamic.clear()
        self._models.clear()
        self._core = None

    # -- what runs ---------------------------------------------------------------------------------------
    def executed(self) -> dict[str, dict[str, Any]]:
        """Per compiled graph, read from the runtime: the compiled model's INFERENCE_PRECISION_HINT ("hint") and
        the count of convolutions and matrix multiplies by the precision they execute ("conv", "matmul")."""
        return {name: {"hint": info["hint"], **{kind: dict(counts) for kind, counts in info["ops"].items()}}
                for name, info in self._executed.items()}

    def executed_text(self) -> str:
        """'bf16 executed: 64/64 convs, 6/6 matmuls' over every compiled graph; others in parentheses."""
        totals: dict[str, collections.Counter] = {"conv": collections.Counter(), "matmul": collections.Counter()}
        for info in self._executed.values():
            for kind, counts in info["ops"].items():
                totals[kind].update(counts)
        want = self.precision
        parts = []
        for kind, counts in totals.items():
            total = sum(counts.values())
            if not total:
                continue
            others = ", ".join(f"{n} {p}" for p, n in sorted(counts.items()) if p != want)
            parts.append(f"{counts.get(want, 0)}/{total} {kind}s" + (f" ({others})" if others else ""))
        return f"{want} executed: {', '.join(parts) or 'no convolutions or matmuls'}"

    @property
    def device(self) -> str:
        cpu = f"cpu, {self.threads} threads"
        if not self._executed:
            return f"{cpu}, {self.precision} requested (nothing compiled yet)"
        return f"{cpu}, {self.executed_text()}"


def read_executed(compiled: Any) -> dict[str, Any]:
    """The hint a compiled model reports and its compute layers by the precision its runtime graph executes."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    ops = {"conv": collections.Counter(), "matmul": collections.Counter()}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = COMPUTE_LAYERS.get(_rt_str(info, "layerType"))
        if kind is not None:
            executed = _rt_str(info, "runtimePrecision")
            ops[kind][OV_TYPES.get(executed, executed)] += 1
    name = getattr(hint, "get_type_name", lambda: str(hint))()
    return {"hint": OV_TYPES.get(name, name), "ops": ops}


def _rt_str(info: Any, key: str) -> str:
    value = info[key] if key in info else ""
    return value.astype(str) if hasattr(value, "astype") else str(value)
