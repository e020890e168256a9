"""Reduced precisions for every registered family: `munit-rt quantize` on a copy of the family's tiny bundle, then
its BF16 and INT8 outputs against FP32 within the bounds the manifest records.

The quality is recomputed here independently (PSNR written out, over the family's own job on the held-out images
that quantize_bundle's seeded split kept aside), on the backends `translate --backend openvino` runs: OpenVINO
int8, and bf16 where this CPU runs it natively (else skipped, saying so).
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import write_images

pytest.importorskip("openvino", reason="OpenVINO runs the bf16 and int8 graphs (installed by the dev extra)")
pytest.importorskip("onnxruntime.quantization", reason="munit-rt quantize uses ONNX Runtime's quantizer")

CALIBRATION_IMAGES = 10
MARGIN_DB = 0.5  # run-to-run differences of the int8/bf16 kernels (threads, shapes) stay well inside this


@pytest.fixture(scope="session")
def quantized(exported, tmp_path_factory):
    """(bundle copy quantized on CALIBRATION_IMAGES random images, the calibration folder)."""
    from munit_rt.export.quantize import quantize_bundle

    root = tmp_path_factory.mktemp(f"quantized_{exported.name}")
    copy = root / "model.bundle"
    shutil.copytree(exported.bundle, copy)
    size = exported.manifest["preprocess"]["size"]
    folder = root / "calibration"
    write_images(folder, CALIBRATION_IMAGES, size=(size + 4, size), seed=11)
    quantize_bundle(copy, folder, min_psnr=0.0, notify=lambda line: None)  # tiny random weights: no floor
    return copy, folder


def psnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    mse = float(np.mean((test.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(2.0 ** 2 / mse)


def job_outputs(bundle, backend: str, precision: str, folder: Path) -> dict[str, np.ndarray]:
    """(job, relpath) -> outputs of the family's default jobs on the held-out images."""
    from munit_rt import Translator
    from munit_rt.export.quantize import split_images
    from munit_rt.export.quantize.calibration import job_plans, list_calibration_images, read_images, run_job

    _, heldout = split_images(list_calibration_images(folder), None)
    outputs: dict[str, np.ndarray] = {}
    with Translator(bundle, backend=backend, precision=precision) as translator:
        for job in job_plans(bundle):
            job.plan.prepare(translator)
            run_job(translator, job.plan, read_images(heldout, job.plan, lambda line: None),
                    each=lambda rel, out, name=job.name: outputs.__setitem__(f"{name}/{rel}", out))
    return outputs


def test_quality_records_are_typed_and_name_real_nodes(quantized):
    import onnx

    from munit_rt import Bundle
    from munit_rt.bundle.schema import Quality

    copy, _ = quantized
    bundle = Bundle(copy)
    assert "int8" in bundle.precisions
    record = bundle.manifest.quality["int8"]
    assert isinstance(record, Quality)
    assert record.psnr_db is None or record.psnr_db > 20, record
    assert 0 <= record.p999_levels <= record.max_levels <= 255
    assert record.images >= 1 and record.calibration_images == CALIBRATION_IMAGES - record.images
    assert record.tool and "quantize_static" in record.tool and record.tool_version
    assert record.measured_with.startswith("openvino ")
    assert set(record.kept_fp32) | set(record.fp32_graphs) == set(bundle.graphs)
    for graph, nodes in record.kept_fp32.items():  # quantized: QDQ around its convs, the kept ones plain
        int8 = onnx.load_from_string(bundle.graph_bytes(graph, "int8"))
        fp32_convs = [n.name for n in onnx.load_from_string(bundle.graph_bytes(graph, "fp32")).graph.node
                      if n.op_type in ("Conv", "ConvTranspose")]
        assert list(nodes) == list(dict.fromkeys([fp32_convs[0], fp32_convs[-1]]))
        produced_by = {out: n.op_type for n in int8.graph.node for out in n.output}
        for node in int8.graph.node:
            if node.op_type in ("Conv", "ConvTranspose"):
                dequantized = produced_by.get(node.input[0]) == "DequantizeLinear"
                assert dequantized == (node.name not in nodes), node.name
    for graph in record.fp32_graphs:  # the same file for both precisions
        assert bundle.graphs[graph].files["int8"].path == bundle.graphs[graph].files["fp32"].path


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_outputs_within_the_recorded_bounds(quantized, precision):
    from munit_rt import Bundle
    from munit_rt.backends.openvino import native

    if precision == "bf16" and not native("bf16"):
        pytest.skip("this CPU has no native bf16 (AVX512_BF16 or AMX-BF16): bf16 is refused, not measured")
    copy, folder = quantized
    bundle = Bundle(copy)
    record = bundle.manifest.quality[precision]
    reference = job_outputs(bundle, "onnxruntime", "fp32", folder)
    test = job_outputs(bundle, "openvino", precision, folder)
    assert set(test) == set(reference) and sum(len(v) for v in test.values()) == record.outputs
    for job in record.jobs:  # the record is the worst job: every job is at least that good
        keys = [k for k in reference if k.startswith(f"{job}/")]
        got = psnr_db(np.stack([reference[k] for k in keys]), np.stack([test[k] for k in keys]))
        bound = math.inf if record.psnr_db is None else record.psnr_db
        assert got >= bound - MARGIN_DB, (job, got, record.psnr_db)
