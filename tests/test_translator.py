"""Translator against the PyTorch modules it was exported from; preprocessing and style codes by formula."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bundle import build_tiny_bundle

from munit_rt import Translator
from munit_rt.backends.onnxruntime import OnnxRuntimeBackend
from munit_rt.bundle import Bundle

ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def gens(tiny):
    """The reference: the MUNIT training modules loaded straight from the checkpoint."""
    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.registry import load_generators

    return load_generators(read_checkpoint(tiny[0]))


@pytest.fixture(scope="module")
def translator(tiny):
    with Translator(tiny[1], backend="onnxruntime") as t:
        yield t


def torch_translate(gens, images, codes, source, target):
    """Official semantics: content of each image once, then decode(content, style) per style."""
    import torch

    with torch.inference_mode():
        content = gens[source].enc_content(torch.from_numpy(images))
        per_image = codes.ndim == 3
        rows = []
        for i in range(len(images)):
            image_codes = torch.from_numpy(codes[i] if per_image else codes)
            rows.append(torch.stack([gens[target].decode(content[i:i + 1], s[None])[0] for s in image_codes]))
        return torch.stack(rows).numpy()


def images_of(n, h=32, w=40, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, h, w)).astype(np.float32)


@pytest.mark.parametrize("direction,source,target", [("a2b", "a", "b"), ("b2a", "b", "a")])
def test_random_styles_match_pytorch(translator, gens, direction, source, target):
    images = images_of(3)
    shared = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    per_image = np.random.default_rng(2).standard_normal((3, 2, 4)).astype(np.float32)
    for codes in (shared, per_image):
        got = translator.translate(images, codes, direction=direction, batch_size=3)
        assert got.shape == (3, codes.shape[-2], 3, 32, 40) and got.dtype == np.float32
        np.testing.assert_allclose(got, torch_translate(gens, images, codes, source, target), atol=ATOL, rtol=0)


@pytest.mark.parametrize("direction,source,target", [("a2b", "a", "b"), ("b2a", "b", "a")])
def test_reference_styles_match_pytorch(translator, gens, direction, source, target):
    import torch

    images, references = images_of(2, seed=3), images_of(3, h=36, w=32, seed=4)
    codes = translator.encode_style(references, target)
    with torch.inference_mode():
        expected_codes = gens[target].enc_style(torch.from_numpy(references)).flatten(1).numpy()
    np.testing.assert_allclose(codes, expected_codes, atol=ATOL, rtol=0)
    got = translator.translate(images, codes, direction=direction, batch_size=4)
    np.testing.assert_allclose(got, torch_translate(gens, images, expected_codes, source, target), atol=ATOL, rtol=0)


class CountingBackend(OnnxRuntimeBackend):
    """ORT, recording (graph, batch rows) of every call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, int]] = []

    def _run(self, graph, feeds):
        self.calls.append((graph.name, len(next(iter(feeds.values())))))
        return super()._run(graph, feeds)


def test_work_is_shared_never_repeated(tiny):
    backend = CountingBackend(Bundle(tiny[1]))
    t = Translator(backend.bundle, backend=backend)
    n, s, batch = 5, 3, 4
    t.translate(images_of(n), np.zeros((s, 4), np.float32), "a2b", batch_size=batch)
    rows = lambda name: [r for g, r in backend.calls if g == name]  # noqa: E731
    assert sum(rows("content_encoder_a")) == n  # each image's content once
    assert rows("style_mlp_b") == [s]  # all styles through the MLP in one call
    assert rows("decoder_b") == [4, 4, 4, 3]  # n * s pairs in batches of `batch`
    backend.calls.clear()
    t.translate(images_of(n), np.zeros((n, s, 4), np.float32), "a2b", batch_size=batch)
    assert rows("style_mlp_b") == [s] * n and sum(rows("content_encoder_a")) == n


def test_shared_styles_go_through_the_mlp_once_per_run(tiny):
    """A run translates batch after batch with the same shared codes: the MLP must not rerun per batch."""
    backend = CountingBackend(Bundle(tiny[1]))
    t = Translator(backend.bundle, backend=backend)
    codes = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    first = t.translate(images_of(2), codes, "a2b")
    second = t.translate(images_of(2), codes, "a2b")
    mlp_calls = lambda: [g for g, _ in backend.calls if g.startswith("style_mlp")]  # noqa: E731
    assert mlp_calls() == ["style_mlp_b"]
    np.testing.assert_array_equal(first, second)
    t.translate(images_of(2), codes + 1, "a2b")  # other codes: computed anew
    t.translate(images_of(2), codes + 1, "b2a")  # other target domain: computed anew
    assert mlp_calls() == ["style_mlp_b", "style_mlp_b", "style_mlp_a"]


