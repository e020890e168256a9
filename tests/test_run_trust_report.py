"""Runs a user can trust (issue 16), what a run says and keeps: text from files printed escaped, the summary's
headline and large-input note, index.html, the --style-dir codes kept beside the run record, --backend torch
--checkpoint, installed model names wherever a bundle is accepted, the Ctrl-C message of translate (a real
process), and a Ray run without error-level log lines.
"""
from __future__ import annotations

import html
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import (CLI, counts_line, files_of, interrupt_mid_run, invoke, translate, write_image,  # noqa: E402
                      write_images)
from test_tensorrt_offline import fakes  # noqa: E402,F401 - the fake TensorRT fixture

from munit_rt.cli.common import EXIT_OK, EXIT_SOME_INPUTS_FAILED, EXIT_USAGE

ATTRS = ["Black_Hair", "Blond_Hair", "Male"]


@pytest.fixture
def references(tmp_path) -> Path:
    folder = tmp_path / "refs"
    write_image(folder / "blue.png", seed=11)
    write_image(folder / "red.png", seed=12, size=(40, 32))
    return folder


# -- 6. text from files is printed escaped -------------------------------------------------------------------
def test_failing_input_named_with_control_characters_is_one_escaped_line(model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "good.png", seed=1)
    (folder / "bad\n\x1b[31m.png").write_bytes(b"not an image")
    code, output = translate(model, folder, "-s", 1, "-o", tmp_path / "out")
    assert code == EXIT_SOME_INPUTS_FAILED, output
    assert "\x1b" not in output
    failed = output.split("failed inputs:\n", 1)[1].splitlines()
    assert len(failed) == 1 and failed[0].startswith("  bad\\n\\x1b[31m.png: not an image munit-rt reads"), failed


