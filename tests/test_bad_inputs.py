"""Bad, odd and hostile inputs: each one is translated after its stated conversion, or skipped with its name
and reason in the summary while the run goes on (exit 1). Inputs come from tests/badinputs.py.

One `munit-rt translate -r --grid` run over a folder holding every case (module fixture); the tests then look
at its summary and files. The first tile of a case's grid.png is its input as the model saw it, so colour
conversions are checked end to end. Conversions that need a 1-channel domain (the tiny bundle has none) are
checked on `read_image`, the function the pipeline calls with the domain's channel count.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import badinputs
import numpy as np
import pytest
from conftest import counts_line, translate  # noqa: E402
from click.testing import CliRunner
from PIL import Image

from munit_rt.cli import cli
from munit_rt.cli.common import EXIT_OK, EXIT_SOME_INPUTS_FAILED, EXIT_USAGE
from munit_rt.errors import InputError
from munit_rt.io.images import read_image
from munit_rt.preprocess import Preprocess


@pytest.fixture(scope="module")
def bad_run(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    paths = badinputs.build_all(root / "in")
    code, output = translate(model, root / "in", "--recursive", "-s", 1, "--grid", "-o", root / "out")
    failures = {}
    lines = output.splitlines()
    for line in lines[lines.index("failed inputs:") + 1:] if "failed inputs:" in lines else []:
        name, _, reason = line.strip().partition(": ")
        failures[name] = reason
    return SimpleNamespace(code=code, output=output, out=root / "out", paths=paths, root=root / "in",
                           failures=failures)


def output_dir(run, case: str) -> Path:
    relpath = run.paths[case].relative_to(run.root)
    return run.out / relpath.with_suffix("")


def first_tile(run, case: str) -> np.ndarray:
    """The input as the model saw it: the grid's first tile (the grid is input + 1 style, one row)."""
    grid = np.asarray(Image.open(output_dir(run, case) / "grid.png").convert("RGB")).astype(int)
    return grid[:, : grid.shape[1] // 2]


def near(pixel, colour, tol=0) -> bool:
    return bool(np.abs(np.asarray(pixel, int) - np.asarray(colour, int)).max() <= tol)


RED, GREEN, BLUE, WHITE = badinputs.RED, badinputs.GREEN, badinputs.BLUE, badinputs.WHITE
L, R = (16, 4), (16, 28)  # (row, column) in the left and right halves of a 32 x 32 tile

# case -> (output size W x H, check of the first tile)
TRANSLATED = {
    "png_named_jpg": ((40, 32), lambda t: near(t[16, 4], RED) and near(t[16, 36], BLUE)),
    "cmyk_jpeg": ((32, 32), lambda t: near(t[16, 16], RED, tol=3)),
    "png_16bit": ((32, 32), lambda t: list(t[0, ::6, 0]) == list(badinputs.WIDE_EXPECTED)),
    "rgba": ((32, 32), lambda t: near(t[L], WHITE) and near(t[R], BLUE)),
    "la": ((32, 32), lambda t: near(t[L], WHITE) and near(t[R], (0, 0, 0))),
    "palette": ((32, 32), lambda t: near(t[L], RED) and near(t[R], GREEN)),
    "palette_transparent": ((32, 32), lambda t: near(t[L], WHITE) and near(t[R], GREEN)),
    "grey": ((32, 32), lambda t: near(t[16, 16], (100, 100, 100))),
    "rgb_quadrants": ((32, 32), lambda t: near(t[4, 4], RED) and near(t[28, 28], WHITE)),
    # stored 64x32 with orientation 6: shown 32 wide, 64 high, red (the stored left half) on top
    "exif_rotated": ((32, 64), lambda t: near(t[8, 16], RED, tol=4) and near(t[56, 16], BLUE, tol=4)),
    "one_pixel": ((32, 32), lambda t: bool((t == (10, 200, 30)).all())),
    "animated_gif": ((32, 32), lambda t: near(t[16, 16], RED)),  # first frame; the second is green
    "animated_webp": ((32, 32), lambda t: near(t[16, 16], RED)),
    "large_jpeg": ((40, 32), lambda t: t[16, 0, 0] < 30 < 220 < t[16, -1, 0]),  # left-to-right red ramp kept
    "non_utf8_name": ((32, 32), lambda t: near(t[16, 16], GREEN)),
    "unicode_name": ((32, 32), lambda t: near(t[16, 16], BLUE)),
}

# case -> substrings of its reason in the summary
SKIPPED = {
    "truncated_jpeg": ["truncated image data"],
    "zero_bytes": ["empty file (0 bytes)"],
    "text_as_png": ["not an image munit-rt reads"],
    "postscript_as_jpg": ["not an image munit-rt reads"],
    "thin": ["1x300 px, too thin", "9600 px", "at least 30 px"],
    "bomb_error": ["decompression bomb"],
    "bomb_warning": ["decompression bomb", "10000x10000", "MAX_IMAGE_PIXELS"],
    "clash": ["clash.jpg and clash.png would write the same outputs ('clash')"],
    "fifo": ["not a regular file"],
    "broken_link": ["broken symbolic link"],
    "non_utf8_broken": ["not an image munit-rt reads"],
}


def test_every_case_is_covered():
    assert set(TRANSLATED) | set(SKIPPED) | {"same_name_in_subfolders", "symlink_loop"} == set(badinputs.CASES)


def test_run_goes_on_and_exits_1(bad_run):
    assert bad_run.code == EXIT_SOME_INPUTS_FAILED, bad_run.output
    translated = len(TRANSLATED) + 3  # + dup/a/cat, dup/b/cat, loop/inner
    failed = len(SKIPPED) + 1  # clash: both files
    assert counts_line(bad_run.output).startswith(f"{translated + failed} inputs: {translated} translated, 0 already done, "
                                     f"{failed} failed"), bad_run.output
    assert not (bad_run.out / "clash").exists()


@pytest.mark.parametrize("case", sorted(TRANSLATED))
def test_translated_after_conversion(bad_run, case):
    size, check = TRANSLATED[case]
    folder = output_dir(bad_run, case)
    with Image.open(folder / "style_00.png") as style:
        style.load()
        assert (style.size, style.mode) == (size, "RGB")
    assert first_tile(bad_run, case).shape[:2] == size[::-1]
    assert check(first_tile(bad_run, case)), f"{case}: unexpected input pixels"


@pytest.mark.parametrize("case", sorted(SKIPPED))
def test_skipped_with_name_and_reason(bad_run, case):
    name = bad_run.paths[case].relative_to(bad_run.root).as_posix()
    shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    assert shown in bad_run.failures, f"{shown} not listed as failed:\n{bad_run.output}"
    for part in SKIPPED[case]:
        assert part in bad_run.failures[shown]
    assert not output_dir(bad_run, case).exists()


def test_non_utf8_names_keep_their_bytes_and_print_escaped(bad_run):
    out_bytes = os.fsencode(bad_run.out)
    assert os.path.isfile(os.path.join(out_bytes, b"caf\xe9_latin1", b"style_00.png"))
    assert "bad_\\xff.png: not an image" in bad_run.output
    assert (bad_run.out / "café_北京" / "style_00.png").is_file()
    page = (bad_run.out / "index.html").read_text(encoding="utf-8")  # valid UTF-8 despite the name
    assert 'href="caf%E9_latin1/grid.png"' in page and "caf\\xe9_latin1.png" in page


def test_same_base_name_in_subfolders_keeps_both(bad_run):
    a, b = (bad_run.out / "dup" / sub / "cat" / "style_00.png" for sub in "ab")
    assert a.is_file() and b.is_file() and a.read_bytes() != b.read_bytes()
    assert near(np.asarray(Image.open(a.with_name("grid.png")))[16, 16], RED)
    assert near(np.asarray(Image.open(b.with_name("grid.png")))[16, 16], GREEN)


def test_symlink_loop_is_walked_once(bad_run):
    # loop/up -> .. (the input folder itself): pruned as already walked, so nothing is found through it
    assert sorted(p.name for p in (bad_run.out / "loop").iterdir()) == ["inner"]
    assert (bad_run.out / "loop" / "inner" / "style_00.png").is_file()


def test_symlinked_folder_is_followed(model, tmp_path):
    outside = tmp_path / "elsewhere"
    badinputs.make_grey(outside)
    folder = tmp_path / "in"
    badinputs.make_one_pixel(folder)
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "again").symlink_to(outside, target_is_directory=True)  # the same real folder: read once
    code, output = translate(model, folder, "-r", "-s", 1, "-o", tmp_path / "out")
    assert code == EXIT_OK and counts_line(output).startswith("2 inputs: 2 translated"), output
    assert (tmp_path / "out" / "again" / "grey" / "style_00.png").is_file()  # "again" < "linked": walked first


