"""The ONNX operators TensorRT's ONNX parser accepts: the one allow-list every exported graph is checked against.

Transcribed from onnx/onnx-tensorrt `docs/operators.md` (the TensorRT 8.5 matrix, every row marked "Y",
standard-domain operators only; experimental and deprecated ops such as ImageScaler, Upsample and Scatter
left out). TensorRT 10 parses a superset of these, so a graph that passes here parses on 8.5 and on 10.
Add an operator only after checking it in the current matrix, with its restrictions.

Restrictions of that matrix the exported graphs meet, and `initializer_input_problems` checks: Conv and
ConvTranspose (row "2D or 3D deconvolutions only. Weights `W` must be an initializer"; CycleGAN and StarGAN
upsample with ConvTranspose) take their weights from initializers, and InstanceNormalization its scale and
bias ("Scales `scale` and biases `B` must be initializers").
"""
from __future__ import annotations

from munit_rt.export.errors import ExportError

TENSORRT_ONNX_OPS = frozenset({
    # elementwise arithmetic and math
    "Abs", "Acos", "Acosh", "Add", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Clip", "Cos", "Cosh", "Div",
    "Erf", "Exp", "Floor", "Log", "Max", "Mean", "Min", "Mod", "Mul", "Neg", "Pow", "Reciprocal", "Round",
    "Sign", "Sin", "Sinh", "Sqrt", "Sub", "Sum", "Tan",
    # logic and comparison
    "And", "Equal", "Greater", "GreaterOrEqual", "IsNaN", "Less", "LessOrEqual", "Not", "Or", "Where", "Xor",
    # activations
    "Celu", "Elu", "HardSigmoid", "HardSwish", "LeakyRelu", "LogSoftmax", "PRelu", "Relu", "Selu", "Shrink",
    "Sigmoid", "Softmax", "Softplus", "Softsign", "Tanh", "ThresholdedRelu",
    # convolution, pooling, normalisation
    "AveragePool", "BatchNormalization", "Conv", "ConvTranspose", "GlobalAveragePool", "GlobalLpPool",
    "GlobalMaxPool", "InstanceNormalization", "LRN", "LpNormalization", "LpPool", "MaxPool",
    "MeanVarianceNormalization",
    # linear algebra
    "Einsum", "Gemm", "MatMul",
    # reductions and index search
    "ArgMax", "ArgMin", "CumSum", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "TopK",
    # shape and data movement
    "Cast", "Concat", "Constant", "ConstantOfShape", "DepthToSpace", "Expand", "EyeLike", "Flatten", "Gather",
    "GatherElements", "GatherND", "GridSample", "Identity", "NonZero", "OneHot", "Pad", "Range", "Reshape",
    "Resize", "ReverseSequence", "RoiAlign", "ScatterElements", "ScatterND", "Shape", "Size", "Slice",
    "SpaceToDepth", "Split", "Squeeze", "Tile", "Transpose", "Trilu", "Unsqueeze",
    # control flow, recurrent, misc
    "If", "Loop", "Scan", "GRU", "LSTM", "RNN", "Dropout", "NonMaxSuppression", "QuantizeLinear",
    "DequantizeLinear", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
})

_STANDARD_DOMAINS = ("", "ai.onnx")


def _all_nodes(graph):
    """Nodes of `graph` and of its subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _all_nodes(sub)


def unsupported_ops(model) -> list[str]:
    """Op types in `model` that TensorRT's ONNX parser would refuse, sorted."""
    bad = set()
    for node in _all_nodes(model.graph):
        if node.domain not in _STANDARD_DOMAINS:
            bad.add(f"{node.domain}::{node.op_type}")
        elif node.op_type not in TENSORRT_ONNX_OPS:
            bad.add(node.op_type)
    return sorted(bad)


def training_mode_batch_norms(model) -> list[str]:
    """Names of BatchNormalization nodes in training mode (batch statistics), which inference must never use."""
    found = []
    for node in _all_nodes(model.graph):
        if node.op_type == "BatchNormalization":
            attrs = {a.name: a.i for a in node.attribute}
            if attrs.get("training_mode", 0) == 1 or len(node.output) > 1:
                found.append(node.name or node.output[0])
    return found


# op type -> input positions TensorRT's parser needs as initializers (weights, norm scale and bias)
INITIALIZER_INPUTS = {"Conv": (1,), "ConvTranspose": (1,), "InstanceNormalization": (1, 2)}


def initializer_input_problems(model) -> list[str]:
    """`node (op) input k` for every Conv/ConvTranspose weight or InstanceNormalization scale/bias that is
    computed in the graph instead of stored as an initializer (or a Constant node)."""
    stored = {init.name for init in model.graph.initializer}
    stored |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    problems = []
    for node in model.graph.node:
        for position in INITIALIZER_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position] and node.input[position] not in stored:
                problems.append(f"{node.name or node.output[0]} ({node.op_type}) input {position}")
    return problems


def check_tensorrt_ops(model, graph_name: str) -> None:
    """Raise ExportError naming every op TensorRT cannot parse, every weight it needs as an initializer but
    would have to compute, and every training-mode BatchNormalization."""
    bad = unsupported_ops(model)
    if bad:
        raise ExportError(f"graph '{graph_name}' uses operators TensorRT's ONNX parser does not support: "
                          f"{', '.join(bad)}")
    computed = initializer_input_problems(model)
    if computed:
        raise ExportError(f"graph '{graph_name}' computes weights TensorRT needs as initializers: "
                          f"{', '.join(computed[:3])}")
    batch_norms = training_mode_batch_norms(model)
    if batch_norms:
        raise ExportError(f"graph '{graph_name}' has BatchNormalization in training mode (batch statistics): "
                          f"{', '.join(batch_norms[:3])}")
