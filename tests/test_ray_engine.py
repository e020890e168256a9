"""`munit-rt translate --engine ray`: Ray actors with the local engine's results, file for file.

One local Ray instance (2 CPUs, no dashboard) serves the whole module; the engine uses an already initialised
Ray as it is. Every comparison is of the complete output trees, byte for byte, including hidden files (so a
temporary file left behind would show too).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import files_of, translate, write_image  # noqa: E402

from munit_rt.cli.common import EXIT_OK, EXIT_SOME_INPUTS_FAILED, EXIT_USAGE
from munit_rt.translate.options import TranslateOptions
from munit_rt.translate.run import translate_paths

NON_UTF8 = os.fsdecode(b"caf\xe9.png")  # a file name that is not UTF-8: it reaches the workers intact


def ray_or_skip():
    return pytest.importorskip("ray", reason="Ray is not installed (pip install 'munit-rt[ray]')")


@pytest.fixture(scope="module")
def ray_instance():
    ray = ray_or_skip()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray  # the driver hands batches to the actors in turn, so both workers get inputs
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Six inputs of three sizes in two folders (more inputs than one batch, so both workers get some)."""
    folder = tmp_path_factory.mktemp("ray_inputs") / "in"
    names = ["a.png", "b.jpg", "c.png", "sub/d.png", "sub/e.png", NON_UTF8]
    for i, name in enumerate(names):
        write_image(folder / name, seed=i, size=(32 + 8 * (i % 3), 32))
    return folder


MUNIT_ARGS = ["-r", "-s", 3, "--seed", 7, "-b", 2]
RAY_ARGS = ["--engine", "ray", "--workers", 2]