# -- conversions on read_image (1-channel domain, exact values, draft mode, the bomb limit) -------------------
def prep(channels: int) -> tuple[Preprocess, int]:
    """A MUNIT-like description (shorter side 32, bicubic, crop to a multiple of 4) and the channel count."""
    return Preprocess(size=32, resample="bicubic", multiple=4), channels


def test_16bit_grey_maps_full_range_without_clipping(tmp_path):
    pixels = read_image(badinputs.make_png_16bit(tmp_path), *prep(1))
    assert pixels.shape == (32, 32, 1)
    np.testing.assert_array_equal(pixels[0, ::6, 0], badinputs.WIDE_EXPECTED)  # round(v / 257)


def test_rgb_into_one_channel_domain_is_601_luma(tmp_path):
    pixels = read_image(badinputs.make_rgb_quadrants(tmp_path), *prep(1))[:, :, 0]
    # L = R*299/1000 + G*587/1000 + B*114/1000: red 76, green 150, blue 29, white 255
    assert [pixels[4, 4], pixels[4, 28], pixels[28, 4], pixels[28, 28]] == [76, 150, 29, 255]


def test_grey_into_three_channel_domain_is_replicated(tmp_path):
    pixels = read_image(badinputs.make_grey(tmp_path), *prep(3))
    assert pixels.shape == (32, 32, 3) and (pixels == 100).all()


