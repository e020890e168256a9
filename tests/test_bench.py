"""bench/throughput.py in --quick mode on the CPU backends (the default MUNIT and tiny CycleGAN and StarGAN
bundles), and export/flops.py against independent counts."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("torch", reason="the harness builds its model with torch")
pytest.importorskip("onnx", reason="export/flops.py reads ONNX graphs")
pytest.importorskip("matplotlib", reason="the harness plots with matplotlib")

from bench import _report  # noqa: E402
from bench._runners import ModelInfo, TorchRunner, make_workload  # noqa: E402
from munit_rt.export.flops import graph_flops, run_for_shapes  # noqa: E402

try:  # the TensorRT/CUDA fakes of the TensorRT tests drive the TensorRT runner without a GPU
    import test_tensorrt_offline as trt_offline
    from test_tensorrt_offline import fake_bundle, fakes  # noqa: F401 - fixtures
except ImportError:
    trt_offline = None


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One in-process --quick run (tiny model exported once into work/, kept for the FLOP tests)."""
    from bench.throughput import main

    out = tmp_path_factory.mktemp("bench")
    paths = {"json": out / "r.json", "markdown": out / "r.md", "plot": out / "r.png", "work": out / "work"}
    returned = main(["--quick", "--work-dir", str(paths["work"]), "--json", str(paths["json"]),
                     "--markdown", str(paths["markdown"]), "--plot", str(paths["plot"])])
    return paths, returned


def test_json_has_the_cpu_backends_with_positive_rates(quick):
    paths, returned = quick
    results = json.loads(paths["json"].read_text())
    assert results["settings"]["batches"] == [1, 2] and results["settings"]["size"] == 32
    for backend in ("torch-eager-fp32", "onnxruntime-cpu"):
        rows = [r for r in results["results"] if r["backend"] == backend]
        assert [r["batch"] for r in rows] == [1, 2], backend
        for row in rows:
            assert "error" not in row, row
            for stage in ("encode", "decode", "job"):
                assert row[stage]["images_per_s"] > 0 and row[stage]["samples"] >= 1
                assert row[stage]["p95_ms"] >= row[stage]["p50_ms"] > 0
                assert row[stage]["gflops"] > 0 and 0 < row[stage]["roof_share"]
            assert row["job"]["x_eager_fp32"] > 0
    assert results["roofs"]["cpu_fp32"]["gflops"] > 0
    ort = next(r for r in results["results"] if r["backend"] == "onnxruntime-cpu" and r["batch"] == 1)
    assert ort["parity_rel_err"] < 1e-4  # same weights, same inputs as the eager reference
    assert returned["results"] == results["results"]


def test_skipped_backends_name_tensorrt_with_a_reason(quick):
    results = json.loads(quick[0]["json"].read_text())
    trt = [s for s in results["skipped"] if s["backend"].startswith("tensorrt")]
    if not trt:
        pytest.skip("TensorRT can run on this machine")
    assert {s["backend"] for s in trt} == {"tensorrt-fp32", "tensorrt-fp16"}
    assert all(s["reason"].strip() for s in trt)
    statuses = [t["status"] for t in results["targets"]]
    assert statuses == ["not measured", "not measured"]


def test_markdown_has_a_row_per_measured_backend_and_batch(quick):
    paths, _ = quick
    text = paths["markdown"].read_text()
    results = json.loads(paths["json"].read_text())
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| backend")]
    measured = [(r["backend"], r["batch"]) for r in results["results"]]
    assert len(rows) == len(measured) >= 4
    for backend, batch in measured:
        assert sum(line.startswith(f"| {backend} | {batch} |") for line in rows) == 1
    for skipped in results["skipped"]:
        assert f"- {skipped['label']}: skipped ({skipped['reason']})" in text


def test_plot_is_a_png(quick):
    from PIL import Image

    with Image.open(quick[0]["plot"]) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
        image.verify()


# ------------------------------------------------------------------------------------------------ flops