def test_error_naming_a_file_with_control_characters_is_one_escaped_line(model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    reference = tmp_path / "ref\n\x1b[31m.png"
    reference.write_bytes(b"not an image")
    code, output = translate(model, folder, "--style-image", reference, "-o", tmp_path / "out")
    assert code == EXIT_USAGE and "\x1b" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: style image ") and "ref\\n\\x1b[31m.png" in lines[0]


def test_info_prints_text_stored_in_a_checkpoint_escaped(tmp_path):
    pytest.importorskip("torch", reason="checkpoints need munit-rt[train]")
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.families.stargan.model import build_generator

    config = config_from_dict({"family": "stargan", "g_conv_dim": 4, "g_repeat_num": 1, "image_size": 32,
                               "d_repeat_num": 3, "crop_size": 32, "selected_attrs": ["Male\x1b[31m", "Young\nfake"]})
    path = tmp_path / "stargan_00000001.pt"
    save_checkpoint(path, "stargan", {"G": build_generator(config)}, config, iteration=1)
    code, output = invoke("info", path)
    assert code == EXIT_OK, output
    assert "\x1b" not in output and "\nfake" not in output
    assert "selected_attrs=Male\\x1b[31m,Young\\nfake" in output


def test_info_prints_manifest_text_escaped(model, tmp_path):
    bundle = tmp_path / "copy.bundle"
    shutil.copytree(model, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["source_checkpoint"]["name"] = "gen\x1b[2J\nforged line.pt"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    code, output = invoke("info", bundle)
    assert code == EXIT_OK, output
    assert "\x1b" not in output and "\nforged line" not in output
    assert any(line.startswith("checkpoint  gen\\x1b[2J\\nforged line.pt (munit-rt") for line in output.splitlines())


# -- 7. the summary's first line, and the large-input note --------------------------------------------------
def test_summary_headline_names_model_family_direction_size_backend_precision(model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    code, output = translate(model, folder, "-s", 2, "--direction", "b2a", "-o", tmp_path / "out")
    assert code == EXIT_OK, output
    assert re.fullmatch(rf"model {re.escape(str(model))}: MUNIT, direction b2a, outputs 32 px on the shorter side, "
                        r"2 outputs per input; backend onnxruntime \(cpu, .*\), fp32", output.splitlines()[0]), output


def test_much_larger_inputs_get_a_note(model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "photo.png", seed=1, size=(200, 160))
    code, output = translate(model, folder, "-s", 1, "-o", tmp_path / "out")
    assert code == EXIT_OK, output
    assert "note: inputs are much larger than the model's output size (the largest, 200x160 px, became 40x32); " \
           "outputs are at the model's size (32 px on the shorter side)" in output, output


# -- 1. and 9. --style-dir codes beside the record; index.html -----------------------------------------------
def test_style_dir_run_keeps_the_reference_codes(model, references, tmp_path):
    from munit_rt.bundle import Bundle
    from munit_rt.io.images import read_image
    from munit_rt.preprocess import normalize
    from munit_rt.translator import Translator

    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    code, output = translate(model, folder, "--style-dir", references, "-o", tmp_path / "out")
    assert code == EXIT_OK, output
    stored = np.load(tmp_path / "out" / ".munit-rt-styles.npy", allow_pickle=False)
    prep = Bundle(model).preprocess
    with Translator(model) as translator:  # a2b: the references are encoded in domain b
        expected = [translator.encode_style(normalize(read_image(path, prep, 3), prep)[None], "b")[0]
                    for path in sorted(references.iterdir())]
    np.testing.assert_allclose(stored, np.stack(expected), atol=1e-6)


def index_page(root: Path) -> str:
    return (root / "index.html").read_text(encoding="utf-8")


def test_index_html_labels_references_scales_up_and_shows_the_run(model, references, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    out = tmp_path / "out"
    assert translate(model, folder, "--style-dir", references, "--grid", "-o", out)[0] == EXIT_OK
    page = index_page(out)
    labels = re.findall(r'<span title="[^"]*">([^<]*)</span>', page)
    assert labels == ["input", "blue.png", "red.png"]
    sizes = [(int(w), int(h)) for w, h in re.findall(r'<img [^>]*width="(\d+)" height="(\d+)"', page)]
    assert len(sizes) == 1 and sizes[0][1] >= 128  # the 32 px grid shown at 128 px
    settings = dict(re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", page))
    assert settings["model"] == html.escape(str(model)) and settings["direction"] == "a2b"
    assert settings["style_source"] == "references" and settings["family"] == "MUNIT"
    assert page.index('<table class="run">') < page.index("<figure>")  # the run record on top


@pytest.fixture(scope="module")
def stargan(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="the StarGAN bundle is exported here (pip install 'munit-rt[export]')")
    from munit_rt.export.random_bundle import random_bundle

    config = {"g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 3, "image_size": 32,
              "crop_size": 32, "selected_attrs": ATTRS}
    return random_bundle("stargan", tmp_path_factory.mktemp("stargan"), config, seed=5)


def test_index_html_of_a_stargan_sweep_labels_the_attributes(stargan, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    assert translate(stargan, folder, "--grid", "-o", tmp_path / "out")[0] == EXIT_OK
    page = index_page(tmp_path / "out")
    assert re.findall(r'<span title="[^"]*">([^<]*)</span>', page) == ["input", *ATTRS]
    assert all(int(h) >= 128 for h in re.findall(r'<img [^>]*height="(\d+)"', page))


# -- 8. --backend torch --checkpoint -------------------------------------------------------------------------
def test_torch_backend_takes_the_checkpoint_on_the_command_line(model, tmp_path):
    pytest.importorskip("torch", reason="the PyTorch reference backend (pip install 'munit-rt[train]')")
    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    checkpoint = shutil.copy(model.parent / "gen_00000010.pt", tmp_path / "moved.pt")
    code, output = translate(model, folder, "-s", 1, "--backend", "torch", "--checkpoint", checkpoint,
                             "-o", tmp_path / "out")
    assert code == EXIT_OK, output
    assert "; backend torch (cpu, fp32), fp32" in output.splitlines()[0]
    other = tmp_path / "other.pt"
    other.write_bytes(b"not this one")
    code, output = translate(model, folder, "-s", 1, "--backend", "torch", "--checkpoint", other,
                             "-o", tmp_path / "out2")
    assert code == EXIT_USAGE and "other.pt" in output and not (tmp_path / "out2").exists()


# -- 8. installed model names wherever a bundle is accepted --------------------------------------------------
@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """The installed models, copied into a temporary models folder (build writes engines into the bundle)."""
    import munit_rt.models as models

    original = models.default_model_path()
    if original is None:
        pytest.skip("this copy of munit-rt ships no default model")
    shutil.copytree(original, tmp_path / "models" / "default")
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path / "models")
    monkeypatch.chdir(tmp_path)  # no file named "default" here
    return tmp_path / "models" / "default"


def test_info_default_describes_the_installed_model(installed):
    code, output = invoke("info", "default")
    assert code == EXIT_OK, output
    assert output.splitlines()[0] == f"bundle      {installed}"
    code, output = invoke("info", "no-such-model")
    assert code == EXIT_USAGE and "'no-such-model' does not exist" in output


def test_build_and_export_triton_take_the_installed_name(installed, fakes, tmp_path):  # noqa: F811
    code, output = invoke("build", "default", "--max-batch", 2, "--graphs", "decoder_a")
    assert code == EXIT_OK, output
    built = [line.split() for line in output.splitlines() if line.startswith("decoder_a ")]
    assert built and built[0][:3] == ["decoder_a", "fp32", "built"], output
    assert built[0][3].startswith(str(installed / "engines")), output
    code, output = invoke("export-triton", "default", "-o", tmp_path / "repo", "--direction", "a2b")
    assert code == EXIT_OK, output
    assert (tmp_path / "repo" / "munit_a2b" / "config.pbtxt").is_file()


def test_translator_opens_the_installed_model_by_name(installed):
    from munit_rt import Translator

    with Translator("default") as translator:
        assert translator.bundle.path == installed
        images = np.zeros((1, 3, 64, 64), np.float32)
        styles = np.zeros((1, translator.style_dim), np.float32)
        assert translator.translate(images, styles).shape == (1, 1, 3, 64, 64)


# -- 8. Ctrl-C in translate (a real process) -----------------------------------------------------------------
def test_ctrl_c_says_what_is_done_and_the_printed_command_resumes(model, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    write_images(inputs, 400, size=(32, 32))
    last = interrupt_mid_run(["translate", "-m", model, inputs, "-s", 1, "-b", 1, "-o", out],
                             lambda: any(out.glob("*/style_00.png")), timeout=120)
    match = re.fullmatch(r"Interrupted: (\d+) inputs translated in this run, their files complete; "
                         r"to go on, run: (munit-rt translate .*)", last)
    assert match, last
    done = int(match[1])
    assert 0 < done < 400 and len(files_of(out)) == done
    command = shlex.split(match[2])
    assert command[:2] == ["munit-rt", "translate"] and "--overwrite" not in command
    resumed = subprocess.run(CLI + command[1:], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert f"400 inputs: {400 - done} translated, {done} already done, 0 failed" in counts_line(resumed.stderr)


# -- 8. Ray: a normal run logs no error-level line ------------------------------------------------------------
def test_ray_run_stderr_has_no_error_level_lines(model, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'munit-rt[ray]')")
    folder = tmp_path / "in"
    write_images(folder, 4, size=(32, 32))
    result = subprocess.run(CLI + ["translate", "-m", str(model), str(folder), "-s", "1", "-b", "2", "--engine", "ray",
                                   "--workers", "2", "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_OK, result.stderr
    assert "4 inputs: 4 translated" in counts_line(result.stderr)
    errors = [line for line in result.stderr.splitlines() if re.search(r"\bE\d{4}|\sE \d", line) or "ERROR" in line]
    assert not errors, result.stderr
