"""CycleGAN and StarGAN through the runtime: bundle reading, `munit-rt translate` and `info`, the Translator
factory, preprocessing, StarGAN label vectors.

Tiny models (CycleGAN ngf 8 with 2 blocks, StarGAN conv_dim 8 with 2 blocks, attributes Black_Hair,
Blond_Hair, Male) are built here with random weights, saved as munit-rt checkpoints and exported once per
module (fp32). Expected outputs come from those PyTorch modules applied to inputs preprocessed here with
PIL (written out step by step, never through munit_rt.images), turned into pixels by
round(clip((y + 1) / 2, 0, 1) * 255); the expected label vectors are written out by hand.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, listing, translate  # noqa: E402
from PIL import Image

torch = pytest.importorskip("torch", reason="the reference outputs come from the training modules")
pytest.importorskip("onnx", reason="the bundles are exported here (pip install 'munit-rt[export]')")

from munit_rt.cli.common import EXIT_SOME_INPUTS_FAILED, EXIT_USAGE  # noqa: E402

CYCLEGAN = {"family": "cyclegan", "ngf": 8, "ndf": 8, "n_blocks": 2, "load_size": 36, "crop_size": 32}
ATTRS = ["Black_Hair", "Blond_Hair", "Male"]
STARGAN = {"family": "stargan", "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 2, "d_repeat_num": 3,
           "image_size": 32, "crop_size": 40, "selected_attrs": ATTRS}


def family_config(data: dict):
    from munit_rt.training.config import config_from_dict

    return config_from_dict(data, source="test")


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory):
    from munit_rt.export import export_bundle
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.families.cyclegan.model import build_generator

    root = tmp_path_factory.mktemp("cyclegan_rt")
    config = family_config(CYCLEGAN)
    torch.manual_seed(11)
    gens = {key: build_generator(config, key).eval() for key in ("G_A", "G_B")}
    ckpt = root / "cyclegan_00000020.pt"
    save_checkpoint(ckpt, "cyclegan", gens, config, iteration=20)
    return {"bundle": export_bundle(ckpt, root / "cyclegan.bundle", precision="fp32"), "gens": gens}


@pytest.fixture(scope="module")
def stargan(tmp_path_factory):
    from munit_rt.export import export_bundle
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.families.stargan.model import build_generator

    root = tmp_path_factory.mktemp("stargan_rt")
    config = family_config(STARGAN)
    torch.manual_seed(12)
    gen = build_generator(config)
    with torch.no_grad():  # norm affines away from (1, 0): labels and statistics matter
        for m in gen.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.3)
    gen.eval()
    ckpt = root / "stargan_00000030.pt"
    save_checkpoint(ckpt, "stargan", {"G": gen}, config, iteration=30)
    return {"bundle": export_bundle(ckpt, root / "stargan.bundle", precision="fp32"), "gen": gen}


def write_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    """Smooth random RGB image of size (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    small = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    noise = np.random.default_rng(seed + 1).integers(-20, 21, (size[1], size[0], 3))
    base = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BILINEAR), np.int64)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path)
    return path


def to_input(image: Image.Image) -> torch.Tensor:
    x = np.asarray(image.convert("RGB"), np.float32) / 255.0
    return torch.from_numpy(((x - 0.5) / 0.5).transpose(2, 0, 1)[None].copy())


def to_uint8(y: torch.Tensor) -> np.ndarray:
    y = y[0].numpy().transpose(1, 2, 0)
    return np.round(np.clip((y + 1) / 2, 0, 1) * 255).astype(np.uint8)