def test_translate_keeps_the_content_code_on_the_backend(tiny, translator):
    """The job takes the content code with to_host=False and broadcasts it with `take`: a backend whose values
    live elsewhere (a GPU) never hands a content code to the host, and the outputs do not change."""

    class Device:  # a value that only its backend can read
        def __init__(self, name, array):
            self.name, self.array = name, array

    class DeviceBackend(OnnxRuntimeBackend):
        downloads: list[str] = []

        def _run(self, graph, feeds):
            feeds = {k: v.array if isinstance(v, Device) else v for k, v in feeds.items()}
            return {k: Device(k, v) for k, v in super()._run(graph, feeds).items()}

        def to_host(self, value):
            if not isinstance(value, Device):
                return value
            self.downloads.append(value.name)
            return value.array

        def take(self, value, rows):
            return Device(value.name, value.array[rows])

        def value_info(self, value):
            return super().value_info(value.array if isinstance(value, Device) else value)

    t = Translator(Bundle(tiny[1]), backend=DeviceBackend(Bundle(tiny[1])))
    images = images_of(3)
    for codes in (np.ones((2, 4), np.float32), np.random.default_rng(0).standard_normal((3, 2, 4), np.float32)):
        DeviceBackend.downloads.clear()
        np.testing.assert_array_equal(t.translate(images, codes, batch_size=4), translator.translate(images, codes,
                                                                                                  batch_size=4))
        assert "content" not in DeviceBackend.downloads and DeviceBackend.downloads.count("output") == 2  # 6 rows / 4


def test_batch_size_does_not_change_results(translator):
    images, codes = images_of(5, seed=7), np.random.default_rng(8).standard_normal((5, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(translator.translate(images, codes, batch_size=1),
                                  translator.translate(images, codes, batch_size=5))


def test_bad_inputs_are_refused(translator):
    from munit_rt.errors import InputError

    with pytest.raises(InputError, match="multiples of 4"):
        translator.translate(images_of(1, h=30), np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match=r"\[S, 4\]"):
        translator.translate(images_of(1), np.zeros((1, 5), np.float32))
    with pytest.raises(InputError, match="direction"):
        translator.translate(images_of(1), np.zeros((1, 4), np.float32), direction="a2c")


# -- preprocessing and pixels -------------------------------------------------------------------------------
def test_preprocess_resizes_crops_and_composites_alpha(tmp_path):
    from PIL import Image

    from munit_rt.io.images import read_image
    from munit_rt.preprocess import Preprocess, normalize

    rgba = np.zeros((50, 70, 4), np.uint8)  # H 50, W 70, fully transparent: white after compositing
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    prep = Preprocess(size=32, multiple=4)
    pixels = read_image(tmp_path / "clear.png", prep, 3)
    # shorter side 50 -> 32, longer int(32 * 70 / 50) = 44, already a multiple of 4
    assert pixels.shape == (32, 44, 3) and (pixels == 255).all()
    x = normalize(pixels, prep)
    assert x.shape == (3, 32, 44) and np.allclose(x, 1.0)

    Image.fromarray(np.full((33, 46, 3), 100, np.uint8)).save(tmp_path / "odd.png")
    odd = read_image(tmp_path / "odd.png", Preprocess(size=33, multiple=4), 1)
    assert odd.shape == (32, 44, 1)  # 33x46 rounded down to multiples of 4 by a center crop; greyscale


def test_exif_orientation_is_respected(tmp_path):
    from PIL import Image

    from munit_rt.io.images import read_image
    from munit_rt.preprocess import Preprocess

    image = Image.fromarray(np.zeros((32, 64, 3), np.uint8))  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": displayed as portrait
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "rotated.jpg", Preprocess(size=32, multiple=4), 3).shape[:2] == (64, 32)


def test_output_pixels_follow_the_formula():
    from munit_rt.preprocess import to_pixels

    y = np.array([-1.5, -1.0, -0.5, 0.0, 0.999, 1.0, 2.0], np.float32).reshape(1, 1, 7)
    expected = [0, 0, round(0.25 * 255), round(0.5 * 255), round((1.999 / 2) * 255), 255, 255]
    assert to_pixels(y)[0, :, 0].tolist() == expected  # clipped, never min-max rescaled


def test_styles_depend_only_on_seed_and_path():
    from munit_rt.families.munit_styles import interpolate_styles, random_styles

    first = random_styles(3, 4, seed=0, relpath="x/a.png")
    random_styles(3, 4, seed=0, relpath="b.png")  # drawing other inputs in between changes nothing
    assert np.array_equal(first, random_styles(3, 4, seed=0, relpath="x/a.png"))
    assert not np.array_equal(first, random_styles(3, 4, seed=1, relpath="x/a.png"))
    assert not np.array_equal(first, random_styles(3, 4, seed=0, relpath="x/b.png"))

    linear = interpolate_styles(first, 1)
    assert linear.shape == (5, 4) and np.allclose(linear[[0, 2, 4]], first)
    assert np.allclose(linear[1], (first[0] + first[1]) / 2, atol=1e-6)
    spherical = interpolate_styles(first, 3, spherical=True)
    assert spherical.shape == (9, 4) and np.allclose(spherical[[0, 4, 8]], first, atol=1e-6)


def test_cpu_sessions_do_not_spin_between_graphs(tiny):
    """A job hands the cores from one session to the next, so idle pools must sleep rather than spin; threads and
    the one-op-at-a-time chain are what the backend was asked for."""
    handed = {}

    def recording_session(model, options, providers):
        handed["options"] = options
        raise RuntimeError("stop here")

    backend = OnnxRuntimeBackend(Bundle(tiny[1]), providers=["CPUExecutionProvider"], threads=2,
                                 session_factory=recording_session)
    with pytest.raises(RuntimeError, match="stop here"):
        backend.run("content_encoder_a", {"image": np.zeros((1, 3, 32, 32), np.float32)})
    options = handed["options"]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
