"""TensorRT support without TensorRT or a GPU: profiles, the engine cache, the builder and the runner.

TensorRT and cuda-python are replaced by the fakes of tests/fakes/tensorrt.py: `FakeTrt` builds "engines" that
are JSON plans and runs them as numpy functions, and `FakeCudart` hands out real host memory (ctypes buffers) as
"device" memory, so pointer arithmetic, row copies and buffer reuse are exercised for real.
"""
from __future__ import annotations

import hashlib
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from fakes import tensorrt as trt_fakes
from fakes.imports import run_blocked
from fakes.tensorrt import CC, M, MLP_W, P, SD, fake_graph, fake_manifest, typed
from munit_rt.errors import BackendUnavailable, BundleError, InputError
from munit_rt.tensorrt import EngineBuildError, ProfileError
from munit_rt.tensorrt import builder as trt_builder
from munit_rt.tensorrt import cache as trt_cache
from munit_rt.tensorrt import runner as trt_runner
from munit_rt.tensorrt.profiles import ProfileOptions, ShapeRange, profile_shapes, resolve


@pytest.fixture
def fake_bundle(tmp_path):
    """A bundle that munit_rt.bundle.Bundle accepts; its .onnx files declare I/O only (fakes read nothing)."""
    from munit_rt.bundle import Bundle

    return Bundle(trt_fakes.write_fake_bundle(tmp_path / "tiny.bundle"))


@pytest.fixture
def fakes(monkeypatch):
    """FakeTrt + FakeCudart behind every import seam; returns them (.trt, .cudart). The engines run this module's
    `fake_graph`, looked up at each call, so a test may patch it (tests/test_bench_families.py does)."""
    return trt_fakes.install(monkeypatch, compute=lambda role, feeds: fake_graph(role, feeds))


# --------------------------------------------------------------------------------------------- profiles


def test_profile_shapes_from_explicit_options():
    options = ProfileOptions(max_batch=6, opt_batch=3, min_size=32, opt_size=64, max_size=128)
    shapes = profile_shapes(typed(fake_manifest()), options)
    assert set(shapes) == set(fake_manifest()["graphs"])
    assert shapes["content_encoder_a"]["image"] == ShapeRange((1, 3, 32, 32), (3, 3, 64, 64), (6, 3, 128, 128))
    assert shapes["decoder_b"]["content"] == ShapeRange((1, CC, 8, 8), (3, CC, 16, 16), (6, CC, 32, 32))
    assert shapes["decoder_b"]["adain_params"] == ShapeRange((1, P), (3, P), (6, P))
    assert shapes["style_mlp_a"]["style"] == ShapeRange((1, SD), (3, SD), (6, SD))
    assert shapes["style_encoder_b"]["image"].max == (6, 3, 128, 128)


def test_profile_defaults_follow_the_bundle():
    manifest = typed(fake_manifest(size=256))
    assert resolve(None, manifest).batch == (1, 8, 16)
    assert resolve(None, manifest).size == (128, 256, 512)
    assert resolve(ProfileOptions(max_batch=4), manifest).batch == (1, 4, 4)  # opt follows a small max
    assert resolve(ProfileOptions(opt_batch=32), manifest).batch == (1, 32, 32)  # max follows a large opt
    assert resolve(ProfileOptions(max_size=128), manifest).size == (64, 128, 128)  # opt kept inside max
    assert resolve(ProfileOptions(min_size=512), manifest).size == (512, 512, 1024)
    assert resolve(None, typed(fake_manifest(size=250, multiple=8))).size == (128, 248, 496)  # rounded
    content = profile_shapes(typed(fake_manifest(size=256, multiple=8)), None)["decoder_a"]["content"]
    assert content == ShapeRange((1, CC, 16, 16), (8, CC, 32, 32), (16, CC, 64, 64))


