"""pix2pix through the runtime: a bundle opened by the registry, `Translator.generate`, `munit-rt translate`,
`info`, the Triton layout, and the manifest checks of the runtime family.

The bundle is exported here by `munit-rt export` from an upstream-format `latest_net_G.pth` (the state dict of
the independent re-statement in test_pix2pix_model) with a config in upstream option names: unet_128, ngf 2,
batch norm with running statistics away from (0, 1), trained BtoA from a 1-channel domain b to a 3-channel
domain a, exported with eval false. Expected outputs come from the training module in its eval-false form.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke, translate, write_yaml  # noqa: E402
from PIL import Image

torch = pytest.importorskip("torch", reason="the expected outputs come from the training module")
pytest.importorskip("onnx", reason="the graph is exported here (pip install 'munit-rt[export]')")

from munit_rt.errors import InputError  # noqa: E402
from munit_rt.training.families.pix2pix.model import UnetGenerator, inference_generator  # noqa: E402
from test_pix2pix_model import upstream_state  # noqa: E402

SIZE = 128  # unet_128's multiple and crop_size
CONFIG = {"family": "pix2pix", "netG": "unet_128", "ngf": 2, "norm": "batch", "input_nc": 1, "output_nc": 3,
          "direction": "BtoA", "eval": False, "load_size": 142, "crop_size": SIZE}


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory):
    root = tmp_path_factory.mktemp("pix2pix_rt")
    state = upstream_state(7, "batch", input_nc=1, output_nc=3)
    torch.save(state, root / "latest_net_G.pth")
    model = UnetGenerator(1, 3, 7, 2, "batch", use_dropout=True)
    model.load_state_dict(state, strict=True)
    bundle = root / "pix2pix.bundle"
    code, output = invoke("export", root / "latest_net_G.pth", "--config", write_yaml(root / "p2p.yaml", CONFIG),
                          "-o", bundle, "--precision", "fp32")
    assert code == 0, output
    manifest = json.loads((bundle / "manifest.json").read_text())
    return {"bundle": bundle, "module": inference_generator(model, eval_mode=False), "manifest": manifest}


def test_manifest_records_direction_and_test_mode(pix2pix):
    m = pix2pix["manifest"]
    assert (m["family"], m["direction"], m["spatial_multiple"]) == ("pix2pix", "BtoA", SIZE)
    assert m["domains"] == {"a": {"channels": 3}, "b": {"channels": 1}}
    assert m["generator"] == {"graph": "generator", "netG": "unet_128", "num_downs": 7, "norm": "batch",
                              "eval": False}
    assert (m["config"]["eval"], m["config"]["direction"], m["source_checkpoint"]["config_source"]) == \
        (False, "BtoA", "given")
    assert m["preprocess"]["resize"] == "square" and "crop_size" not in m["preprocess"]  # the largest square
    assert m["graphs"]["generator"]["inputs"][0]["shape"] == ["N", 1, "H", "W"]


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
    code, text = invoke("info", pix2pix["bundle"])
    assert code == 0, text
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
