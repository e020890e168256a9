"""Precision is explicit: `--precision fp32|fp16|bf16|int8`, the OpenVINO backend, `munit-rt quantize`, and the
refusals (one line, exit 2, nothing written): an unknown precision, one the backend or this CPU cannot run
natively, int8 never calibrated, a calibration folder without images, OpenVINO not installed, a graph OpenVINO
cannot compile, quality below --min-psnr; a damaged quality block is a BundleError. The executed precision is
read from the runtime. Every family's bf16/int8 outputs against its recorded bounds: tests/contract."""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from conftest import invoke, translate, write_images

pytest.importorskip("torch", reason="the tiny bundle is exported from torch modules")
openvino = pytest.importorskip("openvino", reason="the OpenVINO backend (installed by the dev extra)")


def manifest_sha(bundle: Path) -> str:
    return hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()


def error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("calibration") / "faces"
    write_images(folder, 8, size=(36, 32), seed=5)
    return folder


@pytest.fixture(scope="module")
def quantized(model, images, tmp_path_factory) -> Path:
    """A copy of the tiny MUNIT bundle after `munit-rt quantize` (the CLI, --min-psnr 0: random weights)."""
    copy = tmp_path_factory.mktemp("q") / "model.bundle"
    shutil.copytree(model, copy)
    code, output = invoke("quantize", copy, "--calibrate", images, "--min-psnr", "0")
    assert code == 0, output
    return copy


@pytest.fixture
def bundle_copy(model, tmp_path) -> Path:
    copy = tmp_path / "copy.bundle"
    shutil.copytree(model, copy)
    return copy


# -- the executed precision, read from the runtime ------------------------------------------------------


def test_openvino_fp32_executes_fp32_and_matches_onnxruntime(model):
    import numpy as np

    from munit_rt import Translator

    images = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    codes = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    with Translator(model, backend="onnxruntime") as reference, \
            Translator(model, backend="openvino", precision="fp32") as tested:
        expected, got = reference.translate(images, codes), tested.translate(images, codes)
        executed = tested.backend.executed()
        assert "fp32 executed" in tested.backend.device
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert set(executed) == set(Translator(model).bundle.graphs)
    for name, info in executed.items():
        assert info["hint"] == "fp32" and set(info["conv"]) | set(info["matmul"]) <= {"fp32"}, (name, info)


def test_bf16_executes_bf16_where_native(model):
    from munit_rt import Translator
    from munit_rt.backends.openvino import native

    if not native("bf16"):
        pytest.skip("this CPU has no native bf16 (AVX512_BF16 or AMX-BF16): bf16 is refused here (tested below)")
    with Translator(model, backend="openvino", precision="bf16") as tested:
        executed = tested.backend.executed()
        device = tested.backend.device
    convs = sum(sum(info["conv"].values()) for info in executed.values())
    assert convs > 0 and all(info["hint"] == "bf16" and set(info["conv"]) <= {"bf16"} for info in executed.values())
    assert f"bf16 executed: {convs}/{convs} convs" in device


def test_int8_executes_int8_convs_with_the_kept_ones_float(quantized):
    from munit_rt import Bundle, Translator
    from munit_rt.backends.openvino import native

    record = Bundle(quantized).manifest.quality["int8"]
    with Translator(quantized, backend="openvino", precision="int8") as tested:
        executed = tested.backend.executed()
    rest = "bf16" if native("bf16") else "fp32"
    for graph, nodes in record.kept_fp32.items():
        assert executed[graph]["conv"].get("int8", 0) > 0 and executed[graph]["conv"].get(rest, 0) >= len(nodes)
    for graph in record.fp32_graphs:
        assert "int8" not in executed[graph]["conv"]


# -- quantize: the manifest, the summary, info ------------------------------------------------------------