@pytest.fixture(scope="module")
def local_run(model, inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    code, output = translate(model, inputs, *MUNIT_ARGS, "-o", out)
    assert code == EXIT_OK, output
    return out


@pytest.fixture(scope="module")
def local_reference(local_run) -> dict[str, bytes]:
    return files_of(local_run)


def test_ray_engine_writes_the_local_engines_bytes(ray_instance, model, inputs, local_reference, tmp_path):
    code, output = translate(model, inputs, *MUNIT_ARGS, *RAY_ARGS, "-o", tmp_path / "ray")
    assert code == EXIT_OK, output
    assert "6 inputs: 6 translated, 0 already done, 0 failed; 18 files written" in output
    assert "on ray, 2 workers, fp32" in output  # both workers translated some of the inputs (not "1 of 2 busy")
    produced = files_of(tmp_path / "ray")
    assert len(produced) == 18 and "sub/d/style_02.png" in produced
    assert produced == local_reference


def test_ray_engine_synchronized_styles_match_the_local_engine(ray_instance, model, inputs, tmp_path):
    args = [inputs, "-r", "-s", 2, "--synchronized", "--seed", 3]
    assert translate(model, *args, "-o", tmp_path / "local")[0] == EXIT_OK
    code, output = translate(model, *args, *RAY_ARGS, "-o", tmp_path / "ray")
    assert code == EXIT_OK, output
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")


def test_ray_engine_resumes_only_the_missing_outputs(ray_instance, model, inputs, local_run, local_reference,
                                                     tmp_path):
    """An interrupted run: one input with no outputs, one with a style missing, one with a file cut short, and a
    temporary file of a worker that died. The rerun redoes exactly those three inputs."""
    out = tmp_path / "out"
    shutil.copytree(local_run, out)  # the outputs and the run record
    shutil.rmtree(out / "a")
    (out / "sub/d/style_01.png").unlink()
    cut = out / "c/style_02.png"
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    stale = out / "sub/e/.style_00.png.tmp-4194303"  # a PID above Linux's pid_max: never running
    stale.write_bytes(b"half a png")
    untouched = out / "b/style_00.png"
    os.utime(untouched, (1, 1))

    report = translate_paths(TranslateOptions(inputs=[inputs], output=out, model=model, styles=3, seed=7, batch_size=2,
                                              recursive=True, engine="ray", workers=2, progress=False))
    assert (report.inputs, report.translated, report.skipped, report.failures) == (6, 3, 3, [])
    assert report.files_written == 9 and report.stage_images["infer"] == 3
    assert untouched.stat().st_mtime == 1  # done inputs are not rewritten
    assert files_of(out) == local_reference  # the stale temporary file is gone too


def test_unreadable_input_is_reported_and_exits_1(ray_instance, model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "good.png", seed=1)
    (folder / "broken.png").write_bytes(b"not a png at all")
    code, output = translate(model, folder, "-s", 1, *RAY_ARGS, "-o", tmp_path / "out")
    assert code == EXIT_SOME_INPUTS_FAILED, output
    assert "2 inputs: 1 translated, 0 already done, 1 failed" in output
    assert "broken.png: not an image munit-rt reads" in output
    assert (tmp_path / "out/good/style_00.png").is_file() and not (tmp_path / "out/broken").exists()


def test_missing_ray_exits_2_naming_the_extra(model, inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, output = translate(model, inputs, "-s", 1, "--engine", "ray", "-o", tmp_path / "out")
    assert code == EXIT_USAGE
    assert "install munit-rt[ray]" in output
    assert not (tmp_path / "out").exists()  # nothing listed or written before the check


@pytest.mark.parametrize("args, message", [
    (["--workers", 2], "--workers applies to --engine ray only"),
    (["--address", "auto", "--gpus-per-worker", 1], "--address, --gpus-per-worker apply to --engine ray only"),
])
def test_ray_options_need_the_ray_engine(model, inputs, tmp_path, args, message):
    code, output = translate(model, inputs, *args, "-o", tmp_path / "out")
    assert code == EXIT_USAGE and message in output


@pytest.mark.parametrize("args, message", [
    (["--gpus-per-worker", 1], "--gpus-per-worker 1 x 1 worker needs 1 GPU; Ray sees 0"),
    (["--workers", 3], "--workers 3 (1 CPU each) needs 3 CPUs; Ray sees 2"),
])
def test_more_workers_than_a_local_instance_has_are_a_usage_error(ray_instance, model, inputs, tmp_path, args,
                                                                 message):
    """Not a run that waits forever for resources that nothing can add to a local instance."""
    code, output = translate(model, inputs, "--engine", "ray", *args, "-o", tmp_path / "out")
    assert code == EXIT_USAGE and message in output, output


@pytest.fixture(scope="module")
def stargan_bundle(tmp_path_factory) -> Path:
    """The tiny StarGAN of test_families_runtime (attributes Black_Hair, Blond_Hair, Male), exported here."""
    torch = pytest.importorskip("torch", reason="the StarGAN bundle is exported here (pip install 'munit-rt[export]')")
    pytest.importorskip("onnx", reason="the StarGAN bundle is exported here (pip install 'munit-rt[export]')")
    from test_families_runtime import STARGAN, family_config

    from munit_rt.export import export_bundle
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.families.stargan.model import build_generator

    root = tmp_path_factory.mktemp("stargan_ray")
    config = family_config(STARGAN)
    torch.manual_seed(12)
    ckpt = root / "stargan_00000030.pt"
    save_checkpoint(ckpt, "stargan", {"G": build_generator(config).eval()}, config, iteration=30)
    return export_bundle(ckpt, root / "stargan.bundle", precision="fp32")


def test_stargan_sweep_with_grids_matches_the_local_engine(ray_instance, stargan_bundle, inputs, tmp_path):
    args = [inputs, "-r", "--from-attrs", "Black_Hair", "--grid", "--layout", "official", "-b", 4]
    assert translate(stargan_bundle, *args, "-o", tmp_path / "local" / "out")[0] == EXIT_OK
    code, output = translate(stargan_bundle, *args, *RAY_ARGS, "-o", tmp_path / "ray" / "out")
    assert code == EXIT_OK, output
    local, ray = files_of(tmp_path / "local"), files_of(tmp_path / "ray")
    assert "out_02/sub/d.png" in ray and "out/sub/d/grid.png" in ray and "out/index.html" in ray
    assert ray == local


@pytest.fixture(scope="module")
def pix2pix_bundle(tmp_path_factory) -> Path:
    """A random-weight pix2pix (unet_128, ngf 2, eval false: each image's own statistics), exported here."""
    pytest.importorskip("torch", reason="the pix2pix bundle is exported here (pip install 'munit-rt[export]')")
    pytest.importorskip("onnx", reason="the pix2pix bundle is exported here (pip install 'munit-rt[export]')")
    from munit_rt.export.random_bundle import random_bundle

    config = {"netG": "unet_128", "ngf": 2, "ndf": 2, "load_size": 142, "crop_size": 128}
    return random_bundle("pix2pix", tmp_path_factory.mktemp("pix2pix_ray"), config=config, seed=4)


def test_pix2pix_with_grids_matches_the_local_engine(ray_instance, pix2pix_bundle, inputs, tmp_path):
    """One output per input through the one generator; batches of 4 mix images that the local run batches
    differently, which per-image statistics must not notice."""
    args = [inputs, "-r", "--grid"]
    assert translate(pix2pix_bundle, *args, "-b", 3, "-o", tmp_path / "local" / "out")[0] == EXIT_OK
    code, output = translate(pix2pix_bundle, *args, "-b", 4, *RAY_ARGS, "-o", tmp_path / "ray" / "out")
    assert code == EXIT_OK, output
    local, ray = files_of(tmp_path / "local"), files_of(tmp_path / "ray")
    assert "out/sub/d.png" in ray and "out/sub/d/grid.png" in ray and "out/index.html" in ray
    assert ray == local


def test_a_backend_the_workers_cannot_open_leaves_no_output_folder(ray_instance, model, inputs, tmp_path):
    """The actors open the model during setup, before anything is written: a backend missing on the workers
    is a setup error (exit 2, one line naming the worker), and the output folder is not left behind."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here: the workers could open it")
    code, output = translate(model, inputs, *MUNIT_ARGS, *RAY_ARGS, "--backend", "tensorrt", "-o", tmp_path / "out")
    assert code == EXIT_USAGE, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "tensorrt" in errors[0] and "(on a Ray worker)" in errors[0], output
    assert not (tmp_path / "out").exists()