@pytest.mark.parametrize("options, names", [
    (ProfileOptions(min_size=30), ["--min-size", "multiple of 4", "28 or 32"]),
    (ProfileOptions(opt_size=66), ["--opt-size"]),
    (ProfileOptions(max_size=2), ["--max-size", ">= 4"]),
    (ProfileOptions(min_size=128, opt_size=64), ["--min-size 128", "--opt-size 64"]),
    (ProfileOptions(opt_size=256, max_size=128), ["--opt-size 256", "--max-size 128"]),
    (ProfileOptions(min_size=256, max_size=128), ["--min-size 256", "--max-size 128"]),
    (ProfileOptions(max_batch=0), ["--max-batch"]),
    (ProfileOptions(opt_batch=9, max_batch=4), ["--opt-batch 9", "--max-batch 4"]),
])
def test_invalid_profile_options_name_the_option(options, names):
    with pytest.raises(ProfileError) as info:
        profile_shapes(typed(fake_manifest()), options)
    for name in names:
        assert name in str(info.value)


def test_profile_keeps_static_dims_and_rejects_unknown_symbolic_dims():
    manifest = fake_manifest()
    manifest["graphs"]["style_mlp_a"]["inputs"][0]["shape"] = [1, SD]
    static = profile_shapes(typed(manifest), None, ["style_mlp_a"])["style_mlp_a"]["style"]
    assert static == ShapeRange((1, SD), (1, SD), (1, SD))
    manifest["graphs"]["decoder_a"]["inputs"][0]["shape"] = ["N", CC, "q", "w"]  # sized by no convention
    with pytest.raises(BundleError, match="input 'content' has the symbolic dim 'q' at axis 2"):
        profile_shapes(typed(manifest), None, ["decoder_a"])
    with pytest.raises(BundleError, match="no graph 'decoder_c'"):
        profile_shapes(typed(manifest), None, ["decoder_c"])


def test_shape_range_contains():
    r = ShapeRange((1, 3, 8, 8), (2, 3, 16, 16), (4, 3, 32, 32))
    assert r.contains((4, 3, 32, 8)) and not r.contains((5, 3, 16, 16)) and not r.contains((1, 3, 16))


# ------------------------------------------------------------------------------------------------ cache

PROFILE = {"image": {"min": [1, 3, 8, 8], "opt": [2, 3, 16, 16], "max": [4, 3, 32, 32]},
           "style": {"min": [1, SD], "opt": [2, SD], "max": [4, SD]}}
