"""CPU graph rewrite: 3x3 convolutions as Winograd F(4x4, 3x3), the same function with 4x fewer multiplies.

ONNX Runtime's CPU Conv is im2col + GEMM: 9 multiply-adds per output per input channel. Winograd's minimal
filtering (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes a 4x4 output tile
from a 6x6 input tile with 36 elementwise products per channel pair instead of 144, so a 3x3 conv becomes

    V = B^T d B      per input tile and channel  (a grouped 6x6 stride-4 Conv with fixed 0/+-1/+-2/4/5 weights)
    M = U . V        36 GEMMs, one per tile position: [K, C] x [C, tiles], U = G g G^T
    Y = A^T M A      per output tile and channel  (a [16, 36] MatMul, then DepthToSpace puts tiles in place)

which ONNX Runtime runs as ordinary ops. U is written as ops on the original weight, which ONNX Runtime's
constant folding evaluates once when the session is built, so the rewritten graph is no larger than the bundle's.

The rewrite happens in memory when a CPU session is built; bundles keep the plain Conv (TensorRT and CUDA pick
their own conv algorithms). Only convs where it pays are rewritten. Per tile, the GEMMs save work in proportion
to C*K and the transforms cost memory traffic in proportion to C + K, so what decides is their ratio, half the
harmonic mean of the channel counts: on a 2-core AVX2 machine (`bench/winograd_convs.py`) 256 -> 256 and
256 -> 512 ran 1.8x and 2.1x faster, 128 -> 256 only 1.2x (with 450 MB more activations at batch 8), and
128 -> 128 or less ran slower. The result differs from the direct conv by float rounding only: about 1e-5
relative in float32, which `tests/test_winograd.py` checks.
"""
from __future__ import annotations

import numpy as np

# F(4x4, 3x3) with interpolation points 0, +-1, +-2, infinity (Lavin & Gray, section 5)
B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)
TILE, OUT, TAPS = 6, 4, 36  # input tile side, output tile side, tile positions (6 x 6)

MODES = ("auto", "on", "off")
AUTO_MIN_HARMONIC_MEAN = 200  # of in and out channels: 256 -> 256 qualifies, 128 -> 256 (171) does not
MIN_OPSET = 13  # Reshape/Slice/DepthToSpace as used below


def filter_transform() -> np.ndarray:
    """[9, 36]: flattened 3x3 kernel g (p*3+q) @ this = G g G^T flattened (a*6+b); kron(G, G) transposed."""
    return np.kron(G, G).T.astype(np.float32)


def input_transform_kernel(channels: int) -> np.ndarray:
    """Grouped-conv weight [C*36, 1, 6, 6]: output channel c*36 + a*6+b is (B^T d B)[a, b] of channel c."""
    per_tap = np.einsum("ap,bq->abpq", B_T, B_T).reshape(TAPS, 1, TILE, TILE)
    return np.tile(per_tap, (channels, 1, 1, 1)).astype(np.float32)


def output_transform() -> np.ndarray:
    """[16, 36]: row i*4+j of A^T M A as a combination of the 36 products M[a*6+b]."""
    return np.einsum("ia,jb->ijab", A_T, A_T).reshape(OUT * OUT, TAPS).astype(np.float32)


def unavailable_reason() -> str | None:
    """None when the rewrite can run (it edits graphs with the `onnx` package, a dependency of munit-rt)."""
    import importlib.util

    return None if importlib.util.find_spec("onnx") else "onnx is not installed (pip install onnx)"


def threshold_for(mode: str) -> float | None:
    """Least harmonic mean of the channel counts a rewritten conv has: auto -> where it pays, on -> any, off -> None
    (no rewrite)."""
    if mode not in MODES:
        raise ValueError(f"winograd mode must be one of {', '.join(MODES)}, got '{mode}'")
    return {"auto": AUTO_MIN_HARMONIC_MEAN, "on": 0, "off": None}[mode]


