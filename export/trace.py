"""Tracing one graph of a family's split (a `GraphSpec`) to ONNX, and the checks every exported graph passes.

Tracing uses the TorchScript exporter with named dynamic axes: batch and spatial sizes stay symbolic, including
MUNIT's LayerNorm `C*H*W - 1` divisor (a Shape -> Gather -> Sub chain), which parity checks at sizes other than
the traced one confirm. ONNX Runtime's basic optimiser then folds constants. Checks: the I/O names and dims the
spec declares, the full ONNX check with strict shape inference, and the TensorRT operator allow-list.
"""
from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from munit_rt.export.errors import ExportError
from munit_rt.export.operators import check_tensorrt_ops
from munit_rt.training.family import GraphSpec

DEFAULT_OPSET = 18
MIN_OPSET = 17  # TensorRT 8.5 parses up to 17
MAX_OPSET = 20  # the TorchScript exporter's newest


def export_graph(spec: GraphSpec, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Trace one adapter to ONNX with dynamic N/H/W, fold its constants, check its I/O dims, validate it."""
    model = fold_constants(_trace_to_onnx(spec, opset), spec.name)
    _check_io_dims(model, spec)
    validate_graph(model, spec.name)
    return model


def _trace_to_onnx(spec: GraphSpec, opset: int) -> onnx.ModelProto:
    """The TorchScript exporter (`dynamo=False`). The torch.export-based one gives the same parity but takes
    4-9 s per graph on two CPU cores against 0.1-0.2 s here; this function is the only place to switch."""
    dynamic_axes = {t.name: {axis: dim for axis, dim in enumerate(t.shape) if isinstance(dim, str)}
                    for t in spec.inputs + spec.outputs}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # exporter deprecation and tracer notes are not for users
            torch.onnx.export(spec.module, spec.example_inputs, buffer, dynamo=False, opset_version=opset,
                              input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one line is what users need
        raise ExportError(f"graph '{spec.name}': torch.onnx.export failed: {_first_line(exc)}") from exc
    return onnx.load_from_string(buffer.getvalue())


def fold_constants(model: onnx.ModelProto, graph_name: str) -> onnx.ModelProto:
    """Constant-fold with ONNX Runtime's basic level, which only rewrites to standard ONNX ops.

    The exporter leaves constants as Constant nodes and computes reflect-pad amounts in a small subgraph
    (Slice with step -1, which it cannot fold); after folding, pads, norm scales and Resize scales are
    initializers, as TensorRT's parser wants them.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ExportError(f"graph '{graph_name}': ONNX Runtime cannot load the exported graph: "
                              f"{_first_line(exc)}") from None
        folded = onnx.load(options.optimized_model_filepath)
    del folded.graph.value_info[:]  # ORT's intermediate shape guesses; consumers infer their own
    used_domains = {node.domain for node in folded.graph.node}
    kept = [op for op in folded.opset_import if op.domain in used_domains or op.domain in ("", "ai.onnx")]
    del folded.opset_import[:]
    folded.opset_import.extend(kept)
    for index, node in enumerate(folded.graph.node):  # FP16 conversion selects nodes by name
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    folded.producer_name, folded.producer_version = model.producer_name, model.producer_version
    return folded


def validate_graph(model: onnx.ModelProto, graph_name: str) -> None:
    """Full ONNX check, strict shape inference, and the TensorRT operator allow-list."""
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"graph '{graph_name}' is not valid ONNX: {_first_line(exc)}") from None
    check_tensorrt_ops(model, graph_name)


def _check_io_dims(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """The graph's I/O must match the spec: names, ranks, fixed sizes, and symbolic (dynamic) N/H/W."""
    for values, tensors in ((model.graph.input, spec.inputs), (model.graph.output, spec.outputs)):
        got = [v.name for v in values]
        if got != [t.name for t in tensors]:
            raise ExportError(f"graph '{spec.name}': I/O names {got}, expected {[t.name for t in tensors]}")
        for value, tensor in zip(values, tensors):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            if dims != list(tensor.shape):
                raise ExportError(f"graph '{spec.name}': '{tensor.name}' has shape {dims}, expected "
                                  f"{list(tensor.shape)} (a dynamic size frozen by the exporter?)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