KEY_ARGS = dict(graph="decoder_b", precision="fp16", graph_sha256="ab" * 32, tensorrt_version="10.9.0.34",
                gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", profile=PROFILE)
CHANGED = {  # every part of the key, changed alone
    "graph_sha256": "cd" * 32, "tensorrt_version": "10.9.0.35", "gpu_name": "NVIDIA A100-SXM4-80GB",
    "compute_capability": "8.0", "precision": "fp32",
    "profile": {**PROFILE, "image": {**PROFILE["image"], "max": [8, 3, 32, 32]}},
}


def test_cache_key_is_stable_and_independent_of_dict_order():
    reordered = {"style": dict(reversed(list(PROFILE["style"].items()))), "image": PROFILE["image"]}
    a = trt_cache.EngineKey(**KEY_ARGS)
    b = trt_cache.EngineKey(**{**KEY_ARGS, "profile": reordered})
    tuples = {name: {k: tuple(v) for k, v in r.items()} for name, r in PROFILE.items()}
    c = trt_cache.EngineKey(**{**KEY_ARGS, "profile": tuples})
    assert a.digest == b.digest == c.digest == trt_cache.EngineKey(**KEY_ARGS).digest
    assert len(a.digest) == 64 and a.file_name == f"decoder_b-fp16-{a.digest[:16]}.plan"
    assert a.digest == hashlib.sha256(trt_cache.canonical_json(a.parts()).encode()).hexdigest()


@pytest.mark.parametrize("part", sorted(CHANGED))
def test_cache_key_changes_with_every_part(part):
    base = trt_cache.EngineKey(**KEY_ARGS)
    changed = trt_cache.EngineKey(**{**KEY_ARGS, part: CHANGED[part]})
    assert changed.digest != base.digest
    assert changed.file_name != base.file_name


def test_engine_key_reads_the_graph_sha_of_the_precision():
    manifest = fake_manifest()
    manifest["graphs"]["decoder_b"]["files"] = {"fp16": {"path": "x16.onnx", "sha256": "11" * 32},
                                                "fp32": {"path": "x32.onnx", "sha256": "22" * 32}}
    manifest["precisions"] = ["fp32"]
    del manifest["graphs"]["decoder_a"]["files"]["fp16"]
    device = trt_cache.DeviceInfo("GPU", "9.0")
    key = trt_cache.engine_key(typed(manifest), "decoder_b", "fp16", PROFILE, "10.9", device)
    assert key.graph_sha256 == "11" * 32
    with pytest.raises(BundleError, match="no fp16 file for graph 'decoder_a'"):
        trt_cache.engine_key(typed(manifest), "decoder_a", "fp16", PROFILE, "10.9", device)


@pytest.mark.parametrize("part", ["tensorrt_version", "gpu_name", "compute_capability", "graph_sha256"])
def test_stale_engine_is_never_returned(tmp_path, part):
    current = trt_cache.EngineKey(**KEY_ARGS)
    stale = trt_cache.EngineKey(**{**KEY_ARGS, part: CHANGED[part]})
    trt_cache.write_engine(tmp_path, stale, b"old plan")
    assert trt_cache.find_engine(tmp_path, current) is None
    assert trt_cache.find_engine(tmp_path, stale) == tmp_path / stale.file_name
    # a stale sidecar under the current key's file name (forged, or a 16-hex-digit collision) is not trusted
    forged = tmp_path / current.file_name
    forged.write_bytes(b"old plan")
    trt_cache.sidecar_path(forged).write_text(trt_cache.sidecar_path(tmp_path / stale.file_name).read_text())
    assert trt_cache.find_engine(tmp_path, current) is None
    sidecar = json.loads(trt_cache.sidecar_path(forged).read_text())
    sidecar["key"] = current.digest  # the digest claims a match, the parts say otherwise
    trt_cache.sidecar_path(forged).write_text(json.dumps(sidecar))
    assert trt_cache.find_engine(tmp_path, current) is None
    path = trt_cache.write_engine(tmp_path, current, b"new plan")
    assert trt_cache.find_engine(tmp_path, current) == path and path.read_bytes() == b"new plan"


def test_find_engine_rejects_damaged_plans_and_sidecars(tmp_path):
    key = trt_cache.EngineKey(**KEY_ARGS)
    path = trt_cache.write_engine(tmp_path, key, b"0123456789")
    assert trt_cache.find_engine(tmp_path, key) == path
    path.write_bytes(b"0123456789"[::-1])  # same size, other bytes
    assert trt_cache.find_engine(tmp_path, key) is None
    path.write_bytes(b"012345")
    assert trt_cache.find_engine(tmp_path, key) is None
    trt_cache.write_engine(tmp_path, key, b"0123456789")
    trt_cache.sidecar_path(path).write_text("{not json")
    assert trt_cache.find_engine(tmp_path, key) is None
    trt_cache.sidecar_path(path).unlink()
    assert trt_cache.find_engine(tmp_path, key) is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_new_graph_bytes_remove_old_engines_but_other_gpus_stay(tmp_path):
    old_graph = trt_cache.EngineKey(**{**KEY_ARGS, "graph_sha256": "cd" * 32})
    other_gpu = trt_cache.EngineKey(**{**KEY_ARGS, "gpu_name": "NVIDIA L4", "compute_capability": "8.9"})
    other_precision = trt_cache.EngineKey(**{**KEY_ARGS, "graph_sha256": "cd" * 32, "precision": "fp32"})
    for key in (old_graph, other_gpu, other_precision):
        trt_cache.write_engine(tmp_path, key, b"plan")
    trt_cache.write_engine(tmp_path, trt_cache.EngineKey(**KEY_ARGS), b"plan")
    assert not (tmp_path / old_graph.file_name).exists()
    assert not trt_cache.sidecar_path(tmp_path / old_graph.file_name).exists()
    assert (tmp_path / other_gpu.file_name).exists() and (tmp_path / other_precision.file_name).exists()


def test_timing_cache_path_is_keyed_by_version_and_device(tmp_path):
    gpu = trt_cache.DeviceInfo("NVIDIA H100", "9.0")
    base = trt_cache.timing_cache_path(tmp_path, "10.9", gpu)
    assert base == trt_cache.timing_cache_path(tmp_path, "10.9", gpu) and base.name.startswith("timing-")
    assert base != trt_cache.timing_cache_path(tmp_path, "10.10", gpu)
    assert base != trt_cache.timing_cache_path(tmp_path, "10.9", trt_cache.DeviceInfo("NVIDIA L4", "9.0"))
    assert base != trt_cache.timing_cache_path(tmp_path, "10.9", trt_cache.DeviceInfo("NVIDIA H100", "8.9"))


def test_engine_dir_is_in_the_bundle_or_the_user_cache(tmp_path, monkeypatch):
    bundle = tmp_path / "b.bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    assert trt_cache.engine_dir(bundle) == bundle / "engines"
    monkeypatch.setattr(trt_cache.os, "access", lambda path, mode: False)  # a read-only install
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fallback = trt_cache.engine_dir(bundle)
    assert fallback.parent == tmp_path / "xdg" / "munit-rt" / "engines" and fallback.is_dir()


def test_query_device_reads_cuda_properties(fakes):
    assert trt_cache.query_device() == trt_cache.DeviceInfo("Fake GPU 80GB", "9.0")


# ---------------------------------------------------------------------------------------------- builder

SHAPES = {"style": ShapeRange((1, SD), (2, SD), (4, SD))}


def test_parser_errors_are_all_reported_with_node_names(tmp_path, fakes):
    fakes.trt.parser_error_list = [("/dec/Conv_3", "Unsupported padding mode", "Conv"),
                                   ("/dec/Resize_7", "Resize: unsupported coordinate mode", "Resize")]
    onnx = tmp_path / "style_mlp_a.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(EngineBuildError) as info:
        trt_builder.build_engine(onnx, SHAPES, "fp16", None, None, fakes.trt.Logger())
    message = str(info.value)
    assert "2 errors" in message and "\n" not in message
    assert "/dec/Conv_3 (Conv): Unsupported padding mode" in message
    assert "/dec/Resize_7 (Resize): Resize: unsupported coordinate mode" in message
    assert not fakes.trt.builds


@pytest.mark.parametrize("version, flags", [("10.9.0.34", 1 << 1), ("11.0.0.1", 0)])
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_build_engine_configures_the_builder(tmp_path, fakes, version, flags, precision):
    fakes.trt.__version__ = version
    fakes.trt.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)
    onnx, timing = tmp_path / "style_mlp_a.onnx", tmp_path / "timing.cache"
    onnx.write_bytes(b"x")
    plan = json.loads(trt_builder.build_engine(onnx, SHAPES, precision, 512, timing, fakes.trt.Logger()))
    assert plan["flags"] == flags
    assert plan["profile"] == {"style": {"min": [1, SD], "opt": [2, SD], "max": [4, SD]}}
    assert plan["workspace"] == 512 << 20
    assert plan["cleared"] == (["tf32"] if precision == "fp32" else [])
    assert timing.read_bytes() == b"t"  # empty cache created, then serialized after the build
    trt_builder.build_engine(onnx, SHAPES, precision, None, timing, fakes.trt.Logger())
    assert timing.read_bytes() == b"tt"  # the second build started from the stored cache