def _conv_gemm_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 2, 3, 3)).astype(np.float32), "w")  # Cin 4, groups 2
    g = numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "g")        # transB
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["y"], ["p"], axes=[2, 3], keepdims=0),
             helper.make_node("Gemm", ["p", "g"], ["z"], transB=1)]
    graph = helper.make_graph(nodes, "conv_gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 5])], [w, g])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_flops_of_a_hand_built_conv_and_gemm():
    n, cin, h, w, cout, groups, k, units = 3, 4, 20, 14, 8, 2, 3, 5
    hout, wout = (h + 2 - k) // 2 + 1, (w + 2 - k) // 2 + 1
    conv = 2 * cin // groups * k * k * cout * hout * wout * n
    gemm = 2 * n * units * cout  # M = N rows, N = units, K = cout
    count = graph_flops(_conv_gemm_model(), {"x": (n, cin, h, w)})
    assert count.by_op == {"Conv": conv, "Gemm": gemm}
    assert count.total == conv + gemm
    assert count.uncounted == {"ReduceMean": 1}
    assert "counted as 0: ReduceMean x1" in count.describe()


def _conv_transpose_model(groups: int):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 6 // groups, 3, 3)).astype(np.float32), "w")
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=groups, strides=[2, 2], pads=[1, 1, 1, 1],
                            output_padding=[1, 1])
    graph = helper.make_graph([node, helper.make_node("Relu", ["y"], ["z"])], "conv_transpose",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 6, "H2", "W2"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("groups", [1, 2])
def test_flops_of_a_hand_built_conv_transpose(groups):
    n, cin, cout, h, w, k = 3, 4, 6, 5, 7, 3
    expected = 2 * cin * cout // groups * k * k * h * w * n  # every input pixel scatters a k x k patch
    count = graph_flops(_conv_transpose_model(groups), {"x": (n, cin, h, w)})
    assert count.by_op == {"ConvTranspose": expected} and count.nodes == {"ConvTranspose": 1}
    assert count.total == expected and count.uncounted == {"Relu": 1}
    shapes = run_for_shapes(_conv_transpose_model(groups), {"x": (n, cin, h, w)}, ["y"])
    assert shapes == {"y": (n, cout, 2 * h, 2 * w)}  # (5-1)*2 - 2 + 3 + 1


def test_shapes_by_running_agree_with_inference():
    shapes = run_for_shapes(_conv_gemm_model(), {"x": (3, 4, 20, 14)}, ["y", "p"])
    assert shapes == {"y": (3, 8, 10, 7), "p": (3, 8)}


def _pytorch_flops(module, *inputs) -> int:
    """2 x multiply-accumulates of every nn.Conv2d / nn.ConvTranspose2d / nn.Linear actually run, from hooks."""
    import torch

    total = [0]

    def hook(layer, args, output):
        if isinstance(layer, torch.nn.ConvTranspose2d):  # each input element times (Cout/groups) x kh x kw
            kh, kw = layer.kernel_size
            total[0] += 2 * args[0].numel() * (layer.out_channels // layer.groups) * kh * kw
        elif isinstance(layer, torch.nn.Conv2d):
            kh, kw = layer.kernel_size
            total[0] += 2 * output.numel() * (layer.in_channels // layer.groups) * kh * kw
        else:
            total[0] += 2 * output.numel() * layer.in_features

    layers = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, layers)]
    with torch.inference_mode():
        module(*inputs)
    for handle in handles:
        handle.remove()
    return total[0]


def _dispatch_flops(module, *inputs) -> int:
    """FLOPs as PyTorch's own counter sees them: every aten convolution and matmul, functional calls included."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("precision", ["fp32"])
def test_flops_of_exported_graphs_match_pytorch_hooks(quick, precision):
    import torch

    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.families.munit.subpixel import SubpixelDecoder
    from munit_rt.training.registry import load_generators

    work = quick[0]["work"]
    gens = load_generators(read_checkpoint(work / "gen_00000000.pt"))
    bundle = work / "bench.bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    n, size, m = 2, 48, manifest["spatial_multiple"]
    content = torch.randn(n, manifest["content_channels"], size // m, size // m)
    adain = torch.randn(n, manifest["adain"]["total"])
    image, style = torch.rand(n, 3, size, size) * 2 - 1, torch.randn(n, manifest["style_dim"])
    # the bundle's decoder is the sub-pixel rewrite (export default): its convolutions are functional calls
    assert manifest["graphs"]["decoder_b"]["upsample"] == "subpixel"
    decoder = SubpixelDecoder(gens["b"].dec)
    assert _dispatch_flops(gens["b"].dec, content, adain) == _pytorch_flops(gens["b"].dec, content, adain)
    cases = [("decoder_b", decoder, _dispatch_flops, (content, adain),
              {"content": content.shape, "adain_params": adain.shape}),
             ("content_encoder_a", gens["a"].enc_content, _pytorch_flops, (image,), {"image": image.shape}),
             ("style_mlp_b", gens["b"].mlp, _pytorch_flops, (style,), {"style": style.shape})]
    for graph, module, pytorch_count, inputs, shapes in cases:
        expected = pytorch_count(module, *inputs)
        counted = graph_flops(bundle / precision / f"{graph}.onnx", {k: tuple(v) for k, v in shapes.items()})
        assert counted.total == expected > 0, graph


def test_targets_are_met_not_met_or_not_measured():
    def row(backend, job, decode):
        entry = lambda rate: {"images_per_s": rate, "p50_ms": 1.0, "p95_ms": 1.0}  # noqa: E731
        return {"backend": backend, "label": backend, "device": "cuda", "precision": "fp16", "batch": 32,
                "encode": entry(1.0), "decode": entry(decode), "job": entry(job)}

    def results(trt_job, trt_decode):
        return {"settings": {"size": 256, "batches": [32]}, "skipped": [], "roofs": {},
                "results": [row("torch-eager-fp32", 10.0, 12.0), row("tensorrt-fp16", trt_job, trt_decode)]}

    met = results(31.0, 35.0)
    _report.add_derived(met)
    assert [t["status"] for t in met["targets"]] == ["met", "met"]
    assert met["targets"][0]["value"] == pytest.approx(3.1)
    missed = results(29.0, 40.0)
    _report.add_derived(missed)
    assert [t["status"] for t in missed["targets"]] == ["not met", "not met"]
    other_size = results(31.0, 35.0)
    other_size["settings"]["size"] = 128
    _report.add_derived(other_size)
    assert [t["status"] for t in other_size["targets"]] == ["not measured", "not measured"]


# ----------------------------------------------------------------------------- runners that need a GPU here


def test_fp16_channels_last_torch_runner_matches_fp32(quick):
    """The FP16 channels-last job path (run on the CPU here; CUDA on a GPU machine) against eager FP32."""
    from munit_rt.bundle import Bundle

    work_dir = quick[0]["work"]
    model = ModelInfo(Bundle(work_dir / "bench.bundle"), work_dir / "gen_00000000.pt")
    work = make_workload(model, batch=2, size=32, styles=3, rotate=2)
    outputs = {}
    for half in (False, True):
        runner = TorchRunner(model, "t", "t", "cpu", half=half, channels_last=half)
        runner.open()
        runner.load(work)
        outputs[half] = (runner.job(1).copy(), runner.decode_numpy(runner.decode(1)))
        runner.unload()
        runner.close()
    (job32, dec32), (job16, dec16) = outputs[False], outputs[True]
    assert job32.shape == (1, 3, 3, 32, 32) and dec32.shape == (2, 3, 32, 32)
    for ref, got in ((job32, job16), (dec32, dec16)):
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 2e-2


@pytest.mark.skipif(trt_offline is None, reason="tests/test_tensorrt_offline.py (the TensorRT fakes) is missing")
def test_tensorrt_runner_with_fake_tensorrt(fake_bundle, fakes, monkeypatch):
    """Rotating stage buffers, address restore before the job, and the job's batch cut, on fake engines."""
    from collections import Counter

    from bench._gpu_runners import TensorRTRunner
    from munit_rt.backends.tensorrt import TensorRTBackend

    monkeypatch.setattr(TensorRTBackend, "unavailable_reason", classmethod(lambda cls: None))
    model = ModelInfo(fake_bundle, None)
    runner = TensorRTRunner(model, "fp16", [1, 4], size=16)
    runner.open()
    assert runner.build_s is not None and runner.build_note.startswith("engine build")
    for batch in (1, 4):
        work = make_workload(model, batch, 16, styles=3, rotate=2)
        runner.load(work)
        for k in (0, 1, 0):
            runner.encode(k)
            runner.decode(k)
            runner.sync()
            expected = trt_offline.fake_graph("decoder", {"content": work.content[k], "adain_params": work.adain[k]})
            np.testing.assert_allclose(runner.decode_numpy(None), expected["output"], rtol=1e-5, atol=1e-6)
            encoder = runner.runners["content_encoder_a"]
            content = encoder.download_async("content")
            encoder.sync()
            expected = trt_offline.fake_graph("content_encoder", {"image": work.images[k]})["content"]
            np.testing.assert_allclose(content, expected, rtol=1e-5, atol=1e-6)
        for k in (0, 1):
            fakes.cudart.copies.clear()
            got = runner.job(k)
            expected = trt_offline.reference_translate(work.job_images[k], work.job_codes[k])
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            downloads = Counter(kind for kind, _ in fakes.cudart.copies)["D2H"]
            assert downloads == -(-work.job_outputs // batch)  # decoded in batches of B, not the engine max
        runner.unload()
    runner.close()
    assert not fakes.cudart.blocks


# ------------------------------------------------------------------------------- CycleGAN and StarGAN bundles

# the tiny configs of tests/test_export_families.py
FAMILY_CONFIGS = {
    "cyclegan": {"family": "cyclegan", "ngf": 8, "ndf": 8, "n_blocks": 2, "load_size": 36, "crop_size": 32},
    "stargan": {"family": "stargan", "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 2, "d_repeat_num": 3,
                "image_size": 32, "crop_size": 40, "selected_attrs": ["Black_Hair", "Male", "Gray_Hair"]},
}
FAMILY_GRAPHS = {"cyclegan": "generator_a2b", "stargan": "generator"}


def export_family(root: Path, family: str, seed: int) -> dict:
    """A random-weight munit-rt checkpoint of `family` and its FP32 bundle in `root`: {ckpt, gens, config, bundle}."""
    import torch

    from munit_rt.export import export_bundle
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.registry import get_family

    config = config_from_dict(FAMILY_CONFIGS[family], source="test")
    torch.manual_seed(seed)
    keys = ("G_A", "G_B") if family == "cyclegan" else ("G",)
    gens = {key: get_family(family).build_generator(config, key).eval() for key in keys}
    ckpt = root / f"{family}_00000010.pt"
    save_checkpoint(ckpt, family, gens, config, iteration=10)
    bundle = export_bundle(ckpt, root / f"{family}.bundle", precision="fp32")
    return {"ckpt": ckpt, "gens": gens, "config": config, "bundle": bundle}


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    """Per family: a tiny bundle (export_family) and one --quick run with --bundle on it (with a 256^3 matmul
    roof: the 2048^3 one, timed twice per run, is most of a run's time here and is covered by the MUNIT run)."""
    from bench import _timing
    from bench.throughput import main

    runs = {}
    for seed, family in enumerate(FAMILY_CONFIGS):
        root = tmp_path_factory.mktemp(family)
        exported = export_family(root, family, seed)
        bundle = exported["bundle"]
        paths = {"json": root / "r.json", "markdown": root / "r.md", "plot": root / "r.png"}
        with pytest.MonkeyPatch.context() as patch:
            roof = _timing.cpu_matmul_rate
            patch.setattr(_timing, "cpu_matmul_rate", lambda: roof(n=256, repeats=2))
            main(["--quick", "--bundle", str(bundle), "--json", str(paths["json"]),
                  "--markdown", str(paths["markdown"]), "--plot", str(paths["plot"])])
        runs[family] = {**exported, **paths,
                        "results": json.loads(paths["json"].read_text()), "text": paths["markdown"].read_text()}
    return runs


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_family_json_has_generate_and_job_rates(family_runs, family):
    results = family_runs[family]["results"]
    assert results["meta"]["family"] == family and results["meta"]["stages"] == ["generate", "job"]
    assert results["meta"]["graphs"] == {"generate": FAMILY_GRAPHS[family]}
    for backend in ("torch-eager-fp32", "onnxruntime-cpu"):
        rows = [r for r in results["results"] if r["backend"] == backend]
        assert [r["batch"] for r in rows] == [1, 2], (backend, rows)
        for row in rows:
            assert "error" not in row, row
            assert row["encode"] == row["decode"] == "n/a"
            assert row["job_images"] == row["job_outputs"] == row["batch"]
            for stage in ("generate", "job"):
                assert row[stage]["images_per_s"] > 0 and row[stage]["samples"] >= 1
                assert row[stage]["gflops"] > 0 and row[stage]["roof_share"] > 0
                assert row[stage]["x_eager_fp32"] > 0
            assert row["job_share_of_generate"] > 0
    ort = next(r for r in results["results"] if r["backend"] == "onnxruntime-cpu" and r["batch"] == 1)
    assert ort["parity_against"] == "torch-eager-fp32" and ort["parity_rel_err"] < 1e-4
    flops = results["flops"]
    assert flops["generate_per_image"] > 0 and "ConvTranspose" not in flops["uncounted_ops"]
    if family == "stargan":  # the first sweep label: Black_Hair set, the other hair colour cleared
        assert results["meta"]["label"]["attribute"] == "Black_Hair"
        assert results["meta"]["label"]["vector"] == [1.0, 0.0, 0.0]
    else:
        assert results["meta"]["direction"] == "a2b"
    assert [t["status"] for t in results["targets"]] == ["not measured", "not measured"]


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_family_markdown_marks_encode_and_decode_na(family_runs, family):
    run = family_runs[family]
    text, results = run["text"], run["results"]
    header = next(line for line in text.splitlines() if line.startswith("| backend"))
    assert header.startswith("| backend | batch | encode img/s | decode img/s | generate img/s | job img/s |")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| backend")]
    assert len(rows) == len(results["results"]) >= 4
    for backend in ("torch-eager-fp32", "onnxruntime-cpu"):
        for batch in (1, 2):
            (line,) = [row for row in rows if row.startswith(f"| {backend} | {batch} |")]
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            assert len(cells) == header.count("|") - 1
            assert cells[2:4] == ["n/a", "n/a"] and float(cells[4].replace(",", "")) > 0
    assert "FLOPs per image: generator" in text
    from PIL import Image

    with Image.open(run["plot"]) as image:
        assert image.format == "PNG" and image.width > 100


def test_family_generator_flops_match_pytorch_hooks(family_runs):
    """ConvTranspose in real graphs: the exported generators against forward hooks on the modules."""
    import torch

    for family, graph, gen, inputs in (
            ("cyclegan", "generator_a2b", family_runs["cyclegan"]["gens"]["G_A"], (torch.rand(2, 3, 36, 44),)),
            ("stargan", "generator", family_runs["stargan"]["gens"]["G"],
             (torch.rand(2, 3, 36, 44), torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])))):
        shapes = {"image": tuple(inputs[0].shape), **({"label": tuple(inputs[1].shape)} if len(inputs) > 1 else {})}
        counted = graph_flops(family_runs[family]["bundle"] / "fp32" / f"{graph}.onnx", shapes)
        assert counted.by_op.get("ConvTranspose", 0) > 0
        assert counted.total == _pytorch_flops(gen, *inputs) > 0, family
