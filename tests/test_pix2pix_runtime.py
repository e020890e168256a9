"""pix2pix through the runtime: a bundle opened by the registry, `Translator.generate`, `munit-rt translate`,
`info` and the Triton layout.

The bundle is assembled here by hand from the generator graph (ONNX as export/onnx_export.py traces it) and the
family's manifest keys, the way `munit-rt export` will write it once the torch-side family is registered; the
runtime reads it like any other. The generator: unet_128, ngf 2, batch norm with running statistics away from
(0, 1), trained BtoA from a 1-channel domain b to a 3-channel domain a, exported with eval false.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import translate  # noqa: E402
from PIL import Image

torch = pytest.importorskip("torch", reason="the expected outputs come from the training module")
pytest.importorskip("onnx", reason="the graph is exported here (pip install 'munit-rt[export]')")

from munit_rt.errors import InputError  # noqa: E402
from munit_rt.training.families.pix2pix.graphs import (  # noqa: E402
    generator_graph, inference_preprocess, manifest_keys)
from munit_rt.training.families.pix2pix.model import UnetGenerator  # noqa: E402
from test_pix2pix_model import export_onnx, upstream_state  # noqa: E402

SIZE = 128  # unet_128's multiple and crop_size


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory):
    root = tmp_path_factory.mktemp("pix2pix_rt")
    model = UnetGenerator(1, 3, 7, 2, "batch", use_dropout=True)
    model.load_state_dict(upstream_state(7, "batch", input_nc=1, output_nc=3), strict=True)
    spec = generator_graph(model, eval_mode=False, direction="BtoA")
    bundle = root / "pix2pix.bundle"
    (bundle / "fp32").mkdir(parents=True)
    data = export_onnx(spec)
    (bundle / "fp32" / "generator.onnx").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    manifest = {
        "schema_version": 2, "format": "munit-rt-bundle", "family": "pix2pix", "munit_rt_version": "test",
        "created": "2026-01-01T00:00:00Z", "config": {"netG": "unet_128", "ngf": 2, "norm": "batch", "input_nc": 1,
                                                       "output_nc": 3, "direction": "BtoA", "eval": False},
        **manifest_keys(model, eval_mode=False, direction="BtoA"),
        "preprocess": inference_preprocess(SIZE, 7).to_dict(), "spatial_multiple": SIZE, "opset": 18,
        "precisions": ["fp32"],
        "graphs": {"generator": {"role": "generator", "domain": None,
                                 "inputs": [t.to_dict() for t in spec.inputs],
                                 "outputs": [t.to_dict() for t in spec.outputs],
                                 "files": {"fp32": {"path": "fp32/generator.onnx", "sha256": sha, "bytes": len(data)}},
                                 **spec.manifest_fields}},
        "files": {"fp32/generator.onnx": sha},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return {"bundle": bundle, "module": spec.module, "manifest": manifest}


def test_translator_generates_one_output_per_image(pix2pix):
    import munit_rt

    with munit_rt.Translator(pix2pix["bundle"], backend="onnxruntime") as t:
        assert type(t).__name__ == "Pix2PixTranslator" and t.direction == "b2a"
        x = np.random.default_rng(0).uniform(-1, 1, (3, 1, SIZE, 2 * SIZE)).astype(np.float32)
        got = t.generate(x, batch_size=2)  # batches of 2 and 1: per-image statistics, the same either way
        with torch.no_grad():
            expected = pix2pix["module"](torch.from_numpy(x)).numpy()
        assert got.shape == (3, 3, SIZE, 2 * SIZE) and np.abs(got - expected).max() <= 1e-4
        assert t.generate(x[:0]).shape == (0, 3, SIZE, 2 * SIZE)
        with pytest.raises(InputError, match=r"\[N, 1, H, W\]"):
            t.generate(np.zeros((1, 3, SIZE, SIZE), np.float32))
        with pytest.raises(InputError, match="multiples of 128"):
            t.generate(np.zeros((1, 1, 64, SIZE), np.float32))


def test_translate_writes_one_output_per_input(pix2pix, tmp_path):
    source = tmp_path / "in" / "face.png"
    source.parent.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(source)
    code, output = translate(pix2pix["bundle"], tmp_path / "in", "--direction", "a2b", "--grid", "-o", tmp_path / "out")
    assert code == 0, output
    assert "--direction is ignored for pix2pix bundles" in output
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == \
        ["face.png", "face/grid.png"]  # OUT/<input>.png, and --grid's sheet of input and output
    # expected: grey (ITU-R 601), the largest centred square, bicubic to 128 x 128, the module in PyTorch
    square = Image.open(source).convert("L").crop((25, 0, 175, 150)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    grey = np.asarray(square, np.float32) / 127.5 - 1.0
    with torch.no_grad():
        y = pix2pix["module"](torch.from_numpy(grey[None, None].copy()))[0].numpy().transpose(1, 2, 0)
    expected = np.rint(np.clip((y + 1) / 2, 0, 1) * 255).astype(int)
    got = np.asarray(Image.open(tmp_path / "out" / "face.png")).astype(int)
    assert got.shape == (SIZE, SIZE, 3)
    assert np.abs(got - expected).max() <= 1, np.abs(got - expected).max()


def test_translate_refuses_a_size_off_the_multiple(pix2pix, tmp_path):
    code, output = translate(pix2pix["bundle"], tmp_path, "--size", 200, "-o", tmp_path / "out")
    assert code == 2 and "multiples of 128" in output


def test_info_says_direction_test_mode_and_determinism(pix2pix):
    from click.testing import CliRunner

    from munit_rt.cli import cli

    result = CliRunner().invoke(cli, ["info", str(pix2pix["bundle"])])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "BtoA: b -> a (the training direction)" in text
    assert "unet_128, 7 blocks, norm batch; H and W multiples of 128" in text
    assert "eval: false: BatchNorm with each image's own statistics" in text
    assert "deterministic; upstream's outputs are random per run" in text


def test_manifest_channels_must_match_the_graph(pix2pix, tmp_path):
    from munit_rt.bundle.fields import ManifestError
    from munit_rt.bundle.schema import parse_manifest

    manifest = json.loads(json.dumps(pix2pix["manifest"]))
    manifest["direction"] = "AtoB"  # the graph takes b's 1 channel; a has 3
    with pytest.raises(ManifestError, match="'image' must have the 3 channels of domain a"):
        parse_manifest(manifest)
    manifest = json.loads(json.dumps(pix2pix["manifest"]))
    manifest["generator"]["num_downs"] = 8
    with pytest.raises(ManifestError, match="spatial_multiple"):
        parse_manifest(manifest)


def test_triton_layout_is_one_model(pix2pix):
    from munit_rt.bundle import open_bundle
    from munit_rt.triton.layout import family_layout

    bundle = open_bundle(pix2pix["bundle"])
    layout = family_layout(bundle, "both", "pix2pix")
    assert [m.name for m in layout.models] == ["pix2pix_generator"] and not layout.ensembles
    assert family_layout(bundle, "b2a", "p").models[0].inputs[0].dims == (1, -1, -1)
    with pytest.raises(InputError, match="translates b2a"):
        family_layout(bundle, "a2b", "p")