def test_build_engine_refuses_profiles_that_miss_inputs(tmp_path, fakes):
    onnx = tmp_path / "decoder_a.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(EngineBuildError, match="do not match the manifest"):
        trt_builder.build_engine(onnx, SHAPES, "fp16", None, None, fakes.trt.Logger())


def test_engines_are_cached_and_rebuilt_only_when_stale(fake_bundle, fakes):
    messages = []
    options = trt_builder.BuildOptions(precision="fp16", profile=ProfileOptions(max_batch=4, max_size=32))
    first = trt_builder.prepare_engines(fake_bundle, options, messages.append)
    assert len(fakes.trt.builds) == 8 and all(r.built for r in first)
    assert all(r.path.parent == fake_bundle.path / "engines" and r.path.is_file() for r in first)
    assert "building engine decoder_b fp16 ..." in messages

    again = trt_builder.build_engines(fake_bundle, options, messages.append)
    assert len(fakes.trt.builds) == 8 and again == [r.path for r in first]

    fakes.trt.__version__ = "10.10.0.1"  # a TensorRT upgrade makes every engine stale
    upgraded = trt_builder.ensure_engines(fake_bundle, "fp16", options.profile, graphs=["decoder_b"],
                                          progress=messages.append)
    assert len(fakes.trt.builds) == 9 and upgraded["decoder_b"] != first[0].path
    assert messages[-2] == "building engine decoder_b fp16 (first use, this takes a minute) ..."

    other_profile = trt_builder.BuildOptions(precision="fp16", graphs=("decoder_b",), profile=ProfileOptions())
    trt_builder.build_engines(fake_bundle, other_profile, messages.append)
    assert len(fakes.trt.builds) == 10 and fakes.trt.builds[-1]["profile"]["content"]["max"] == [16, CC, 8, 8]


