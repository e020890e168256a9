"""`munit-rt translate` end to end on the tiny model: files, layouts, reproducibility, failures, no torch."""
from __future__ import annotations

import html.parser
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import counts_line, files_of, translate, write_image  # noqa: E402
from click.testing import CliRunner
from PIL import Image

from munit_rt.cli import cli
from munit_rt.cli.common import EXIT_SOME_INPUTS_FAILED, EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    for i, name in enumerate(["cat.png", "dog.jpg", "sub/bird.png"]):
        write_image(folder / name, seed=i, size=(32 + 8 * i, 32))
    return folder


def test_nested_layout_and_same_seed_gives_identical_bytes(model, inputs, tmp_path):
    code, output = translate(model, inputs, "-r", "-s", 3, "-o", tmp_path / "one")
    assert code == 0, output
    one = files_of(tmp_path / "one")
    assert sorted(one) == sorted(f"{stem}/style_{j:02d}.png" for stem in ("cat", "dog", "sub/bird") for j in range(3))
    assert translate(model, inputs, "-r", "-s", 3, "-o", tmp_path / "two")[0] == 0
    assert one == files_of(tmp_path / "two")
    assert translate(model, inputs, "-r", "-s", 3, "--seed", 1, "-o", tmp_path / "three")[0] == 0
    assert one["cat/style_00.png"] != files_of(tmp_path / "three")["cat/style_00.png"]
    with Image.open(tmp_path / "one" / "sub/bird/style_02.png") as image:
        assert image.size == (48, 32)  # 48x32 input: shorter side already 32, multiple of 4


def test_batch_size_does_not_change_output_bytes(model, inputs, tmp_path):
    assert translate(model, inputs, "-r", "-s", 4, "-b", 1, "-o", tmp_path / "b1")[0] == 0
    assert translate(model, inputs, "-r", "-s", 4, "-b", 5, "-o", tmp_path / "b5")[0] == 0
    assert files_of(tmp_path / "b1") == files_of(tmp_path / "b5")


def test_synchronized_styles_are_shared_across_inputs(model, tmp_path):
    folder = tmp_path / "twins"
    write_image(folder / "left.png", seed=7)
    write_image(folder / "right.png", seed=7)  # same pixels, different name
    assert translate(model, folder, "-s", 2, "--synchronized", "-o", tmp_path / "sync")[0] == 0
    assert translate(model, folder, "-s", 2, "-o", tmp_path / "free")[0] == 0
    sync, free = files_of(tmp_path / "sync"), files_of(tmp_path / "free")
    assert sync["left/style_00.png"] == sync["right/style_00.png"]
    assert sync["left/style_01.png"] == sync["right/style_01.png"]
    assert free["left/style_00.png"] != free["right/style_00.png"]


def expected_pixels(model: Path, image_path: Path, codes: np.ndarray) -> list[np.ndarray]:
    """Independent of the pipeline: normalise by formula, Translator.translate, then the uint8 formula."""
    from munit_rt import Translator

    pixels = np.asarray(Image.open(image_path).convert("RGB"), np.float32)  # 32x32: no resize, no crop
    x = ((pixels / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)
    y = Translator(model, backend="onnxruntime").translate(x, codes, "a2b")[0]
    return [np.round(np.clip((s + 1) / 2, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0) for s in y]


def test_style_codes_file_is_honoured_exactly(model, tmp_path):
    image = write_image(tmp_path / "in" / "face.png", seed=11)
    codes = np.random.default_rng(12).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "codes.npy", codes)
    assert translate(model, image, "--style-codes", tmp_path / "codes.npy", "-o", tmp_path / "out")[0] == 0
    for j, expected in enumerate(expected_pixels(model, image, codes)):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "face" / f"style_{j:02d}.png")), expected)


def test_interpolation_inserts_k_codes_between_styles(model, tmp_path):
    image = write_image(tmp_path / "in" / "face.png", seed=13)
    codes = np.random.default_rng(14).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "codes.npy", codes)
    assert translate(model, image, "--style-codes", tmp_path / "codes.npy", "--interpolate", 2,
                     "-o", tmp_path / "out")[0] == 0
    t = np.array([0, 1 / 3, 2 / 3, 1])[:, None]
    lerped = ((1 - t) * codes[0] + t * codes[1]).astype(np.float32)
    produced = sorted((tmp_path / "out" / "face").iterdir())
    assert [p.name for p in produced] == [f"style_{j:02d}.png" for j in range(4)]
    for path, expected in zip(produced, expected_pixels(model, image, lerped)):
        assert np.abs(np.asarray(Image.open(path)).astype(int) - expected).max() <= 1  # float order of lerp


def test_bad_style_codes_file_names_it(model, inputs, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 5), np.float32))
    code, output = translate(model, inputs, "--style-codes", tmp_path / "wrong.npy")
    assert code == EXIT_USAGE and "wrong.npy" in output and "[S, 4]" in output


