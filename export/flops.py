"""Exact FLOP count of an ONNX graph at concrete input shapes.

    from munit_rt.export.flops import graph_flops
    count = graph_flops("bundle/fp32/decoder_b.onnx", {"content": (8, 256, 64, 64), "adain_params": (8, 4096)})
    count.total            # FLOPs (one multiply-add = 2 FLOPs)
    count.by_op            # {"Conv": ..., "Gemm": ...}
    count.uncounted        # {"InstanceNormalization": 2, ...}: op types counted as 0, with their node counts

Counted (2 x multiply-accumulates, bias additions left out):

    Conv          2 * Cin/groups * kh * kw * Cout * Hout * Wout * N   (any number of spatial dims)
    ConvTranspose 2 * Cin * Cout/groups * kh * kw * Hin * Win * N     (every input pixel scatters a kh x kw
                                                                       patch to Cout/groups channels)
    Gemm          2 * M * N * K
    MatMul        2 * K * (elements of the output)                     (= 2*M*N*K per matrix, batched)

Every other op (normalisation, activations, element-wise arithmetic, Resize, Pad, reductions) counts 0 and
is listed in `uncounted`, so a report can say so. For the convolutional nets here those ops are well under
1% of the arithmetic. Shapes come from ONNX shape inference (with data propagation) on a copy of the model
whose inputs are fixed to the given shapes; should inference leave the shape of a counted node's tensor
unknown, the copy is run once in ONNX Runtime with those tensors as extra outputs to read their real shapes.

A bundle's job (bench/ and tests): `bundle_flops` counts one batch row of every graph; `recorded_calls` records
(graph, rows) of every call a family's translate job makes, as it runs, so `calls_flops` gives the job's exact
FLOPs per graph; `executed_flops` counts what an ONNX Runtime CPU session executes after the Winograd rewrite.
"""
from __future__ import annotations

import math
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, shape_inference

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")

Shape = tuple[int, ...]


@dataclass
class FlopCount:
    total: int = 0
    by_op: dict[str, int] = field(default_factory=dict)     # counted op type -> FLOPs
    nodes: dict[str, int] = field(default_factory=dict)     # counted op type -> node count
    uncounted: dict[str, int] = field(default_factory=dict)  # op type counted as 0 -> node count

    def describe(self) -> str:
        counted = ", ".join(f"{op} {self.by_op[op] / 1e9:.3f} GFLOP ({self.nodes[op]} nodes)" for op in sorted(self.by_op))
        zero = ", ".join(f"{op} x{n}" for op, n in sorted(self.uncounted.items()))
        return f"{self.total / 1e9:.3f} GFLOP: {counted or 'nothing counted'}; counted as 0: {zero or 'none'}"

    def to_dict(self) -> dict:
        return {"flops": self.total, "by_op": dict(self.by_op), "nodes": dict(self.nodes),
                "uncounted_ops": dict(self.uncounted)}