def test_build_engines_validates_before_importing_tensorrt(fake_bundle, monkeypatch):
    def no_tensorrt():
        raise AssertionError("tensorrt imported before the options were checked")

    monkeypatch.setattr(trt_builder, "_import_tensorrt", no_tensorrt)
    with pytest.raises(BundleError, match="--graphs: unknown graph decoder_c"):
        trt_builder.build_engines(fake_bundle, trt_builder.BuildOptions(graphs=("decoder_c",)))
    with pytest.raises(ProfileError, match="--max-size"):
        trt_builder.build_engines(fake_bundle, trt_builder.BuildOptions(profile=ProfileOptions(max_size=30)))


def test_fp16_needs_fp16_graphs(fake_bundle, fakes):
    import dataclasses

    fake_bundle.manifest = dataclasses.replace(fake_bundle.manifest, precisions=("fp32",))
    with pytest.raises(BundleError, match="has no fp16 graphs"):
        trt_builder.build_engines(fake_bundle, trt_builder.BuildOptions(precision="fp16"))


# -------------------------------------------------------------------------------------------------- CLI


def _cli():
    """munit_rt.cli.cli; before `build` is registered there, a copy of it with the command added."""
    import copy

    from munit_rt.cli import build, cli

    if "build" in cli.commands:
        return cli
    group = copy.copy(cli)
    group.commands = {**cli.commands, "build": build.command}
    return group


def test_build_command_is_registered():
    from munit_rt.cli import cli

    assert "build" in cli.commands, "add 'build' to the command list in munit_rt/cli/__init__.py"


