"""bench/throughput.py's CycleGAN/StarGAN runners one by one on tiny exported bundles: the job against
Translator.generate, the FP16 channels-last path, checkpoint resolution, and TensorRT on the fake engines of
tests/test_tensorrt_offline.py. The harness runs on these families are in tests/test_bench.py."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("torch", reason="the tiny models are built with torch")
pytest.importorskip("onnx", reason="the bundles are exported to ONNX")

from bench._runners import make_workload  # noqa: E402
from test_bench import FAMILY_CONFIGS, export_family  # noqa: E402

try:  # the TensorRT/CUDA fakes of the TensorRT tests drive the TensorRT runner without a GPU
    import test_tensorrt_offline as trt_offline
    from test_tensorrt_offline import fakes  # noqa: F401 - fixture
except ImportError:
    trt_offline = None


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """Per family: {ckpt, gens, config, bundle} of a tiny random-weight model (export_family)."""
    return {family: export_family(tmp_path_factory.mktemp(family), family, seed)
            for seed, family in enumerate(FAMILY_CONFIGS)}


def model_of(path: Path):
    from bench._model import family_model
    from munit_rt.bundle import Bundle

    bundle = Bundle(path)
    return family_model(bundle, bundle.manifest["source_checkpoint"], None)


def test_torch_job_agrees_with_translator_generate(families):
    """The PyTorch job (host loop over batches of B) agrees with ONNX Runtime's Translator.generate; B=1 < N=2."""
    from bench._gen_runners import OrtCpuGenRunner, TorchGenRunner

    model = model_of(families["stargan"]["bundle"])
    work = make_workload(model, batch=2, size=32, styles=8, rotate=2)
    work.batch = 1  # the job: two generator calls of one image each
    outputs = {}
    for runner in (TorchGenRunner(model, "t", "t", "cpu"), OrtCpuGenRunner(model)):
        runner.open()
        runner.load(work)
        outputs[type(runner).__name__] = runner.job(1).copy(), runner.decode_numpy(runner.generate(1))
        runner.unload()
        runner.close()
    (job_t, gen_t), (job_o, gen_o) = outputs["TorchGenRunner"], outputs["OrtCpuGenRunner"]
    assert job_t.shape == job_o.shape == gen_t.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(job_o, job_t, atol=1e-4)
    np.testing.assert_allclose(gen_o, gen_t, atol=1e-4)
    np.testing.assert_allclose(job_t, gen_t, atol=1e-5)  # the job runs on the stage's images with the same label


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_fp16_channels_last_torch_runner_matches_fp32(families, family):
    """The FP16 channels-last generator path (CUDA's torch-fp16-channels-last, run on the CPU here)."""
    from bench._gen_runners import TorchGenRunner

    model = model_of(families[family]["bundle"])
    work = make_workload(model, batch=2, size=32, styles=8, rotate=2)
    outputs = {}
    for half in (False, True):
        runner = TorchGenRunner(model, "t", "t", "cpu", half=half, channels_last=half)
        runner.open()
        runner.load(work)
        outputs[half] = (runner.job(1).copy(), runner.decode_numpy(runner.generate(1)))
        runner.unload()
        runner.close()
    for ref, got in zip(outputs[False], outputs[True]):
        assert ref.shape == got.shape == (2, 3, 32, 32) and got.dtype == np.float32
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 2e-2


def test_checkpoints_missing_or_not_the_exported_one(families, tmp_path):
    """A missing source file is a checkpoint_problem (the PyTorch runners are skipped); a file whose sha256 is not
    the manifest's is refused when loaded (reported as skipped too), unless given with --checkpoint."""
    import copy

    import torch

    from bench._model import family_model
    from bench._runners import Unavailable
    from munit_rt.training.checkpoint import save_checkpoint

    exported = families["cyclegan"]
    model = model_of(exported["bundle"])
    assert model.checkpoint_problem is None and set(model.load_generators()) == {"G_A", "G_B"}
    bundle = model.bundle
    source = dict(bundle.manifest["source_checkpoint"], path=str(tmp_path / "gone.pt"), files=[])
    assert "not found" in family_model(bundle, source, None).checkpoint_problem
    retrained = tmp_path / "cyclegan_00000011.pt"
    gens = copy.deepcopy(exported["gens"])
    with torch.no_grad():
        next(gens["G_A"].parameters()).add_(1.0)
    save_checkpoint(retrained, "cyclegan", gens, exported["config"], iteration=11)
    with pytest.raises(Unavailable, match="sha256"):
        family_model(bundle, {"path": str(retrained)}, None).load_generators()
    assert set(family_model(bundle, {}, retrained).load_generators()) == {"G_A", "G_B"}  # --checkpoint


@pytest.mark.skipif(trt_offline is None, reason="tests/test_tensorrt_offline.py (the TensorRT fakes) is missing")
def test_tensorrt_generator_runner_with_fake_tensorrt(families, fakes, monkeypatch, tmp_path):
    """StarGAN on fake engines: rotating image and label buffers, then Translator.generate after the restore."""
    import shutil

    from bench._gen_runners import TensorRTGenRunner
    from munit_rt.backends.tensorrt import TensorRTBackend

    monkeypatch.setattr(TensorRTBackend, "unavailable_reason", classmethod(lambda cls: None))
    monkeypatch.setitem(trt_offline.IO, "generator", ([("image", ["N", 3, "H", "W"]), ("label", ["N", 3])],
                                                      [("output", ["N", 3, "H", "W"])]))
    munit_graph = trt_offline.fake_graph

    def fake_graph(role, feeds):  # a generator whose output depends on the image and on the label
        if role != "generator":
            return munit_graph(role, feeds)
        shift = feeds["label"] @ np.array([1.0, 2.0, 4.0], np.float32)
        return {"output": (0.5 * feeds["image"] + shift[:, None, None, None]).astype(np.float32)}

    monkeypatch.setattr(trt_offline, "fake_graph", fake_graph)
    shutil.copytree(families["stargan"]["bundle"], tmp_path / "stargan.bundle")  # the engine cache goes here
    model = model_of(tmp_path / "stargan.bundle")
    runner = TensorRTGenRunner(model, "fp32", [1, 3], size=16)
    runner.open()
    assert runner.build_note.startswith("engine build of generator")
    for batch in (1, 3):
        work = make_workload(model, batch, 16, styles=8, rotate=2)
        runner.load(work)
        for k in (0, 1, 0):
            runner.generate(k)
            runner.sync()
            expected = fake_graph("generator", {"image": work.images[k], "label": work.labels[k]})["output"]
            np.testing.assert_allclose(runner.decode_numpy(None), expected, rtol=1e-6, atol=1e-6)
        for k in (0, 1):
            expected = fake_graph("generator", {"image": work.job_images[k], "label": work.labels[k]})["output"]
            np.testing.assert_allclose(runner.job(k), expected, rtol=1e-6, atol=1e-6)
        runner.unload()
    runner.close()
    assert not fakes.cudart.blocks