def test_quantize_records_quality_and_translate_names_it(quantized, images, tmp_path):
    from munit_rt import Bundle

    bundle = Bundle(quantized)
    assert bundle.precisions == ["fp32", "int8"] and "int8" in bundle.manifest.quality
    referenced = {entry.path for graph in bundle.graphs.values() for entry in graph.files.values()}
    on_disk = {p.relative_to(quantized).as_posix() for p in (quantized / "int8").iterdir()}
    assert on_disk <= referenced  # no stray files
    code, output = translate(quantized, "--backend", "openvino", "--precision", "int8", images, "-o", tmp_path / "o")
    assert code == 0, output
    headline = output.splitlines()[0]
    psnr = bundle.manifest.quality["int8"].psnr_db
    assert "backend openvino (cpu, " in headline and "int8 executed: " in headline
    assert f"int8: {psnr:.1f} dB PSNR vs fp32" in headline and headline.endswith("recorded"), headline
    code, output = invoke("info", quantized)
    assert code == 0 and "stored fp32, int8" in output and f"int8: {psnr:.1f} dB PSNR vs fp32" in output, output


def test_requantizing_replaces_the_int8_files(quantized, images, tmp_path):
    copy = tmp_path / "again.bundle"
    shutil.copytree(quantized, copy)
    before = json.loads((copy / "manifest.json").read_text())
    code, output = invoke("quantize", copy, "--calibrate", images, "--min-psnr", "0", "--holdout", "3")
    assert code == 0, output
    after = json.loads((copy / "manifest.json").read_text())
    assert after["quality"]["int8"]["images"] == 3 and after["precisions"] == ["fp32", "int8"]
    referenced = {e["path"] for g in after["graphs"].values() for e in g["files"].values()}
    assert {p.relative_to(copy).as_posix() for p in (copy / "int8").iterdir()} <= referenced
    old = {g["files"]["int8"]["path"] for g in before["graphs"].values()} - referenced
    assert all(not (copy / path).exists() for path in old)
    from munit_rt import Bundle

    Bundle(copy)  # every hash checks