def test_build_without_tensorrt_exits_2_naming_the_extra(fake_bundle, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    result = CliRunner().invoke(_cli(), ["build", str(fake_bundle.path), "--precision", "fp16"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "munit-rt[tensorrt]" in lines[0] and lines[0].startswith("Error:")


def test_build_reports_bad_options_with_exit_2(fake_bundle):
    from click.testing import CliRunner

    result = CliRunner().invoke(_cli(), ["build", str(fake_bundle.path), "--min-size", "30"])
    assert result.exit_code == 2 and "--min-size 30" in result.output


def test_build_command_builds_with_fakes(fake_bundle, fakes):
    from click.testing import CliRunner

    args = ["build", str(fake_bundle.path), "--max-batch", "4", "--max-size", "32", "--graphs", "decoder_a,decoder_b"]
    first = CliRunner().invoke(_cli(), args + ["--graphs", "style_mlp_a", "--workspace", "64"])
    assert first.exit_code == 0, first.output
    assert [b["graph"] for b in fakes.trt.builds] == ["decoder_a", "decoder_b", "style_mlp_a"]
    assert fakes.trt.builds[0]["workspace"] == 64 << 20 and "built " in first.output
    second = CliRunner().invoke(_cli(), args)
    assert second.exit_code == 0 and second.output.count("cached") == 2 and len(fakes.trt.builds) == 3


def test_build_help():
    from click.testing import CliRunner

    result = CliRunner().invoke(_cli(), ["build", "--help"])
    assert result.exit_code == 0 and "--max-batch" in result.output and "strongly typed" in result.output


# ----------------------------------------------------------------------------------------------- runner

MLP_PROFILE = {"style": {"min": [1, SD], "opt": [2, SD], "max": [4, SD]}}


def mlp_runner():
    return trt_runner.EngineRunner(json.dumps({"graph": "style_mlp_a", "profile": MLP_PROFILE}).encode(), "mlp")


def test_runner_runs_numpy_feeds_and_reuses_its_buffers(fakes):
    with mlp_runner() as runner:
        assert runner.tensors["style"].max_shape == (4, SD) and runner.tensors["adain_params"].max_shape == (4, P)
        mallocs = fakes.cudart.calls["cudaMalloc"]
        for batch in (1, 4, 2, 4):
            style = np.random.default_rng(batch).standard_normal((batch, SD)).astype(np.float32)
            out = runner.run({"style": style})["adain_params"]
            np.testing.assert_allclose(out, style @ MLP_W + 1, rtol=1e-6)
            out[...] = 0  # a returned array is the caller's, not a view of the pinned buffer
        assert fakes.cudart.calls["cudaMalloc"] == mallocs == 2
        assert fakes.cudart.calls["cudaMallocHost"] == 2  # pinned, once per tensor, on first transfer
        style = np.random.default_rng(9).standard_normal((9, SD)).astype(np.float32)  # > max batch: 3 chunks
        executes = fakes.cudart.copies.count(("H2D", 4 * SD * 4))
        np.testing.assert_allclose(runner.run({"style": style})["adain_params"], style @ MLP_W + 1, rtol=1e-6)
        assert fakes.cudart.copies.count(("H2D", 4 * SD * 4)) == executes + 2
        with pytest.raises(InputError, match=r"outside the engine's profile .*max \[4, 3\]"):
            runner.run({"style": np.zeros((2, SD + 1), np.float32)})
        with pytest.raises(InputError, match="missing inputs"):
            runner.run({})
    assert fakes.cudart.calls["cudaFree"] == 4 and not fakes.cudart.blocks


@pytest.mark.parametrize("rows", [[0, 0, 0, 1, 1, 2], [3, 4, 5, 0, 1], [2, 2, 2, 2, 2, 2, 2], [1, 0, 1, 0], [],
                                  [0, 1, 1, 2, 3, 3, 3, 3, 3]])
def test_gather_plan_builds_every_row_with_few_copies(rows):
    source = np.random.default_rng(0).standard_normal((6, 5))
    result = np.full((len(rows), 5), np.nan)
    plan = trt_runner.gather_plan(np.array(rows, np.int64))
    for c in plan:
        assert not c.from_self or c.src_row + c.rows <= c.dst_row  # a doubling never overlaps itself
        src = result if c.from_self else source
        result[c.dst_row:c.dst_row + c.rows] = src[c.src_row:c.src_row + c.rows]
    np.testing.assert_array_equal(result, source[rows])
    runs = [len(list(g)) for _, g in __import__("itertools").groupby(rows)]  # a row repeated k times
    assert len(plan) <= sum(1 + int(np.ceil(np.log2(k))) for k in runs)  # 1 + log2(k) copies, not k


# ---------------------------------------------------------------------------------------------- backend


def reference_translate(images, codes, direction="a2b"):
    content = fake_graph("content_encoder", {"image": images})["content"]
    adain = fake_graph("style_mlp", {"style": codes})["adain_params"]
    n, s = len(images), len(codes)
    out = fake_graph("decoder", {"content": np.repeat(content, s, 0), "adain_params": np.tile(adain, (n, 1))})
    return out["output"].reshape(n, s, *out["output"].shape[1:])


@pytest.mark.parametrize("n, s", [(5, 3), (2, 6), (1, 1)])
def test_translate_keeps_the_content_code_on_the_device(fake_bundle, fakes, n, s):
    """MUNIT's job (written once for every backend) on TensorRT: the content code is never downloaded; it is
    broadcast over the styles by device-to-device row copies, and the outputs equal the numpy reference."""
    from munit_rt.backends.tensorrt import TensorRTBackend
    from munit_rt.translator import Translator

    rng = np.random.default_rng(n * 10 + s)
    images = rng.uniform(-1, 1, (n, 3, 16, 24)).astype(np.float32)
    codes = rng.standard_normal((s, SD)).astype(np.float32)
    profile = ProfileOptions(max_batch=4, opt_batch=2, min_size=8, opt_size=16, max_size=32)
    backend = TensorRTBackend(fake_bundle, precision="fp16", profile=profile, progress=lambda m: None)
    with Translator(fake_bundle, backend=backend) as translator:
        expected = reference_translate(images, codes)
        fakes.cudart.copies.clear()
        got = translator.translate(images, codes, "a2b", batch_size=8)  # capped at the profile's max batch 4
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        decoder_batches = sum(-(-min(4, n - i) * s // 4) for i in range(0, n, 4))
        downloads = [nbytes for kind, nbytes in fakes.cudart.copies if kind == "D2H"]
        content_row = CC * (16 // M) * (24 // M) * 4
        output_row = 3 * 16 * 24 * 4
        images_down = [nbytes for nbytes in downloads if nbytes % output_row == 0]
        assert len(images_down) == decoder_batches and sum(images_down) == n * s * output_row  # each image once
        assert sum(downloads) - sum(images_down) == s * P * 4  # and the style MLP's AdaIN rows, once
        assert content_row * 4 != output_row and not any(nbytes % content_row == 0 and nbytes % output_row
                                                         for nbytes in downloads)  # no content code
        assert {b["graph"] for b in fakes.trt.builds} == {"content_encoder_a", "style_mlp_b", "decoder_b"}
        with pytest.raises(InputError, match="outside the engine's profile"):
            translator.translate(np.zeros((1, 3, 16, 40), np.float32), codes)
    assert not fakes.cudart.blocks  # close() freed every device and pinned buffer


def test_backend_without_tensorrt_is_unavailable(fake_bundle, monkeypatch):
    from munit_rt.backends import tensorrt as backend_module

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    backend = backend_module.TensorRTBackend(fake_bundle)
    with pytest.raises(BackendUnavailable, match=r"munit-rt\[tensorrt\]"):
        backend.open()
    monkeypatch.setattr(backend_module.importlib.util, "find_spec", lambda name: None)
    assert "not installed" in backend_module.TensorRTBackend.unavailable_reason()


def test_no_heavy_imports_at_module_level():
    code = (
        "import munit_rt.tensorrt, munit_rt.tensorrt.profiles, munit_rt.tensorrt.cache\n"
        "import munit_rt.tensorrt.builder, munit_rt.tensorrt.runner, munit_rt.backends.tensorrt, munit_rt.cli.build\n"
        "print('ok')\n"
    )
    result = run_blocked(code, "tensorrt", "cuda", "torch", "onnxruntime")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_query_device_without_a_gpu_says_so(fakes, monkeypatch):
    from munit_rt.tensorrt import CudaError

    monkeypatch.setattr(fakes.cudart, "cudaGetDeviceProperties", lambda device: (100, None))
    with pytest.raises(CudaError, match="cudaGetDeviceProperties.0. failed.*NVIDIA GPU visible"):
        trt_cache.query_device()
