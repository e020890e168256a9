"""ONNX export of MUNIT: each graph vs the official submodules in ONNX Runtime, AdaIN parameters from outside,
FP16 normalisation statistics, the manifest's MUNIT keys, atomic publish.

One tiny munit-rt checkpoint is exported once (module fixture, both precisions); every test reads that bundle
and checks it against independent references: PyTorch modules loaded straight from the checkpoint, hashlib,
hand-computed sizes and formulas. What every family's export must satisfy (ONNX validity and TensorRT operators,
I/O names and dynamic dims, FP16 PSNR, files and hashes) is the contract suite's: tests/contract/.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="export needs onnx (pip install 'munit-rt[export]')")
ort = pytest.importorskip("onnxruntime", reason="parity checks run the graphs in ONNX Runtime")
torch = pytest.importorskip("torch", reason="export needs torch")

from conftest import make_generators, tiny_config_dict  # noqa: E402

GRAPHS = [f"{role}_{d}" for d in "ab" for role in ("content_encoder", "style_encoder", "style_mlp", "decoder")]
# (batch, height, width): batch 1 and >1, square and non-square, none of them the traced size (2x3 at 32x48)
SHAPES = [(1, 32, 32), (3, 48, 40), (2, 64, 32), (1, 16, 80)]
ATOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from munit_rt.export.random_bundle import random_bundle
    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.registry import load_generators

    config = config_from_dict(tiny_config_dict(), source="tiny")
    lines: list[str] = []
    bundle = random_bundle("munit", tmp_path_factory.mktemp("run"), config, precision="both", seed=3, iteration=10,
                           progress=lines.append)  # exported to the default place, beside the checkpoint
    ckpt = bundle.with_name("gen_00000010.pt")
    gens = load_generators(read_checkpoint(ckpt))  # the reference, loaded without the export code
    for domain, reference in make_generators(config, seed=3).items():  # the weights the test builds itself
        for key, tensor in reference.state_dict().items():
            assert torch.equal(gens[domain].state_dict()[key], tensor), (domain, key)
    manifest = json.loads((bundle / "manifest.json").read_text())
    return {"bundle": bundle, "ckpt": ckpt, "config": config, "gens": gens, "manifest": manifest, "log": lines}


def session(bundle: Path, graph: str, precision: str = "fp32"):
    return ort.InferenceSession(str(bundle / precision / f"{graph}.onnx"), providers=["CPUExecutionProvider"])


def torch_reference(gen, role: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        if role == "content_encoder":
            return gen.enc_content(t["image"]).numpy()
        if role == "style_encoder":
            return gen.enc_style(t["image"]).reshape(t["image"].shape[0], -1).numpy()
        if role == "style_mlp":
            return gen.mlp(t["style"]).numpy()
        return gen.dec(t["content"], t["adain_params"]).numpy()


def random_feeds(gen, role: str, batch: int, height: int, width: int, rng) -> dict[str, np.ndarray]:
    image = rng.uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)
    if role in ("content_encoder", "style_encoder"):
        return {"image": image}
    style = rng.standard_normal((batch, 4)).astype(np.float32)
    if role == "style_mlp":
        return {"style": style}
    with torch.no_grad():
        content = gen.enc_content(torch.from_numpy(image)).numpy()
        adain = gen.mlp(torch.from_numpy(style)).numpy()
    return {"content": content, "adain_params": adain}


# -- parity against PyTorch ---------------------------------------------------------------------------
@pytest.mark.parametrize("graph", GRAPHS)
def test_graph_matches_pytorch_at_several_batches_and_sizes(exported, graph):
    role, domain = graph.rsplit("_", 1)
    gen = exported["gens"][domain]
    sess = session(exported["bundle"], graph)
    rng = np.random.default_rng(7)
    for batch, height, width in SHAPES:
        feeds = random_feeds(gen, role, batch, height, width, rng)
        (got,) = sess.run(None, feeds)
        want = torch_reference(gen, role, feeds)
        assert got.shape == want.shape, (graph, batch, height, width)
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{graph} at {batch}x{height}x{width}")


def test_output_shapes_follow_the_symbolic_dims(exported):
    bundle, rng = exported["bundle"], np.random.default_rng(0)
    image = rng.uniform(-1, 1, (3, 3, 48, 40)).astype(np.float32)
    (content,) = session(bundle, "content_encoder_a").run(None, {"image": image})
    (style,) = session(bundle, "style_encoder_a").run(None, {"image": image})
    (adain,) = session(bundle, "style_mlp_b").run(None, {"style": style})
    (output,) = session(bundle, "decoder_b").run(None, {"content": content, "adain_params": adain})
    assert content.shape == (3, 32, 12, 10)  # dim 8 * 2**2 channels, H/4, W/4
    assert style.shape == (3, 4) and adain.shape == (3, 128)  # 1 res block x 2 AdaIN x (32 shifts + 32 scales)
    assert output.shape == (3, 3, 48, 40) and np.abs(output).max() <= 1.0


def test_decoder_takes_adain_params_computed_outside(exported):
    """The style_mlp graph's output and a hand-built vector both decode exactly like `gen.dec(content, adain)`."""
    bundle, gen, layout = exported["bundle"], exported["gens"]["b"], exported["manifest"]["adain"]
    rng = np.random.default_rng(11)
    image = rng.uniform(-1, 1, (2, 3, 32, 48)).astype(np.float32)
    (content,) = session(bundle, "content_encoder_a").run(None, {"image": image})
    (from_mlp,) = session(bundle, "style_mlp_b").run(None, {"style": rng.standard_normal((2, 4)).astype(np.float32)})
    hand_built = np.zeros((2, layout["total"]), np.float32)
    for index, layer in enumerate(layout["layers"]):
        c = layer["channels"]
        hand_built[:, layer["shift_offset"]:layer["shift_offset"] + c] = 0.1 * (index + 1)
        hand_built[:, layer["scale_offset"]:layer["scale_offset"] + c] = np.linspace(0.5, 1.5, c)
    hand_built[1] *= -1  # a different style per sample in the same batch
    decoder = session(bundle, "decoder_b")
    for adain in (from_mlp, hand_built):
        (got,) = decoder.run(None, {"content": content, "adain_params": adain})
        with torch.no_grad():
            want = gen.dec(torch.from_numpy(content), torch.from_numpy(adain)).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