def test_quantize_output_writes_a_copy_and_leaves_the_bundle_unchanged(model, images, tmp_path):
    """--output: a new bundle with the int8 graphs (every hash checks, the same fp32 graphs); the source's files,
    read-only here as an installed bundle may be, are untouched."""
    import os
    import stat

    from munit_rt import Bundle

    source = shutil.copytree(model, tmp_path / "read-only.bundle")
    before = {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    for path in (source, *(p for p in source.rglob("*") if p.is_dir())):
        os.chmod(path, stat.S_IRUSR | stat.S_IXUSR)
    try:
        out = tmp_path / "new" / "int8.bundle"
        code, output = invoke("quantize", source, "--calibrate", images, "--min-psnr", "0", "-o", out)
        assert code == 0 and f"into {out}" in output, output
    finally:
        for path in (source, *(p for p in source.rglob("*") if p.is_dir())):
            os.chmod(path, stat.S_IRWXU)
    assert {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()} == before
    copy, original = Bundle(out), Bundle(source)
    assert copy.precisions == ["fp32", "int8"] and "int8" in copy.manifest.quality
    assert all(copy.graph_bytes(name, "fp32") == original.graph_bytes(name, "fp32") for name in original.graphs)
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no staging folder left


def test_quantize_output_refuses_a_folder_in_use_and_writes_nothing_below_the_floor(model, images, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    code, output = invoke("quantize", model, "--calibrate", images, "-o", used)
    line = error_line(output)
    assert code == 2 and f"--output {used} exists and is not an empty folder" in line, output
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    out = tmp_path / "low.bundle"
    code, output = invoke("quantize", model, "--calibrate", images, "--min-psnr", "200", "-o", out)
    assert code == 2 and "nothing written" in error_line(output), output
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- refusals: one line, exit 2, nothing written -------------------------------------------------------------


def test_unknown_precision_is_refused(model, images, tmp_path):
    from munit_rt import Translator
    from munit_rt.errors import InputError

    code, output = translate(model, "--precision", "fp8", images, "-o", tmp_path / "o")
    assert code == 2 and "fp8" in output and not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        Translator(model, backend="openvino", precision="fp8")


def test_int8_never_calibrated_is_refused(model, images, tmp_path):
    for backend in ("openvino", "onnxruntime"):
        code, output = translate(model, "--backend", backend, "--precision", "int8", images, "-o", tmp_path / "o")
        line = error_line(output)
        assert code == 2 and "has no int8 graphs" in line and "munit-rt quantize" in line, output
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("backend, precision, names", [("onnxruntime", "bf16", "--backend openvino"),
                                                       ("torch", "int8", "--backend onnxruntime or openvino"),
                                                       ("tensorrt", "bf16", "--backend openvino")])
def test_a_backend_without_the_precision_refuses_it(model, images, tmp_path, backend, precision, names):
    code, output = translate(model, "--backend", backend, "--precision", precision, images, "-o", tmp_path / "o")
    line = error_line(output)
    assert code == 2 and f"--precision {precision}: the {backend} backend runs" in line and names in line, output
    assert not (tmp_path / "o").exists()


def test_bf16_without_native_support_is_refused(model, images, tmp_path, monkeypatch):
    from munit_rt.backends import openvino as ov_backend

    monkeypatch.setattr(ov_backend, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    code, output = translate(model, "--backend", "openvino", "--precision", "bf16", images, "-o", tmp_path / "o")
    line = error_line(output)
    assert code == 2 and "no native bf16" in line and "a third of its fp32 speed" in line, output
    assert not (tmp_path / "o").exists()
    monkeypatch.undo()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # an ISA cap below AVX512_BF16 counts too
    assert ov_backend.OpenVinoBackend.precision_refusal("bf16") is not None
    assert ov_backend.OpenVinoBackend.precision_refusal("int8") is None


def test_openvino_not_installed_is_refused(model, images, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    code, output = translate(model, "--backend", "openvino", images, "-o", tmp_path / "o")
    line = error_line(output)
    assert code == 2 and "openvino is not installed" in line and "pip install 'munit-rt[openvino]'" in line
    assert not (tmp_path / "o").exists()


def test_a_graph_openvino_cannot_compile_is_refused(model, images, tmp_path, monkeypatch):
    class Core(openvino.Core):
        def compile_model(self, model, *args, **kwargs):
            if any("adain_params" in port.get_names() for port in model.inputs):
                raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\nCheck '!impl' failed at x:\n"
                                   "No suitable implementations for Convolution")
            return super().compile_model(model, *args, **kwargs)

    monkeypatch.setattr(openvino, "Core", Core)
    code, output = translate(model, "--backend", "openvino", images, "-o", tmp_path / "o")
    line = error_line(output)
    assert code == 2 and "OpenVINO cannot compile graph 'decoder_" in line, output
    assert "No suitable implementations for Convolution" in line and "--backend onnxruntime" in line
    assert not (tmp_path / "o").exists()


def test_calibration_folder_without_images_is_refused(bundle_copy, tmp_path):
    before = manifest_sha(bundle_copy)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    code, output = invoke("quantize", bundle_copy, "--calibrate", tmp_path / "empty")
    line = error_line(output)
    assert code == 2 and "no images found" in line, output
    assert manifest_sha(bundle_copy) == before and not (bundle_copy / "int8").exists()


def test_below_the_floor_nothing_is_written(bundle_copy, images):
    before = manifest_sha(bundle_copy)
    code, output = invoke("quantize", bundle_copy, "--calibrate", images, "--min-psnr", "200")
    line = error_line(output)
    assert code == 2 and "below --min-psnr 200" in line and "nothing written" in line, output
    assert manifest_sha(bundle_copy) == before and not (bundle_copy / "int8").exists()


@pytest.mark.parametrize("damage, key", [
    (lambda q: q["int8"].update(psnr_db="high"), "quality.int8.psnr_db"),
    (lambda q: q["int8"].update(p999_levels=300), "quality.int8.p999_levels"),
    (lambda q: q["int8"].update(kept_fp32={"no_such_graph": []}), "quality.int8.kept_fp32.no_such_graph"),
    (lambda q: q.update(fp64=q["int8"]), "quality.fp64"),
    (lambda q: q["int8"].pop("measured_with"), "quality.int8.measured_with"),
])
def test_a_damaged_quality_block_is_a_bundle_error(quantized, tmp_path, damage, key):
    from munit_rt import Bundle
    from munit_rt.errors import BundleError

    copy = tmp_path / "damaged.bundle"
    shutil.copytree(quantized, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    damage(manifest["quality"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=key.replace(".", r"\.")):
        Bundle(copy)


def test_int8_quality_without_int8_graphs_is_a_bundle_error(model, quantized, tmp_path):
    from munit_rt import Bundle
    from munit_rt.errors import BundleError

    copy = tmp_path / "fp32only.bundle"
    shutil.copytree(model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["quality"] = json.loads((quantized / "manifest.json").read_text())["quality"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="quality.int8"):
        Bundle(copy)
