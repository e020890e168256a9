"""Bundle reading and validation, and the backend registry (tiny dim-8 model, exported once per session)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from munit_rt.bundle import Bundle
from munit_rt.errors import BackendUnavailable, BundleError, InputError


def build_tiny_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, bundle) of the tiny conftest model (random weights, seed 3), exported once per session."""
    root = tmp_path_factory.getbasetemp() / "munit_rt_tiny"
    checkpoint, bundle = root / "gen_00000010.pt", root / "gen_00000010.bundle"
    if not (bundle / "manifest.json").is_file():
        from conftest import tiny_config_dict

        from munit_rt.export.random_bundle import random_bundle

        random_bundle("munit", root, tiny_config_dict(), precision="fp32", seed=3, iteration=10, force=True)
    return checkpoint, bundle


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_bundle(tmp_path_factory)


@pytest.fixture
def bundle_copy(tiny, tmp_path) -> Path:
    target = tmp_path / "copy.bundle"
    shutil.copytree(tiny[1], target)
    return target


def edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_bundle_exposes_the_manifest(tiny):
    checkpoint, path = tiny
    bundle = Bundle(path)
    assert bundle.family == "munit"
    assert bundle.model.domains == {"a": 3, "b": 3}
    assert bundle.model.style_dim == 4  # tiny config
    assert bundle.preprocess.size == 32 and bundle.preprocess.multiple == 4
    assert "fp32" in bundle.precisions
    roles = ("content_encoder", "style_encoder", "style_mlp", "decoder")
    assert {f"{r}_{d}" for r in roles for d in "ab"} <= set(bundle.graphs)
    assert [t.name for t in bundle.graphs["decoder_b"].inputs] == ["content", "adain_params"]
    assert bundle.graph_path("decoder_b", "fp32").is_file()
    with pytest.raises(BundleError, match="fp16"):
        bundle.graph_path("decoder_b", "fp16")


def test_describe_lists_checkpoint_domains_and_graphs(tiny):
    checkpoint, path = tiny
    text = Bundle(path).describe()
    assert "munit" in text and checkpoint.name in text
    assert "a: 3 channels" in text and "style_dim   4" in text
    for name in ("content_encoder_a", "decoder_b"):
        assert any(line.startswith(name) and "fp32" in line for line in text.splitlines())


def test_changed_byte_is_refused_naming_the_file(bundle_copy):
    graph = bundle_copy / "fp32" / "decoder_a.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"file fp32/decoder_a\.onnx does not match its sha256 in manifest\.json"):
        Bundle(bundle_copy)


def test_missing_file_is_refused(bundle_copy):
    (bundle_copy / "fp32" / "style_mlp_b.onnx").unlink()
    with pytest.raises(BundleError, match=r"fp32/style_mlp_b\.onnx .*missing"):
        Bundle(bundle_copy)


def test_unknown_schema_version_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="schema_version' is 99"):
        Bundle(bundle_copy)


def test_unknown_family_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(family="nosuchgan"))
    with pytest.raises(BundleError, match="'family' is 'nosuchgan', a model family this munit-rt does not know"):
        Bundle(bundle_copy)


@pytest.mark.parametrize("bad_path", ["../x.onnx", "fp32/../../x.onnx", "/etc/passwd"])
def test_paths_leaving_the_bundle_are_refused(bundle_copy, bad_path):
    (bundle_copy.parent / "x.onnx").write_bytes(b"outside")

    def escape(manifest):
        entry = manifest["graphs"]["decoder_a"]["files"]["fp32"]
        manifest["files"][bad_path] = manifest["files"].pop(entry["path"])
        entry["path"] = bad_path

    edit_manifest(bundle_copy, escape)
    with pytest.raises(BundleError, match="must be relative and stay inside the bundle"):
        Bundle(bundle_copy)