def rewrite_bytes(model_bytes: bytes, mode: str = "auto") -> tuple[bytes, int]:
    """Serialized model -> (serialized rewritten model, convs rewritten); the input bytes when none qualify."""
    threshold = threshold_for(mode)
    if threshold is None:
        return model_bytes, 0
    import onnx

    model = onnx.load_from_string(model_bytes)
    count = rewrite_model(model, threshold)
    return (model.SerializeToString(), count) if count else (model_bytes, 0)


def rewrite_model(model, min_harmonic_mean: float = AUTO_MIN_HARMONIC_MEAN) -> int:
    """Rewrite every qualifying Conv of `model` (an onnx.ModelProto, changed in place); returns how many."""
    opset = next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        return 0
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    rewriter = _Rewriter(graph)
    new_nodes, count = [], 0
    for node in graph.node:
        plan = _plan(node, initializers, min_harmonic_mean)
        if plan is None:
            new_nodes.append(node)
            continue
        new_nodes.extend(rewriter.replace(node, *plan))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return count


def _attribute(node, name: str, default):
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _plan(node, initializers: dict, min_harmonic_mean: float):
    """((K, C), bias name or None, pads) for a float32 3x3 stride-1 dense Conv worth rewriting, else None."""
    from onnx import TensorProto

    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return None
    weight = initializers.get(node.input[1])
    bias = initializers.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if weight is None or weight.data_type != TensorProto.FLOAT or len(weight.dims) != 4:
        return None
    if len(node.input) > 2 and node.input[2] and (bias is None or bias.data_type != TensorProto.FLOAT):
        return None  # a computed bias: leave the node alone
    out_channels, in_channels, kh, kw = weight.dims
    if (kh, kw) != (3, 3) or 2 * in_channels * out_channels < min_harmonic_mean * (in_channels + out_channels):
        return None
    if (_attribute(node, "group", 1) != 1 or list(_attribute(node, "strides", [1, 1])) != [1, 1]
            or list(_attribute(node, "dilations", [1, 1])) != [1, 1]):
        return None
    auto_pad = _attribute(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        return None
    pads = [0, 0, 0, 0] if auto_pad == "VALID" else list(_attribute(node, "pads", [0, 0, 0, 0]))
    return (out_channels, in_channels), node.input[2] if bias is not None else None, pads


class _Rewriter:
    """Builds the replacement nodes; constants shared between convs (transform kernels, shapes) are added once."""

    def __init__(self, graph):
        self.graph = graph
        self.taken = {t.name for t in graph.initializer} | {v.name for v in graph.input} | \
            {o for n in graph.node for o in n.output} | {n.name for n in graph.node}
        self.shared: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name

    def constant(self, base: str, array: np.ndarray, share: bool = False) -> str:
        from onnx import numpy_helper

        if share and base in self.shared:
            return self.shared[base]
        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(array, name))
        if share:
            self.shared[base] = name
        return name

    def replace(self, node, channels: tuple[int, int], bias: str | None, pads: list[int]) -> list:
        from onnx import helper

        out_channels, in_channels = channels
        x, y = node.input[0], node.output[0]
        prefix = f"{node.name or y}/winograd"
        t = lambda what: self.fresh(f"{prefix}/{what}")  # noqa: E731 - a local namer reads better than a method
        top, left, bottom, right = pads
        ints = lambda values: np.array(values, dtype=np.int64)  # noqa: E731

        kernel = self.constant(f"winograd/input_transform_{in_channels}", input_transform_kernel(in_channels), True)
        out_mix = self.constant("winograd/output_transform", output_transform(), True)
        to_taps = self.constant("winograd/filter_transform", filter_transform(), True)
        flat = self.constant(f"winograd/shape_kc{out_channels}x{in_channels}", ints([out_channels * in_channels, 9]),
                             True)
        tap_major = self.constant(f"winograd/shape_u{out_channels}x{in_channels}", ints([TAPS, out_channels,
                                                                                        in_channels]), True)
        by_channel = self.constant(f"winograd/shape_c{in_channels}", ints([0, in_channels, TAPS, -1]), True)
        by_tap = self.constant("winograd/shape_taps", ints([0, TAPS, -1]), True)
        stacked = self.constant(f"winograd/shape_k{out_channels}", ints([0, OUT * OUT * out_channels]), True)
        two, four = self.constant("winograd/2", ints([2]), True), self.constant("winograd/4", ints([4]), True)
        grow = self.constant(f"winograd/pad_{top + bottom - 2}_{left + right - 2}",
                             ints([top + bottom - 2, left + right - 2]), True)
        zeros = self.constant("winograd/zeros2", ints([0, 0]), True)
        spatial = self.constant("winograd/axes23", ints([2, 3]), True)

        v, v4, vt, m, m2, o, tiles, tiles_hw, target, o4, full, in_shape, in_hw, out_hw, cut = (
            t(n) for n in ("V", "V4", "Vt", "M", "M2", "O", "tiles_shape", "tiles_hw", "O_shape", "O4", "Y_tiles",
                           "x_shape", "x_hw", "out_hw", "Y_cut"))
        w_flat, u_flat, u_t, u = t("g_flat"), t("U_flat"), t("U_taps_first"), t("U")
        nodes = [
            # U = G g G^T for every (k, c) from the original weight: constant inputs only, so ONNX Runtime folds
            # these at session creation (the graph handed over stays the bundle's size, not 4x)
            helper.make_node("Reshape", [node.input[1], flat], [w_flat], name=t("flatten_g")),   # [K*C, 9]
            helper.make_node("MatMul", [w_flat, to_taps], [u_flat], name=t("filter_transform")),  # [K*C, 36]
            helper.make_node("Transpose", [u_flat], [u_t], name=t("transpose_U"), perm=[1, 0]),   # [36, K*C]
            helper.make_node("Reshape", [u_t, tap_major], [u], name=t("reshape_U")),             # [36, K, C]
            # pad bottom/right by 3 more so ceil(Hout/4) tiles cover the output; the extra rows are cut below
            helper.make_node("Conv", [x, kernel], [v], name=t("input_transform"), kernel_shape=[TILE, TILE],
                             strides=[OUT, OUT], pads=[top, left, bottom + 3, right + 3], group=in_channels),
            helper.make_node("Reshape", [v, by_channel], [v4], name=t("reshape_V")),           # [N, C, 36, T]
            helper.make_node("Transpose", [v4], [vt], name=t("taps_first"), perm=[0, 2, 1, 3]),  # [N, 36, C, T]
            helper.make_node("MatMul", [u, vt], [m], name=t("gemm")),                       # [N, 36, K, T]
            helper.make_node("Reshape", [m, by_tap], [m2], name=t("reshape_M")),            # [N, 36, K*T]
            helper.make_node("MatMul", [out_mix, m2], [o], name=t("output_transform")),     # [N, 16, K*T]
            helper.make_node("Shape", [v], [tiles], name=t("shape_V")),
            helper.make_node("Slice", [tiles, two, four], [tiles_hw], name=t("tiles_hw")),
            helper.make_node("Concat", [stacked, tiles_hw], [target], name=t("concat_shape"), axis=0),
            helper.make_node("Reshape", [o, target], [o4], name=t("reshape_O")),             # [N, 16K, th, tw]
            helper.make_node("DepthToSpace", [o4], [full], name=t("tiles_in_place"), blocksize=OUT, mode="DCR"),
            helper.make_node("Shape", [x], [in_shape], name=t("shape_x")),
            helper.make_node("Slice", [in_shape, two, four], [in_hw], name=t("x_hw")),
            helper.make_node("Add", [in_hw, grow], [out_hw], name=t("out_hw")),
            helper.make_node("Slice", [full, zeros, out_hw, spatial], [cut if bias is not None else y],
                             name=t("cut")),
        ]
        if bias is not None:  # the conv's own [K] bias, viewed as [1, K, 1, 1] (folded at session creation)
            per_channel = self.constant("winograd/shape_bias", ints([1, -1, 1, 1]), True)
            b = t("bias_nchw")
            nodes += [helper.make_node("Reshape", [bias, per_channel], [b], name=t("reshape_bias")),
                      helper.make_node("Add", [cut, b], [y], name=t("bias"))]
        return nodes