def test_reference_images_give_one_style_each(model, inputs, tmp_path):
    refs = [write_image(tmp_path / "refs" / f"r{i}.png", seed=20 + i) for i in range(2)]
    code, output = translate(model, inputs / "cat.png", "--style-dir", tmp_path / "refs", "-o", tmp_path / "out")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out" / "cat").iterdir()) == ["style_00.png", "style_01.png"]
    code, _ = translate(model, inputs / "cat.png", "--style-image", refs[1], "-o", tmp_path / "one")
    assert code == 0
    assert (tmp_path / "one/cat/style_00.png").read_bytes() == (tmp_path / "out/cat/style_01.png").read_bytes()


def test_official_layout_grid_and_index(model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "cat & dog.png", seed=1, size=(40, 32))
    write_image(folder / "owl.png", seed=2)
    out = tmp_path / "res"
    code, output = translate(model, folder, "-s", 2, "--layout", "official", "--grid", "--format", "jpg", "-o", out)
    assert code == 0, output
    for j in range(2):
        assert sorted(p.name for p in (tmp_path / f"res_{j:02d}").iterdir()) == ["cat & dog.jpg", "owl.jpg"]
    with Image.open(out / "cat & dog" / "grid.png") as grid:
        assert grid.size == (3 * 40, 32)  # input, then 2 styles, one row
    with Image.open(out / "owl" / "grid.png") as grid:
        assert grid.size == (3 * 32, 32)

    class Links(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.hrefs: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "a":
                self.hrefs.append(dict(attrs)["href"])

    page = (out / "index.html").read_text(encoding="utf-8")
    parser = Links()
    parser.feed(page)
    assert "cat &amp; dog.png" in page
    assert len(parser.hrefs) == 2
    for href in parser.hrefs:
        assert not href.startswith("/") and (out / urllib.parse.unquote(href)).is_file()


def test_resume_skips_finished_inputs_and_overwrite_redoes_them(model, inputs, tmp_path):
    out = tmp_path / "out"
    assert translate(model, inputs, "-s", 1, "-o", out)[0] == 0
    first = out / "cat" / "style_00.png"
    os.utime(first, (1, 1))
    code, output = translate(model, inputs, "-s", 1, "-o", out)
    assert code == 0 and "2 already done" in output and first.stat().st_mtime == 1
    first.unlink()
    assert "1 translated" in translate(model, inputs, "-s", 1, "-o", out)[1]
    assert "2 translated" in translate(model, inputs, "-s", 1, "--overwrite", "-o", out)[1]


def test_output_inside_input_folder_is_never_read_back(model, inputs):
    out = inputs / "translated"
    for _ in range(2):
        code, output = translate(model, inputs, "-r", "-s", 1, "-o", out)
        assert code == 0 and counts_line(output).startswith("3 inputs")


def test_unreadable_image_is_skipped_and_reported(model, inputs, tmp_path):
    (inputs / "broken.png").write_bytes(b"not a png at all")
    code, output = translate(model, inputs, "-s", 1, "-o", tmp_path / "out")
    assert code == EXIT_SOME_INPUTS_FAILED
    assert "broken.png" in output and "1 failed" in output
    assert (tmp_path / "out" / "cat" / "style_00.png").is_file() and (tmp_path / "out" / "dog" / "style_00.png").is_file()
    assert not (tmp_path / "out" / "broken").exists()


def test_empty_input_and_missing_model_are_usage_errors(model, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    code, output = translate(model, tmp_path / "empty")
    assert code == EXIT_USAGE and "no images found" in output
    monkeypatch.setattr("munit_rt.models.MODELS_DIR", tmp_path / "no-default")
    result = CliRunner().invoke(cli, ["translate", str(tmp_path / "empty")])
    assert result.exit_code == EXIT_USAGE and "munit-rt export CKPT" in result.output


def test_unwritable_output_is_a_usage_error(model, inputs, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, output = translate(model, inputs, "-o", blocker / "out")
    assert code == EXIT_USAGE and "not writable" in output


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("MUNIT_RT_MODEL", None)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_translate_never_imports_torch(model, inputs, tmp_path):
    args = ["translate", "--model", str(model), "--backend", "onnxruntime", "-s", "2", "-o", str(tmp_path / "o"),
            str(inputs)]
    done = run_python(
        "import sys\nfrom munit_rt.cli import cli\n"
        f"try:\n    cli.main({args!r}, prog_name='munit-rt')\nexcept SystemExit as e:\n    print('exit', e.code)\n"
        "print('torch loaded:', 'torch' in sys.modules)")
    assert "exit 0" in done.stdout, done.stderr
    assert "torch loaded: False" in done.stdout
    assert (tmp_path / "o" / "cat" / "style_01.png").is_file()


def test_every_command_help_works_with_torch_blocked():
    done = run_python(
        "import sys\nsys.modules['torch'] = None\nfrom munit_rt.cli import cli\n"
        "for name in sorted(cli.commands):\n"
        "    try:\n        cli.main([name, '--help'], prog_name='munit-rt')\n"
        "    except SystemExit as e:\n        print('help', name, e.code)\n")
    assert done.returncode == 0, done.stderr
    assert "help translate 0" in done.stdout
    assert all(line.endswith(" 0") for line in done.stdout.splitlines() if line.startswith("help ")), done.stdout
