"""Which graphs to quantize, which convolutions stay FP32, and the quantizer itself (ONNX Runtime's).

Rule (measured on the trained default MUNIT and the official default config, see export/quantize/__init__.py):
a graph is quantized when the job runs it, it has convolutions left after keeping its first and last Conv in
FP32, and it does at least MIN_FLOP_SHARE of the job's FLOPs (munit_rt.export.flops at the shapes the job fed
it); otherwise its int8 file is its fp32 file. In a quantized graph only convolutions (Conv and ConvTranspose) are
quantized (QDQ on their inputs: per-channel int8 weights, uint8 activations), and the first and last in node order
stay FP32: the first sees the image, the last writes the pixels; keeping them measured +1-2 dB for ~20% of the
convolutions. Transposed convolutions are included: on a U-Net generator whose upsampling half is 8 transposed
convolutions, which OpenVINO otherwise ran in fp32, int8 went from 1.3x to 4.4x OpenVINO fp32 for 0.8 dB less.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    import onnx

    from munit_rt.bundle import Bundle
    from munit_rt.export.quantize.calibration import RecordingBackend

MIN_FLOP_SHARE = 0.03  # graphs below this share of the job's FLOPs keep their fp32 file as their int8 file
PERCENTILE = 99.999    # activation ranges: this percentile of |x| (ONNX Runtime's Percentile calibration)
CONV_OPS = ("Conv", "ConvTranspose")
TOOL = (f"onnxruntime quantize_static (QDQ; Conv and ConvTranspose only; per-channel int8 weights, uint8 "
        f"activations; Percentile {PERCENTILE})")


@dataclass
class GraphChoice:
    name: str
    quantize: bool
    reason: str                     # why (for people)
    flop_share: float = 0.0
    convs: int = 0
    kept_fp32: list[str] = field(default_factory=list)
    rows: int = 0                   # calibration rows


def choose_graphs(bundle: Bundle, recorder: RecordingBackend, min_share: float = MIN_FLOP_SHARE) \
        -> dict[str, GraphChoice]:
    """One GraphChoice per graph of the bundle, from what the recorded jobs ran."""
    import onnx

    from munit_rt.export.flops import graph_flops

    models = {name: named_nodes(onnx.load_from_string(bundle.graph_bytes(name, "fp32"))) for name in bundle.graphs}
    flops = {name: sum(count * graph_flops(models[name], dict(signature)).total
                       for signature, count in recorder.shapes.get(name, {}).items())
             for name in bundle.graphs}
    total = sum(flops.values()) or 1
    choices = {}
    for name, model in models.items():
        convs = [node.name for node in model.graph.node if node.op_type in CONV_OPS]
        share = flops[name] / total
        choice = GraphChoice(name, False, "", share, len(convs), rows=len(recorder.rows.get(name, [])))
        if not recorder.shapes.get(name):
            choice.reason = "not run by the translate job"
        elif len(convs) <= 2:
            choice.reason = f"{len(convs)} convolutions, none left after keeping the first and last in fp32"
        elif share < min_share:
            choice.reason = f"{share:.1%} of the job's FLOPs (below {min_share:.0%})"
        else:
            choice.quantize, choice.kept_fp32 = True, list(dict.fromkeys([convs[0], convs[-1]]))
            choice.reason = (f"{share:.1%} of the job's FLOPs: {len(convs) - len(choice.kept_fp32)} of {len(convs)} "
                             "convolutions quantized, the first and last kept fp32")
        choices[name] = choice
    return choices


def named_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every node named (the quantizer excludes nodes by name; an exporter may leave names empty)."""
    used = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)
    return model


def quantize_graph(model_bytes: bytes, rows: list[dict[str, np.ndarray]], kept_fp32: list[str]) -> bytes:
    """FP32 ONNX bytes + calibration rows -> INT8 QDQ ONNX bytes (ONNX Runtime's static quantizer, TOOL)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = named_nodes(onnx.load_from_string(model_bytes))
    with tempfile.TemporaryDirectory(prefix="munit-rt-quantize-") as tmp, _quiet():
        out = Path(tmp) / "int8.onnx"
        quantize_static(model, str(out), _Rows(rows), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=list(CONV_OPS), activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                        nodes_to_exclude=kept_fp32 or None,
                        extra_options={"OpTypesToExcludeOutputQuantization": list(CONV_OPS),  # inputs only
                                       "CalibPercentile": PERCENTILE,
                                       # one row per collection: histograms merge row by row, so memory holds one
                                       # row's activations, never all of them
                                       "CalibStridedMinMax": 1})
        return out.read_bytes()


class _Rows:
    """ONNX Runtime's CalibrationDataReader over recorded rows, with the range protocol of CalibStridedMinMax."""

    def __init__(self, rows: list[dict[str, np.ndarray]]):
        self.rows, self.start, self.end, self.next = rows, 0, len(rows), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next >= self.end:
            return None
        self.next += 1
        return self.rows[self.next - 1]

    def __len__(self) -> int:
        return len(self.rows)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.next = start_index, min(end_index, len(self.rows)), start_index

    def __iter__(self):
        return self

    def __next__(self):
        row = self.get_next()
        if row is None:
            raise StopIteration
        return row


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice ("consider pre-processing") on the root logger and prints progress
    ("Collecting tensor data and making histogram ...", once per row) on stdout: neither is for our users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def tool_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