def assert_pixels_match(path: Path, expected: np.ndarray) -> None:
    """ONNX Runtime vs PyTorch differ by < 1e-4 before rounding: at most one level, on few pixels."""
    got = np.asarray(Image.open(path))
    assert got.shape == expected.shape, (path, got.shape, expected.shape)
    diff = np.abs(got.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (path, diff.max(), (diff == 0).mean())


def nearest_multiple_of_4(value: float) -> int:
    return 4 * int(np.floor(value / 4 + 0.5))  # no .5 ties in the sizes used here


def edit_copy(bundle: Path, tmp_path: Path, edit) -> Path:
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest, copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


# -- CycleGAN --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction, key", [("a2b", "G_A"), ("b2a", "G_B")])
def test_cyclegan_output_is_the_generator_of_the_direction(cyclegan, tmp_path, direction, key):
    source = write_image(tmp_path / "in" / "sub" / "cat.png", (48, 32), seed=1)  # shorter side 32, multiples of 4
    code, output = translate(cyclegan["bundle"], tmp_path / "in", "-r", "--direction", direction,
                             "-o", tmp_path / "out")
    assert code == 0, output
    assert "note:" not in output
    assert listing(tmp_path / "out") == ["sub", "sub/cat.png"]  # one output per input: OUT/<relative path>.png
    with torch.no_grad():
        expected = to_uint8(cyclegan["gens"][key](to_input(Image.open(source))))
    assert_pixels_match(tmp_path / "out" / "sub" / "cat.png", expected)


def test_cyclegan_rounds_odd_sizes_to_the_nearest_multiple_of_4_as_upstream(cyclegan, tmp_path):
    """33x47 at --size 33 (no shorter-side scaling): upstream __make_power_2 resizes (bicubic) to 32x48, where
    a center crop would give 32x44. 33x49 at the bundle's 32: 32x47 first (shorter side), then 32x48."""
    odd = write_image(tmp_path / "in" / "odd.png", (33, 47), seed=2)
    code, output = translate(cyclegan["bundle"], odd, "--size", 33, "-o", tmp_path / "out33")
    assert code == 0, output
    size = (nearest_multiple_of_4(33), nearest_multiple_of_4(47))
    assert size == (32, 48)
    with torch.no_grad():
        expected = to_uint8(cyclegan["gens"]["G_A"](to_input(Image.open(odd).resize(size, Image.Resampling.BICUBIC))))
    assert_pixels_match(tmp_path / "out33" / "odd.png", expected)

    tall = write_image(tmp_path / "in2" / "tall.png", (33, 49), seed=3)
    code, output = translate(cyclegan["bundle"], tall, "-o", tmp_path / "out32")
    assert code == 0, output
    scaled = (32, int(32 * 49 / 33))  # torchvision Resize(32): the longer side truncated -> 47
    size = (32, nearest_multiple_of_4(scaled[1]))
    assert size == (32, 48)
    step = Image.open(tall).resize(scaled, Image.Resampling.BICUBIC).resize(size, Image.Resampling.BICUBIC)
    with torch.no_grad():
        expected = to_uint8(cyclegan["gens"]["G_A"](to_input(step)))
    assert_pixels_match(tmp_path / "out32" / "tall.png", expected)


def test_cyclegan_notes_style_options_and_writes_one_output(cyclegan, tmp_path):
    write_image(tmp_path / "in" / "cat.png", (32, 32), seed=4)
    code, output = translate(cyclegan["bundle"], tmp_path / "in", "--styles", 8, "--seed", 3, "--grid",
                             "-o", tmp_path / "out")
    assert code == 0, output
    notes = [line for line in output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--styles, --seed" in notes[0] and "ignored for CycleGAN" in notes[0]
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert files == ["cat.png", "cat/grid.png"]
    assert Image.open(tmp_path / "out" / "cat" / "grid.png").size == (64, 32)  # input + output
    assert (tmp_path / "out" / "index.html").is_file()
    code, output = translate(cyclegan["bundle"], tmp_path / "in", "--layout", "official", "-o", tmp_path / "off")
    assert code == 0, output
    assert (tmp_path / "off_00" / "cat.png").is_file() and not (tmp_path / "off_01").exists()


def test_cyclegan_grid_sheet_and_an_input_named_grid_never_share_a_file(cyclegan, tmp_path):
    # one output per input: sub/cat.png -> OUT/sub/cat.png, its sheet OUT/sub/cat/grid.png, which is also
    # where the input sub/cat/grid.png would be translated to
    for name, seed in (("sub/cat.png", 1), ("sub/cat/grid.png", 2), ("sub/dog.png", 3)):
        write_image(tmp_path / "in" / name, (32, 32), seed=seed)
    code, output = translate(cyclegan["bundle"], tmp_path / "in", "--recursive", "--grid", "-o", tmp_path / "out")
    assert code == EXIT_SOME_INPUTS_FAILED, output
    assert output.count("would be the same file") == 2 and "sub/cat/grid.png and the --grid contact sheet of " \
        "sub/cat.png" in output
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert files == ["sub/dog.png", "sub/dog/grid.png"]
    code, output = translate(cyclegan["bundle"], tmp_path / "in", "--recursive", "-o", tmp_path / "plain")
    assert code == 0, output  # without --grid nothing clashes


def test_cyclegan_direction_that_was_not_exported(cyclegan, tmp_path):
    def drop_b2a(manifest, root):
        del manifest["directions"]["b2a"]
        rel = manifest["graphs"].pop("generator_b2a")["files"]["fp32"]["path"]
        del manifest["files"][rel]
        (root / rel).unlink()

    only_a2b = edit_copy(cyclegan["bundle"], tmp_path, drop_b2a)
    write_image(tmp_path / "in" / "cat.png", (32, 32), seed=5)
    code, output = translate(only_a2b, tmp_path / "in", "--direction", "b2a", "-o", tmp_path / "out")
    assert code == EXIT_USAGE
    assert "no b2a generator" in output and "available: a2b" in output


# -- StarGAN ---------------------------------------------------------------------------------------------------
def stargan_input(path: Path) -> torch.Tensor:
    """Upstream test transform: CenterCrop(40) then Resize(32) bilinear, for a 50x60 (w x h) image."""
    image = Image.open(path)
    left, top = round((50 - 40) / 2), round((60 - 40) / 2)
    return to_input(image.crop((left, top, left + 40, top + 40)).resize((32, 32), Image.Resampling.BILINEAR))


def stargan_expected(stargan, path: Path, label: list[float]) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(stargan["gen"](stargan_input(path), torch.tensor([label], dtype=torch.float32)))


def test_stargan_attrs_give_one_output_with_that_label(stargan, tmp_path):
    face = write_image(tmp_path / "in" / "face.png", (50, 60), seed=6)
    code, output = translate(stargan["bundle"], face, "--attrs", "Black_Hair,Male", "-o", tmp_path / "out")
    assert code == 0, output
    assert listing(tmp_path / "out") == ["face.png"]
    assert_pixels_match(tmp_path / "out" / "face.png", stargan_expected(stargan, face, [1, 0, 1]))
    # on top of the source attributes: Blond_Hair clears the other hair colour, Male=0 clears Male
    code, output = translate(stargan["bundle"], face, "--from-attrs", "Black_Hair,Male", "--attrs",
                             "Blond_Hair,Male=0", "-o", tmp_path / "out2")
    assert code == 0, output
    assert_pixels_match(tmp_path / "out2" / "face.png", stargan_expected(stargan, face, [0, 1, 0]))


def test_stargan_sweep_follows_upstream_create_labels(stargan, tmp_path):
    face = write_image(tmp_path / "in" / "face.png", (50, 60), seed=7)
    code, output = translate(stargan["bundle"], face, "--grid", "--from-attrs", "Black_Hair,Male",
                             "-o", tmp_path / "out")
    assert code == 0, output  # the sweep is the default without --attrs
    rows = {"Black_Hair": [1, 0, 1], "Blond_Hair": [0, 1, 1], "Male": [1, 0, 0]}  # hair set alone; Male flipped
    assert sorted(p.name for p in (tmp_path / "out" / "face").iterdir()) == \
        sorted([f"{name}.png" for name in rows] + ["grid.png"])
    for name, label in rows.items():
        assert_pixels_match(tmp_path / "out" / "face" / f"{name}.png", stargan_expected(stargan, face, label))
    grid = np.asarray(Image.open(tmp_path / "out" / "face" / "grid.png"))
    assert grid.shape == (32, 32 * 4, 3)  # input, then one image per attribute, one row
    np.testing.assert_array_equal(grid[:, 32:64], np.asarray(Image.open(tmp_path / "out" / "face" / "Black_Hair.png")))


def test_stargan_sweep_labels_from_zeros_and_from_source_attributes(stargan):
    import munit_rt
    from munit_rt import StarGanTranslator, Translator

    t = munit_rt.Translator(stargan["bundle"], backend="onnxruntime")
    assert isinstance(t, StarGanTranslator) and isinstance(t, Translator) and t.attributes == ATTRS
    names, labels = t.sweep_labels()
    assert names == ATTRS
    np.testing.assert_array_equal(labels, [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    names, labels = t.sweep_labels("Black_Hair,Male")
    np.testing.assert_array_equal(labels, [[1, 0, 1], [0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(t.target_label("Blond_Hair"), [0, 1, 0])
    np.testing.assert_array_equal(t.target_label("male=1,Black_Hair=0", "Black_Hair"), [0, 0, 1])


def test_stargan_translator_tiles_labels_per_pair_and_matches_pytorch(stargan):
    import munit_rt

    t = munit_rt.Translator(stargan["bundle"], backend="onnxruntime")
    images = np.random.default_rng(8).uniform(-1, 1, (2, 3, 32, 24)).astype(np.float32)
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], np.float32)
    out = t.translate(images, labels, batch_size=4)  # 6 pairs in batches of 4: image * S + label
    assert out.shape == (2, 3, 3, 32, 24)
    for i in range(2):
        for j in range(3):
            with torch.no_grad():
                want = stargan["gen"](torch.from_numpy(images[i:i + 1]), torch.from_numpy(labels[j:j + 1])).numpy()
            np.testing.assert_allclose(out[i, j], want[0], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(t.generate(images, labels[1]), out[:, 1])
    with pytest.raises(Exception, match="0 or 1"):
        t.generate(images, np.full(3, 0.5, np.float32))


@pytest.mark.parametrize("args, message", [
    (["--attrs", "Black_Hair,Blond_Hair"], "2 hair colours (Black_Hair, Blond_Hair)"),
    (["--attrs", "Red_Hair"], "unknown attribute 'Red_Hair'; this bundle's attributes: Black_Hair, Blond_Hair, Male"),
    (["--from-attrs", "Bald"], "--from-attrs: unknown attribute 'Bald'"),
    (["--attrs", "Male=2"], "must be 0 or 1"),
    (["--attrs", "Male", "--sweep"], "alternatives"),
])
def test_stargan_bad_attributes_exit_2(stargan, tmp_path, args, message):
    write_image(tmp_path / "in" / "face.png", (50, 60), seed=9)
    code, output = translate(stargan["bundle"], tmp_path / "in", *args, "-o", tmp_path / "out")
    assert code == EXIT_USAGE, output
    assert message in output
    assert not (tmp_path / "out").exists()  # refused before any output folder is made


def test_stargan_notes_style_and_direction_options(stargan, tmp_path):
    write_image(tmp_path / "in" / "face.png", (50, 60), seed=10)
    code, output = translate(stargan["bundle"], tmp_path / "in", "--styles", 2, "--direction", "b2a",
                             "--attrs", "Male", "-o", tmp_path / "out")
    assert code == 0, output
    assert "note: --styles, --direction are ignored for StarGAN" in output


def test_two_dataset_labels_fill_the_active_slice_and_the_mask():
    from munit_rt.errors import InputError
    from munit_rt.families.stargan_labels import LabelSpace

    space = LabelSpace.from_manifest({
        "c_dim": 7, "num_datasets": 2, "selected_attrs": ["Blond_Hair", "Young"],
        "selected_attrs_2": ["happy", "sad", "Brown_Hair"],
        "layout": [{"name": "dataset_1", "offset": 0, "length": 2, "attrs": ["Blond_Hair", "Young"]},
                   {"name": "dataset_2", "offset": 2, "length": 3, "attrs": ["happy", "sad", "Brown_Hair"]},
                   {"name": "mask", "offset": 5, "length": 2, "attrs": ["dataset_1", "dataset_2"]}],
        "hair_color_attrs": ["Blond_Hair"], "hair_color_attrs_2": ["Brown_Hair"]})
    np.testing.assert_array_equal(space.target("happy"), [0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(space.target("Young", "Blond_Hair"), [1, 1, 0, 0, 0, 1, 0])
    names, labels = space.sweep()
    assert names == ["Blond_Hair", "Young", "happy", "sad", "Brown_Hair"]
    np.testing.assert_array_equal(labels, [[1, 0, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0, 1],
                                           [0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 1, 0, 1]])
    with pytest.raises(InputError, match="dataset_1 and dataset_2"):
        space.target("Young,happy")


# -- bundles, info, API ----------------------------------------------------------------------------------------
def test_info_describes_each_family(cyclegan, stargan):
    code, text = invoke("info", cyclegan["bundle"])
    assert code == 0, text
    assert "family      cyclegan" in text
    assert "directions  a2b (generator_a2b, G_A: a -> b), b2a (generator_b2a, G_B: b -> a)" in text
    assert "nearest multiple of 4" in text and "style_dim" not in text
    assert any(line.startswith("generator_b2a") and "ok" in line for line in text.splitlines())
    code, text = invoke("info", stargan["bundle"])
    assert code == 0, text
    assert "family      stargan" in text
    assert "attributes  Black_Hair, Blond_Hair, Male" in text
    assert "hair colours, one at a time: Black_Hair, Blond_Hair" in text
    assert "center crop 40 px, then resize to 32x32 px (bilinear)" in text and "label       [N, 3]" in text


def test_bundle_checks_the_family_keys(stargan, cyclegan, tmp_path):
    from munit_rt.bundle import Bundle
    from munit_rt.errors import BundleError
    from munit_rt.families import families

    known = re.escape(", ".join(families()))  # every registered family, whichever they are
    with pytest.raises(BundleError, match=rf"'family' is 'nosuchgan', a model family .* \(known: {known}\)"):
        Bundle(edit_copy(stargan["bundle"], tmp_path / "a", lambda m, _: m.update(family="nosuchgan")))
    with pytest.raises(BundleError, match="key 'labels' is missing"):
        Bundle(edit_copy(stargan["bundle"], tmp_path / "b", lambda m, _: m.pop("labels")))
    with pytest.raises(BundleError, match="key 'directions' is missing"):
        Bundle(edit_copy(cyclegan["bundle"], tmp_path / "c", lambda m, _: m.pop("directions")))
    with pytest.raises(BundleError, match="'labels.c_dim' is 4 but the layout covers 3 entries"):
        Bundle(edit_copy(stargan["bundle"], tmp_path / "d", lambda m, _: m["labels"].update(c_dim=4)))

    def wider_label(manifest, _):
        manifest["graphs"]["generator"]["inputs"][1]["shape"] = ["N", 4]

    with pytest.raises(BundleError, match=r"'label' must be \[N, 3\]"):
        Bundle(edit_copy(stargan["bundle"], tmp_path / "e", wider_label))
    bundle = Bundle(stargan["bundle"])
    assert bundle.model.channels == 3 and list(bundle.model.labels.datasets[0].attrs) == ATTRS


def test_translator_factory(cyclegan):
    """munit_rt.Translator gives the family's class, and a family's class refuses another family's bundle (the
    PyTorch backend against ONNX Runtime, both directions: tests/contract/test_runtime_contract.py)."""
    import munit_rt
    from munit_rt.errors import InputError
    from munit_rt import CycleGanTranslator, MunitTranslator

    images = np.random.default_rng(13).uniform(-1, 1, (3, 3, 28, 36)).astype(np.float32)
    with munit_rt.Translator(cyclegan["bundle"], backend="onnxruntime") as t:
        assert isinstance(t, CycleGanTranslator) and t.directions == ["a2b", "b2a"]
        fast = t.generate(images, "b2a", batch_size=2)
        with pytest.raises(InputError, match="multiples of 4"):
            t.generate(images[:, :, :27], "a2b")
    with torch.no_grad():
        np.testing.assert_allclose(fast, cyclegan["gens"]["G_B"](torch.from_numpy(images)).numpy(), atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="runs munit bundles"):
        MunitTranslator(cyclegan["bundle"], backend="onnxruntime")


def test_munit_notes_stargan_options_and_keeps_its_layout(tmp_path_factory, tmp_path):
    from test_bundle import build_tiny_bundle

    munit_bundle = build_tiny_bundle(tmp_path_factory)[1]
    write_image(tmp_path / "in" / "cat.png", (32, 32), seed=14)
    code, output = translate(munit_bundle, tmp_path / "in", "-s", 2, "--attrs", "Male", "-o", tmp_path / "out")
    assert code == 0, output
    assert "note: --attrs is ignored for MUNIT bundles" in output
    assert sorted(p.name for p in (tmp_path / "out" / "cat").iterdir()) == ["style_00.png", "style_01.png"]


def test_stargan_image_smaller_than_the_crop_uses_its_largest_centred_square(stargan, tmp_path):
    small = write_image(tmp_path / "in" / "small.png", (30, 36), seed=15)
    code, output = translate(stargan["bundle"], small, "--attrs", "Blond_Hair", "-o", tmp_path / "out")
    assert code == 0, output
    square = Image.open(small).crop((0, 3, 30, 33)).resize((32, 32), Image.Resampling.BILINEAR)
    with torch.no_grad():
        expected = to_uint8(stargan["gen"](to_input(square), torch.tensor([[0.0, 1.0, 0.0]])))
    assert_pixels_match(tmp_path / "out" / "small.png", expected)


def test_winograd_rewrite_keeps_cyclegan_and_stargan_equal_to_pytorch(cyclegan, stargan):
    """Every 3x3 stride-1 conv rewritten ("on"): two per residual block in both generators (the stride-2
    downsampling convs and the 7x7/4x4 ones stay), outputs still the PyTorch modules' (<= 1e-4)."""
    import munit_rt

    images = np.random.default_rng(14).uniform(-1, 1, (2, 3, 28, 36)).astype(np.float32)
    with munit_rt.Translator(cyclegan["bundle"], backend="onnxruntime", winograd="on") as t:
        fast = t.generate(images, "a2b")
        assert t.backend.rewritten_convs == {"generator_a2b": 2 * CYCLEGAN["n_blocks"]}
    with torch.no_grad():
        np.testing.assert_allclose(fast, cyclegan["gens"]["G_A"](torch.from_numpy(images)).numpy(), atol=1e-4, rtol=0)

    label = np.array([0, 1, 1], np.float32)
    with munit_rt.Translator(stargan["bundle"], backend="onnxruntime", winograd="on") as t:
        fast = t.generate(images[:, :, :, :28], label)
        assert t.backend.rewritten_convs == {"generator": 2 * STARGAN["g_repeat_num"]}
    with torch.no_grad():
        want = stargan["gen"](torch.from_numpy(images[:, :, :, :28]), torch.from_numpy(np.tile(label, (2, 1))))
    np.testing.assert_allclose(fast, want.numpy(), atol=1e-4, rtol=0)