# transparent left half: white (255); opaque right half: blue -> 29, black -> 0, green -> 150
@pytest.mark.parametrize("case,right", [("rgba", 29), ("la", 0), ("palette_transparent", 150)])
def test_alpha_on_white_into_one_channel_domain(tmp_path, case, right):
    pixels = read_image(badinputs.CASES[case](tmp_path), *prep(1))[:, :, 0]
    assert (pixels[16, 4], pixels[16, 28]) == (255, right)


def test_large_jpeg_is_decoded_in_draft_mode(tmp_path, monkeypatch):
    import PIL.Image

    opened = []
    real_open = PIL.Image.open

    def spy(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(PIL.Image, "open", spy)
    pixels = read_image(badinputs.make_large_jpeg(tmp_path), *prep(3))
    assert pixels.shape == (32, 40, 3)
    # draft mode decoded the 4000x3000 file at 1/8 scale: 500x375 = 0.19 MP in memory instead of 12 MP
    assert opened[0].size == (500, 375) and opened[0].mode == "RGB"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("limit", [600, 400])  # 32x32 = 1024 px: over the limit (Pillow warns), over 2x (raises)
def test_decompression_bomb_limit_is_honoured(tmp_path, monkeypatch, limit):
    import PIL.Image

    path = badinputs.make_one_pixel(tmp_path)
    Image.new("RGB", (32, 32)).save(path)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(InputError, match="decompression bomb"):
        read_image(path, *prep(3))


def test_truncated_images_are_never_loaded_leniently():
    from PIL import ImageFile

    import munit_rt.io.images  # noqa: F401
    import munit_rt.translate.run  # noqa: F401

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# -- output folder inside the input folder -------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["nested", "official"])
def test_output_inside_input_is_never_read_back(model, tmp_path, layout):
    folder = tmp_path / "in"
    for case in ("grey", "one_pixel", "palette"):
        badinputs.CASES[case](folder)
    for run in range(2):
        code, output = translate(model, folder, "-r", "-s", 2, "--layout", layout, "-o", folder / "res")
        assert code == EXIT_OK and counts_line(output).startswith(f"3 inputs: {3 if run == 0 else 0} translated"), output


def test_exit_codes_are_documented_in_help():
    result = CliRunner().invoke(cli, ["translate", "--help"])
    text = " ".join(result.output.split())
    for needle in ("0 every input translated", "1 some inputs failed", "2 usage or setup error",
                   "disk filled up", "130 interrupted", "decoded by content"):
        assert needle in text


def test_bad_model_is_exit_2(tmp_path):
    folder = tmp_path / "in"
    badinputs.make_grey(folder)
    (tmp_path / "model").mkdir()
    code, output = translate(tmp_path / "model", folder)
    assert code == EXIT_USAGE and "no manifest.json" in output and len(output.strip().splitlines()) == 1
