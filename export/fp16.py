"""FP16 copies of the FP32 graphs, with normalisation statistics kept in FP32.

What stays FP32 and why (selected by op type and pattern, so it does not depend on exporter node names):
  * InstanceNormalization (content encoder, AdaIN): its variance over H*W leaves FP16's range and
    precision long before the activations do;
  * the LayerNorm statistics chain in the decoder: ReduceMean (mean), the centred square (a Mul of a
    tensor with itself), ReduceSum over C*H*W (overflows FP16's 65504 at ordinary activation sizes), Div by
    C*H*W - 1, Sqrt, and the normalising Div (x - mean) / (std + eps); Pow too, should an exporter write
    the square that way;
  * the `scales`/`roi` inputs of Resize, which ONNX requires to be float32.
Graph inputs and outputs stay float32 (`keep_io_types`), so callers feed and read the same arrays for both
precisions. Convolutions, Gemm, activations, padding, the AdaIN affine, the LayerNorm affine and the style
pooling run in FP16.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import numpy_helper

FP32_OP_TYPES = ("InstanceNormalization", "ReduceMean", "ReduceSum", "Sqrt", "Div", "Pow")


def fp32_node_names(model: onnx.ModelProto) -> list[str]:
    """Nodes kept FP32 by pattern: Mul squaring a tensor (the LayerNorm's centred square), and Casts to
    float32 (the LayerNorm's C*H*W - 1 divisor; the converter would retype their output but not their `to`)."""
    names = []
    for node in model.graph.node:
        is_square = node.op_type == "Mul" and len(node.input) == 2 and node.input[0] == node.input[1]
        casts_to_float = node.op_type == "Cast" and any(
            a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)
        if is_square or casts_to_float:
            names.append(node.name)
    return names


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 copy of `model` (every node must have a unique name) with the FP32 islands listed above."""
    from onnxconverter_common import float16

    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # the converter edits its argument in place
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "values truncated to fp16" notes; the PSNR check judges the result
        converted = float16.convert_float_to_float16(
            copy, keep_io_types=True, op_block_list=list(FP32_OP_TYPES), node_block_list=fp32_node_names(copy))
    _restore_fp32_resize_params(converted)
    return converted


def _restore_fp32_resize_params(model: onnx.ModelProto) -> None:
    """The converter turns every float initializer into FP16, including Resize's scales, which must be float32."""
    initializers = {init.name: init for init in model.graph.initializer}
    resize_params, other_uses = set(), set()
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            is_resize_param = node.op_type == "Resize" and index in (1, 2)
            (resize_params if is_resize_param else other_uses).add(name)
    for name in resize_params - other_uses:
        init = initializers.get(name)
        if init is not None and init.data_type == onnx.TensorProto.FLOAT16:
            restored = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), name)
            init.CopyFrom(restored)