# -- graph structure --------------------------------------------------------------------------------
def test_fp16_graphs_store_fp16_weights_and_keep_statistics_fp32(exported):
    for graph in GRAPHS:
        model = onnx.load(str(exported["bundle"] / "fp16" / f"{graph}.onnx"))
        inits = {i.name: i for i in model.graph.initializer}
        weight_inputs = [n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
        assert weight_inputs and all(inits[w].data_type == onnx.TensorProto.FLOAT16 for w in weight_inputs), graph
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in
                 list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
        types.update({name: init.data_type for name, init in inits.items()})
        for node in model.graph.node:
            if node.op_type in ("InstanceNormalization", "ReduceMean", "ReduceSum", "Sqrt", "Div"):
                assert types[node.input[0]] == onnx.TensorProto.FLOAT, (graph, node.name, node.op_type)
            if node.op_type == "InstanceNormalization":  # TensorRT wants scale and bias as initializers
                assert all(inits[name].data_type == onnx.TensorProto.FLOAT for name in node.input[1:])
            if node.op_type == "Mul" and node.input[0] == node.input[1]:  # LayerNorm's centred square
                assert types[node.input[0]] == onnx.TensorProto.FLOAT, (graph, node.name)


# -- manifest and files -----------------------------------------------------------------------------
def test_manifest_describes_the_model(exported):
    m, ckpt, config = exported["manifest"], exported["ckpt"], exported["config"]
    assert exported["bundle"] == ckpt.with_name("gen_00000010.bundle")
    assert (m["schema_version"], m["format"], m["family"], m["opset"]) == (2, "munit-rt-bundle", "munit", 18)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["created"])
    from munit_rt import __version__

    assert m["munit_rt_version"] == __version__
    assert m["source_checkpoint"] == {"name": "gen_00000010.pt", "path": str(ckpt.resolve()),
                                      "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
                                      "format": "munit-rt", "iteration": 10}
    assert m["config"] == config.to_dict()
    assert m["domains"] == {"a": {"channels": 3}, "b": {"channels": 3}}
    # schema 2: the bilinear shorter-side resize the official loaders and test.py use, and how H, W are fitted
    assert m["preprocess"] == {"resize": "shorter_side", "size": 32, "multiple": 4, "resample": "bilinear",
                               "fit": "crop", "mean": [0.5] * 3, "std": [0.5] * 3, "value_range": [-1.0, 1.0]}
    assert (m["style_dim"], m["content_channels"], m["spatial_multiple"]) == (4, 32, 4)
    assert m["adain"] == {"total": 128, "layers": [
        {"name": "dec.model.0.model.0.model.0.norm", "channels": 32, "shift_offset": 0, "scale_offset": 32},
        {"name": "dec.model.0.model.0.model.1.norm", "channels": 32, "shift_offset": 64, "scale_offset": 96}]}
    assert m["precisions"] == ["fp32", "fp16"]
    assert list(m["graphs"]) == GRAPHS
    g = m["graphs"]
    assert g["content_encoder_a"]["inputs"] == [{"name": "image", "dtype": "float32", "shape": ["N", 3, "H", "W"]}]
    assert g["content_encoder_a"]["outputs"][0]["shape"] == ["N", 32, "H/4", "W/4"]
    assert g["style_encoder_b"]["outputs"][0] == {"name": "style", "dtype": "float32", "shape": ["N", 4]}
    assert g["style_mlp_a"]["outputs"][0]["shape"] == ["N", 128]
    assert [t["shape"] for t in g["decoder_b"]["inputs"]] == [["N", 32, "h", "w"], ["N", 128]]
    assert g["decoder_b"]["outputs"][0]["shape"] == ["N", 3, "h*4", "w*4"]
    assert (g["decoder_a"]["role"], g["decoder_a"]["domain"]) == ("decoder", "a")


