"""TensorRT on a real GPU: engines of the tiny bundle against ONNX Runtime, dynamic shapes, the engine cache.

Run with `pytest -m gpu tests/test_tensorrt_gpu.py` on a machine with an NVIDIA GPU, TensorRT >= 10 and
cuda-python (`pip install 'munit-rt[tensorrt]'`); everywhere else every test skips with the reason.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from munit_rt.errors import BackendUnavailable, InputError
from munit_rt.tensorrt.profiles import ProfileOptions, profile_shapes

pytestmark = pytest.mark.gpu

PROFILE = ProfileOptions(max_batch=4, opt_batch=2, min_size=16, opt_size=32, max_size=48)
FP32_ATOL = 1e-3
FP16_MIN_PSNR_DB = 40.0


def require_gpu() -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'munit-rt[tensorrt]')")
    from munit_rt.tensorrt import import_cudart

    try:
        cudart = import_cudart()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count < 1:
        pytest.skip(f"no CUDA GPU is visible ({err})")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    """The conftest tiny model exported with fp32 and fp16 graphs (needs torch + onnx for the export)."""
    require_gpu()
    pytest.importorskip("torch", reason="the tiny bundle is exported from PyTorch (pip install 'munit-rt[export]')")
    from conftest import tiny_config_dict

    from munit_rt.export.random_bundle import random_bundle

    return random_bundle("munit", tmp_path_factory.mktemp("trt_tiny"), tiny_config_dict(), precision="both", seed=3,
                         iteration=10)


def psnr_db(reference: np.ndarray, actual: np.ndarray, peak: float) -> float:
    mse = float(np.mean((reference.astype(np.float64) - actual) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def assert_close(reference: np.ndarray, actual: np.ndarray, precision: str, is_image: bool, label: str) -> None:
    assert reference.shape == actual.shape, label
    if precision == "fp32":
        err = float(np.abs(reference - actual).max())
        assert err <= FP32_ATOL, f"{label}: max abs err {err:.2e} > {FP32_ATOL}"
    else:
        peak = 2.0 if is_image else float(np.abs(reference).max())
        psnr = psnr_db(reference, actual, peak)
        assert psnr >= FP16_MIN_PSNR_DB, f"{label}: PSNR {psnr:.1f} dB < {FP16_MIN_PSNR_DB}"


def realistic_feeds(ort, graph: str, shape_of: dict[str, tuple[int, ...]], rng) -> dict[str, np.ndarray]:
    """Random images and styles; content and AdaIN come from the fp32 graphs, as in translation."""
    domain = graph.rsplit("_", 1)[1]
    feeds = {}
    for name, shape in shape_of.items():
        if name == "image":
            feeds[name] = rng.uniform(-1, 1, shape).astype(np.float32)
        elif name == "style":
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
        elif name == "content":
            n, _, h, w = shape
            m = ort.bundle.manifest["spatial_multiple"]
            images = rng.uniform(-1, 1, (n, 3, h * m, w * m)).astype(np.float32)
            feeds[name] = ort.run(f"content_encoder_{domain}", {"image": images})["content"]
        else:
            styles = rng.standard_normal((shape[0], ort.bundle.style_dim)).astype(np.float32)
            feeds[name] = ort.run(f"style_mlp_{domain}", {"style": styles})["adain_params"]
    return feeds


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engines_match_onnxruntime_across_the_profile(tiny_bundle, precision):
    from munit_rt.backends.onnxruntime import OnnxRuntimeBackend
    from munit_rt.backends.tensorrt import TensorRTBackend
    from munit_rt.bundle import Bundle

    bundle = Bundle(tiny_bundle)
    shapes = profile_shapes(bundle, PROFILE)
    rng = np.random.default_rng(0)
    with OnnxRuntimeBackend(bundle, "fp32", providers=["CPUExecutionProvider"]) as ort, \
            TensorRTBackend(bundle, precision, profile=PROFILE) as trt:
        for graph, inputs in shapes.items():
            for level in ("min", "opt", "max"):
                feeds = realistic_feeds(ort, graph, {n: getattr(r, level) for n, r in inputs.items()}, rng)
                expected, got = ort.run(graph, feeds), trt.run(graph, feeds)
                for name in expected:
                    assert_close(expected[name], got[name], precision, name == "output", f"{graph}.{name} {level}")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_translate_batch_matches_onnxruntime(tiny_bundle, precision):
    from munit_rt import Translator
    from munit_rt.backends.tensorrt import TensorRTBackend
    from munit_rt.bundle import Bundle

    bundle = Bundle(tiny_bundle)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (5, 3, 32, 40)).astype(np.float32)  # 5 > max batch 4, non-square
    codes = rng.standard_normal((3, bundle.style_dim)).astype(np.float32)
    with Translator(bundle, backend="onnxruntime", providers=["CPUExecutionProvider"]) as ort:
        expected = ort.translate(images, codes, "b2a", batch_size=4)
    with TensorRTBackend(bundle, precision, profile=PROFILE) as trt:
        got = trt.translate_batch(images, codes, "b2a")
        assert_close(expected, got, precision, True, f"translate_batch {precision}")
        with pytest.raises(InputError, match="outside the engine's profile"):
            trt.translate_batch(rng.uniform(-1, 1, (1, 3, 32, 64)).astype(np.float32), codes, "b2a")


def test_engine_cache_is_reused_and_invalidated(tiny_bundle, tmp_path, monkeypatch):
    from munit_rt.bundle import Bundle
    from munit_rt.tensorrt import cache as trt_cache
    from munit_rt.tensorrt.builder import ensure_engines

    shutil.copytree(tiny_bundle, tmp_path / "copy.bundle", ignore=shutil.ignore_patterns("engines"))
    bundle = Bundle(tmp_path / "copy.bundle")
    graphs = ["content_encoder_a", "decoder_b"]
    messages: list[str] = []

    def builds() -> int:
        return sum(m.startswith("building engine") for m in messages)

    first = ensure_engines(bundle, "fp32", PROFILE, graphs=graphs, progress=messages.append)
    assert builds() == 2 and all(p.parent == bundle.path / "engines" for p in first.values())
    assert ensure_engines(bundle, "fp32", PROFILE, graphs=graphs, progress=messages.append) == first
    assert builds() == 2  # second call: everything current, nothing built
    assert list((bundle.path / "engines").glob("timing-*.cache"))

    bigger = ProfileOptions(max_batch=8, opt_batch=2, min_size=16, opt_size=32, max_size=48)
    assert ensure_engines(bundle, "fp32", bigger, graphs=graphs, progress=messages.append) != first
    assert builds() == 4  # a changed profile is another key

    real = trt_cache.query_device()
    monkeypatch.setattr(trt_cache, "query_device", lambda device=0: trt_cache.DeviceInfo(real.name + " (other)",
                                                                                         real.compute_capability))
    other = ensure_engines(bundle, "fp32", PROFILE, graphs=graphs, progress=messages.append)
    assert builds() == 6 and set(other.values()).isdisjoint(first.values())