def graph_flops(model: onnx.ModelProto | str | Path, input_shapes: Mapping[str, Sequence[int]]) -> FlopCount:
    """FLOPs of one run of `model` on inputs of `input_shapes` (every input with a symbolic dim must be given)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    fixed = fix_input_shapes(model, input_shapes)
    shapes = inferred_shapes(fixed)
    needed = {name for node in fixed.graph.node if node.op_type in COUNTED_OPS for name in
              (*node.input[:2], *node.output[:1]) if name}
    missing = sorted(name for name in needed if shapes.get(name) is None)
    if missing:
        shapes.update(run_for_shapes(fixed, input_shapes, missing))

    count = FlopCount()
    zero: Counter[str] = Counter()
    for node in fixed.graph.node:
        if node.op_type not in COUNTED_OPS:
            zero[node.op_type] += 1
            continue
        flops = node_flops(node, shapes)
        count.total += flops
        count.by_op[node.op_type] = count.by_op.get(node.op_type, 0) + flops
        count.nodes[node.op_type] = count.nodes.get(node.op_type, 0) + 1
    count.uncounted = dict(zero)
    return count


def node_flops(node: onnx.NodeProto, shapes: Mapping[str, Shape | None]) -> int:
    def shape(index: int, output: bool = False) -> Shape:
        names = node.output if output else node.input
        value = shapes.get(names[index]) if index < len(names) else None
        if value is None:
            raise ValueError(f"{node.op_type} node {node.name or '?'}: shape of {names[index]!r} unknown")
        return value

    if node.op_type == "Conv":  # W [Cout, Cin/groups, k...], Y [N, Cout, out...]
        return 2 * math.prod(shape(0, output=True)) * math.prod(shape(1)[1:])
    if node.op_type == "ConvTranspose":  # X [N, Cin, in...], W [Cin, Cout/groups, k...]
        return 2 * math.prod(shape(0)) * math.prod(shape(1)[1:])
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        a, b = shape(0), shape(1)
        m, k = (a[1], a[0]) if attrs.get("transA", 0) else a
        n = b[0] if attrs.get("transB", 0) else b[1]
        return 2 * m * n * k
    if node.op_type == "MatMul":  # numpy semantics: K is A's last dim, every output element is a K-long dot
        return 2 * shape(0)[-1] * math.prod(shape(0, output=True))
    raise ValueError(f"no FLOP formula for {node.op_type}")


def fix_input_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs have the given concrete shapes (and no stale value_info)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    initializers = {init.name for init in fixed.graph.initializer}
    inputs = [i for i in fixed.graph.input if i.name not in initializers]
    unknown = set(input_shapes) - {i.name for i in inputs}
    if unknown:
        raise ValueError(f"the graph has no input {sorted(unknown)} (inputs: {[i.name for i in inputs]})")
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        if value.name not in input_shapes:
            if any(not d.HasField("dim_value") for d in dims):
                raise ValueError(f"input {value.name!r} has symbolic dims; give its shape")
            continue
        shape = [int(d) for d in input_shapes[value.name]]
        if len(shape) != len(dims):
            raise ValueError(f"input {value.name!r} has rank {len(dims)}, got shape {shape}")
        del dims[:]
        for size in shape:
            dims.add().dim_value = size
    del fixed.graph.value_info[:]
    for output in fixed.graph.output:  # symbolic output dims would only conflict with the inferred ones
        output.type.tensor_type.ClearField("shape")
    return fixed


def inferred_shapes(model: onnx.ModelProto) -> dict[str, Shape | None]:
    """name -> concrete shape (None where any dim stays unknown) for every tensor shape inference reaches."""
    inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    shapes: dict[str, Shape | None] = {init.name: tuple(init.dims) for init in inferred.graph.initializer}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        dims = tensor.shape.dim
        shapes[value.name] = (tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims)
                              else shapes.get(value.name))
    for node in inferred.graph.node:  # Constant nodes: their value's dims
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(attr.t.dims)
    return shapes


def run_for_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]],
                   names: Sequence[str]) -> dict[str, Shape]:
    """Real shapes of intermediate tensors `names`: run the model once in ONNX Runtime (CPU) on random inputs."""
    import onnxruntime

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for name in names:
        if name not in present:
            probe.graph.output.append(helper.ValueInfoProto(name=name))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for value in session.get_inputs():
        dtype = np.float16 if value.type == "tensor(float16)" else np.float32
        feeds[value.name] = rng.standard_normal(tuple(input_shapes[value.name])).astype(dtype)
    values = session.run(list(names), feeds)
    return {name: tuple(np.shape(v)) for name, v in zip(names, values)}


# ------------------------------------------------------------------------------------------- a bundle's job


def bundle_flops(bundle: Any, size: int) -> dict[str, FlopCount]:
    """FLOPs of one batch row of every graph of `bundle` at size x size (they scale with the batch)."""
    precision = "fp32" if "fp32" in bundle.precisions else bundle.precisions[0]
    multiple = bundle.manifest.spatial_multiple
    return {name: graph_flops(onnx.load_from_string(bundle.graph_bytes(name, precision)),
                              {t.name: t.shape_at(1, size, multiple) for t in graph.inputs})
            for name, graph in bundle.graphs.items()}


@contextmanager
def recorded_calls(backend: Any) -> Iterator[list[tuple[str, int]]]:
    """(graph, rows) of every `backend.run` while active: what a family's job runs, as it runs it."""
    calls: list[tuple[str, int]] = []
    run = backend.run

    def recording(graph: str, feeds: Mapping[str, Any], to_host: bool = True) -> dict:
        calls.append((graph, backend.value_info(next(iter(feeds.values())))[0][0]))
        return run(graph, feeds, to_host)

    backend.run = recording
    try:
        yield calls
    finally:
        del backend.run


def calls_flops(calls: Sequence[tuple[str, int]], per_row: Mapping[str, FlopCount]) -> dict[str, int]:
    """FLOPs per graph of recorded (graph, rows) calls."""
    flops: dict[str, int] = {}
    for graph, rows in calls:
        flops[graph] = flops.get(graph, 0) + rows * per_row[graph].total
    return flops


def executed_flops(bundle: Any, graph: str, input_shapes: Mapping[str, Sequence[int]], winograd_mode: str) -> int:
    """FLOPs of one call of `graph` as an ONNX Runtime CPU session runs it: after the Winograd rewrite of `mode`
    and constant folding (which computes the Winograd filter transforms once), at `input_shapes`."""
    import tempfile

    import onnxruntime

    from munit_rt import winograd

    model, _ = winograd.rewrite_bytes(bundle.graph_bytes(graph, "fp32"), winograd_mode)
    with tempfile.TemporaryDirectory(prefix="munit-rt-flops-") as tmp:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC  # standard ops
        options.optimized_model_filepath, options.log_severity_level = str(Path(tmp) / "folded.onnx"), 3
        onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return graph_flops(onnx.load(options.optimized_model_filepath), input_shapes).total