def test_symlink_resolving_outside_is_refused(bundle_copy, tmp_path):
    graph = bundle_copy / "fp32" / "decoder_a.onnx"
    outside = tmp_path / "elsewhere.onnx"
    shutil.copyfile(graph, outside)  # same bytes, so only the location can be the reason
    graph.unlink()
    graph.symlink_to(outside)
    with pytest.raises(BundleError, match="resolves outside the bundle"):
        Bundle(bundle_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle(tmp_path)
    with pytest.raises(BundleError, match="not a directory"):
        Bundle(tmp_path / "nothing")


# -- backends ---------------------------------------------------------------------------------------------
def test_registry_auto_picks_onnxruntime_on_a_cpu_machine(tiny):
    from munit_rt.backends import available_backends, get_backend

    assert "onnxruntime" in available_backends()
    backend = get_backend("auto", Bundle(tiny[1]))
    assert backend.name == "onnxruntime"


def test_tensorrt_slot_reports_unavailable_with_install_hint(tiny):
    import importlib.util

    from munit_rt.backends import get_backend, unavailable_reason

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    assert "munit-rt[tensorrt]" in unavailable_reason("tensorrt")
    with pytest.raises(BackendUnavailable, match=r"munit-rt\[tensorrt\]"):
        get_backend("tensorrt", Bundle(tiny[1]))


def test_unknown_backend_and_precision_are_refused(tiny):
    from munit_rt.backends import get_backend
    from munit_rt.errors import MunitRtError

    with pytest.raises(MunitRtError, match="unknown backend 'tvm'"):
        get_backend("tvm", Bundle(tiny[1]))
    with pytest.raises(BundleError, match="no fp16 graphs"):
        get_backend("onnxruntime", Bundle(tiny[1]), precision="fp16")


def test_feeds_are_checked_against_the_manifest(tiny):
    from munit_rt.backends import get_backend

    with get_backend("onnxruntime", Bundle(tiny[1])) as backend:
        good = np.zeros((1, 3, 32, 32), np.float32)
        assert backend.run("content_encoder_a", {"image": good})["content"].shape == (1, 32, 8, 8)
        with pytest.raises(InputError, match="takes inputs"):
            backend.run("content_encoder_a", {"images": good})
        with pytest.raises(InputError, match="float32"):
            backend.run("content_encoder_a", {"image": good.astype(np.float64)})
        with pytest.raises(InputError, match="rank 4"):
            backend.run("content_encoder_a", {"image": good[0]})
        with pytest.raises(InputError, match="axis 1"):
            backend.run("content_encoder_a", {"image": np.zeros((1, 1, 32, 32), np.float32)})


def test_torch_backend_without_torch_names_the_extra(tiny, monkeypatch):
    from munit_rt.backends.torch import TorchBackend

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'munit-rt\[train\]'"):
        TorchBackend(Bundle(tiny[1])).open()


def test_torch_backend_refuses_a_different_checkpoint(tiny, tmp_path):
    from munit_rt.backends.torch import TorchBackend

    other = tmp_path / "gen_00000011.pt"
    other.write_bytes(tiny[0].read_bytes() + b"\0")
    with pytest.raises(BundleError, match="not the file the bundle was exported from"):
        TorchBackend(Bundle(tiny[1]), checkpoint=other).open()


def test_tensor_shapes_follow_the_dims_convention():
    """docs/bundle-format.md: axis 0 the batch, H/W the image size, h/w the size over the spatial multiple."""
    from munit_rt.bundle.schema import TensorSpec

    content = TensorSpec("content", "float32", ("N", 256, "h", "w"))
    assert content.shape_at(8, 128, 4) == (8, 256, 32, 32)
    assert TensorSpec("image", "float32", ("N", 3, "H", "W")).shape_at(1, 64, 4) == (1, 3, 64, 64)
    assert TensorSpec("style", "float32", ("N", 8)).shape_at(5, 64, 4) == (5, 8)
    with pytest.raises(ValueError, match="symbolic dim 'q' at axis 2"):
        TensorSpec("x", "float32", ("N", 3, "q", "W")).shape_at(1, 64, 4)