def test_training_data_resizes_with_the_filter_the_bundle_records(exported, tmp_path):
    """The bundle's preprocessing is what MUNIT training applies: a training sample is the recorded filter's
    shorter-side resize of the image (PIL bilinear here), not another filter's."""
    from PIL import Image

    from munit_rt.training.families.munit.data import ImageDataset
    from munit_rt.training.registry import get_family

    recorded = exported["manifest"]["preprocess"]
    assert recorded["resample"] == "bilinear"
    pixels = np.random.default_rng(2).integers(0, 256, (36, 40, 3), dtype=np.uint8)
    pixels[:, :20] //= 4  # an edge, so the filters differ visibly
    Image.fromarray(pixels).save(tmp_path / "known.png")
    prep = get_family("munit").preprocess(exported["config"])
    assert prep.to_dict() == recorded
    # shorter side 36 -> 32, so 40 -> 35; a crop of the whole resized image keeps the resize alone
    sample = ImageDataset([tmp_path / "known.png"], 3, prep, (32, 35), flip=False, seed=0, name="trainA")[(0, 0)]
    filters = {name: Image.open(tmp_path / "known.png").resize((35, 32), getattr(Image.Resampling, name.upper()))
               for name in ("bilinear", "bicubic")}
    expected = {name: torch.from_numpy(np.asarray(img, np.float32)).permute(2, 0, 1) / 127.5 - 1
                for name, img in filters.items()}
    torch.testing.assert_close(sample, expected["bilinear"], atol=1e-6, rtol=0)
    assert (sample - expected["bicubic"]).abs().max() > 0.05


def test_manifest_parity_report(exported):
    for name, graph in exported["manifest"]["graphs"].items():
        fp32 = graph["parity"]["fp32"]
        assert fp32["passed"] and fp32["atol"] == 1e-4 and 0 <= fp32["max_abs_err"] <= 1e-4
        cases = fp32["cases"]
        assert {c["batch"] for c in cases} == {1, 3}
        if not name.startswith("style_mlp"):
            assert {(c["height"], c["width"]) for c in cases} == {(32, 32), (48, 40)}
        if name.startswith("decoder"):
            assert {c["adain"] for c in cases} == {"mlp", "hand_built"}
        assert fp32["max_abs_err"] == max(c["max_abs_err"] for c in cases)
    assert len(exported["log"]) == 9 and "decoder_b" in exported["log"][-1]


def test_a_changed_byte_is_detected(exported, tmp_path):
    from munit_rt.export.writer import verify_bundle

    copy = shutil.copytree(exported["bundle"], tmp_path / "copy.bundle")
    assert verify_bundle(copy) == []
    target = copy / "fp16" / "decoder_a.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert hashlib.sha256(bytes(data)).hexdigest() != exported["manifest"]["files"]["fp16/decoder_a.onnx"]
    problems = verify_bundle(copy)
    assert len(problems) == 1 and "fp16/decoder_a.onnx" in problems[0]


# -- failure paths and helpers (no export needed) ---------------------------------------------------
def test_unsupported_operator_and_training_batchnorm_are_refused():
    from onnx import TensorProto, helper

    from munit_rt.export.errors import ExportError
    from munit_rt.export.operators import check_tensorrt_ops

    def model(*nodes):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
        return helper.make_model(helper.make_graph(list(nodes), "g", [x], [y]))

    check_tensorrt_ops(model(helper.make_node("Relu", ["x"], ["y"])), "ok")
    with pytest.raises(ExportError, match=r"'g1'.*\bUnique\b"):
        check_tensorrt_ops(model(helper.make_node("Unique", ["x"], ["y"])), "g1")
    batch_norm = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1)
    with pytest.raises(ExportError, match="training mode"):
        check_tensorrt_ops(model(batch_norm), "g2")


def test_psnr_and_atol_comparisons():
    from munit_rt.export.parity import compare_atol, compare_psnr

    reference = np.zeros((2, 3, 4, 4), np.float32)
    noisy = reference + 0.02  # MSE 4e-4 against a peak of 2: 10*log10(4 / 4e-4) = 40 dB
    result = compare_psnr("output", reference, noisy, min_psnr=39.9, peak=2.0)
    assert result and result.psnr_db == pytest.approx(40.0, abs=1e-3)
    assert not compare_psnr("output", reference, noisy, min_psnr=40.1, peak=2.0)
    assert compare_atol("x", reference, noisy, atol=0.03) and not compare_atol("x", reference, noisy, atol=0.01)
    assert not compare_atol("x", reference, reference * np.nan, atol=1.0)  # NaN never passes


def test_publish_refuses_or_swaps_atomically(tmp_path):
    from munit_rt.export.writer import make_staging_dir, publish
    from munit_rt.export.errors import ExportError

    out = tmp_path / "model.bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    staging = make_staging_dir(out)
    (staging / "new.txt").write_text("new")
    with pytest.raises(ExportError, match="already exists"):
        publish(staging, out, force=False)
    publish(staging, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bundle"]  # no staging or old copy left
