"""The benchmark scripts, run as scripts (`python bench/X.py`, never imported): bench/engines.py --quick on a tiny
random-weight bundle of every registered family (every CPU engine in one interleaved run, int8 on a quantized copy),
its reports, --merge with the targets, the PyTorch FP16 channels-last engine on the CPU, the TensorRT engines on the
fakes of tests/fakes/tensorrt.py; bench/translate_cpu.py end to end. Also the library pieces the benchmarks rest
on: munit_rt.export.flops against PyTorch's own FLOP counter on every family's graphs and on a recorded job, and
ONNX Runtime's I/O-binding path against its numpy path."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the random-weight bundles are exported from torch modules")
pytest.importorskip("onnx", reason="the bundles are ONNX graphs")
pytest.importorskip("matplotlib", reason="bench/engines.py plots with matplotlib")

from contract.conftest import tiny_config  # noqa: E402 - the contract suite's tiny config per family
from munit_rt.training.registry import families, get_family  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FAMILIES = sorted(families())
ALL = ("official", "torch-eager", "torch-compile", "torch-fp16-channels-last", "torch-compile-fp16", "ort-fp32",
       "ort-fp32-direct", "ort-cuda-fp32", "ort-cuda-fp16", "tensorrt-fp32", "tensorrt-fp16", "openvino-fp32",
       "openvino-bf16", "openvino-int8", "ort-int8")  # bench/engines.py's ENGINES, written out independently
QUICK = tuple(k for k in ALL if k != "torch-compile")  # torch.compile left out here: minutes of inductor compiling
GPU_ONLY = {"torch-fp16-channels-last", "torch-compile-fp16", "ort-cuda-fp32", "ort-cuda-fp16", "tensorrt-fp32",
            "tensorrt-fp16"}
pytestmark = pytest.mark.slow


def bench(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, f"bench/{script}", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, dict]:
    """Per family: one `engines.py --quick` run on its tiny config (JSON, Markdown, PNG, and the bundle)."""
    runs = {}
    for name in FAMILIES:
        out = tmp_path_factory.mktemp(f"quick_{name}")
        bench("engines.py", "--quick", "--family", name, "--config", json.dumps(tiny_config(get_family(name))),
              "--work-dir", out / "work", "--out", out / "r", "--engines", ",".join(QUICK))
        results = json.loads((out / "r.json").read_text())
        runs[name] = {"json": out / "r.json", "plot": out / "r.png", "results": results,
                      "text": (out / "r.md").read_text(), "bundle": Path(results["meta"]["bundle"])}
    return runs


@pytest.mark.parametrize("family", FAMILIES)
def test_every_cpu_engine_is_measured_in_one_run(quick, family):
    results = quick[family]["results"]
    assert results["meta"]["family"] == family
    multiple = json.loads((quick[family]["bundle"] / "manifest.json").read_text())["spatial_multiple"]
    assert results["settings"]["batches"] == [1, 2]  # --quick's size 32, brought to the bundle's multiple
    assert results["settings"]["size"] == max(multiple, round(32 / multiple) * multiple)
    openvino = importlib.util.find_spec("openvino") is not None
    measured = set(QUICK) - GPU_ONLY - ({"openvino-bf16"} if openvino else {k for k in QUICK if "openvino" in k})
    assert measured <= set(results["engines"]) <= set(QUICK) - GPU_ONLY
    for key in results["engines"]:
        rows = [r for r in results["results"] if r["engine"] == key]
        assert [r["batch"] for r in rows] == [1, 2], key
        for row in rows:
            assert "error" not in row, row
            assert len(row["graph_s"]) == len(row["job_s"]) == 2  # --quick: 2 rounds
            assert row["job_median_s"] >= row["job_best_s"] > 0 and row["outputs_per_s"] > 0
            assert row["gflops"] > 0 and row["roof_share"] > 0 and row["x_official"] > 0 and row["x_eager"] > 0
    from munit_rt import Bundle
    from munit_rt.export.flops import graph_flops

    bundle, size = Bundle(quick[family]["bundle"]), results["settings"]["size"]
    for batch, job in results["jobs"].items():  # the main graph: the most FLOPs among the calls the job made
        flops: dict[str, int] = {}
        for graph, rows in job["calls"]:
            shapes = {t.name: t.shape_at(rows, size, multiple) for t in bundle.graphs[graph].inputs}
            flops[graph] = flops.get(graph, 0) + graph_flops(bundle.graph_path(graph, "fp32"), shapes).total
        assert job["main_graph"] == max(flops, key=flops.get)
        assert job["gflop"] == pytest.approx(sum(flops.values()) / 1e9)
        assert job["rows"] == min(int(batch), sum(r for g, r in job["calls"] if g == job["main_graph"]))
    official = [r for r in results["results"] if r["engine"] == "official" and r["batch"] == 2]
    assert official[0]["graph_calls"] == results["jobs"]["2"]["rows"]  # the official loop: one call per row
    assert {"ort_fp32", "ort_int8", "numpy_fp32"} <= set(results["roofs"])
    assert results["roofs"]["numpy_fp32"]["method"].startswith("numpy (")
    for row in results["results"]:  # same weights, same inputs as the eager reference
        if row["engine"] in ("ort-fp32", "ort-fp32-direct", "official"):
            assert row["rel_err"] < 1e-4 and (row["psnr_db"] is None or row["psnr_db"] > 60), row
        if row["engine"] in ("ort-int8", "openvino-int8"):
            assert row["psnr_db"] > 20, row
    assert "int8" in results["meta"]["quality_recorded"]  # the bundle copy was quantized for the run


@pytest.mark.parametrize("family", FAMILIES)
def test_skipped_engines_say_why(quick, family):
    results = quick[family]["results"]
    skipped = {s["engine"]: s["reason"] for s in results["skipped"]}
    assert all(reason.strip() for reason in skipped.values())
    assert set(skipped) | set(results["engines"]) == set(QUICK)
    if "tensorrt-fp16" not in skipped:
        pytest.skip("TensorRT can run on this machine")
    assert "tensorrt" in skipped["tensorrt-fp32"].lower() and "tensorrt" in skipped["tensorrt-fp16"].lower()
    assert [t["status"] for t in results["targets"]] == ["not measured", "not measured"]
    size = results["settings"]["size"]  # pix2pix's unet_256 runs at 256x256 even in --quick
    why = f"{size}x{size}, not 256x256" if size != 256 else "TensorRT FP16 skipped"
    assert all(why in t["detail"] for t in results["targets"]), results["targets"]


@pytest.mark.parametrize("family", FAMILIES)
def test_markdown_has_a_row_per_engine_and_batch(quick, family):
    run = quick[family]
    text, results = run["text"], run["results"]
    header = next(line for line in text.splitlines() if line.startswith("| engine |"))
    for row in results["results"]:
        label = results["engines"][row["engine"]]["label"]
        (line,) = [x for x in text.splitlines() if x.startswith(f"| {label} | {row['batch']} |")]
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == header.count("|") - 1 and float(cells[4].replace(",", "")) > 0
    for skipped in results["skipped"]:
        assert f"- {skipped['label']}: skipped ({skipped['reason']})" in text
    assert "Targets:" in text


@pytest.mark.parametrize("family", FAMILIES)
def test_plot_is_a_png(quick, family):
    from PIL import Image

    with Image.open(quick[family]["plot"]) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
        image.verify()


# --------------------------------------------------------------------------------- the targets and --merge


def _with_target_rows(results: dict, job_s: float, graph_s: float) -> dict:
    """A run at 256x256 with eager FP32 and TensorRT FP16 rows at batch 32 (seconds made up: eager's job 1.0 s)."""
    results = json.loads(json.dumps(results))
    results["settings"]["size"] = 256
    results["jobs"]["32"] = {**results["jobs"]["2"], "rows": 32, "outputs": 32}
    eager = next(r for r in results["results"] if r["engine"] == "torch-eager")
    results["results"] = [{**eager, "engine": key, "batch": 32, "job_s": [job], "graph_s": [graph]}
                          for key, job, graph in (("torch-eager", 1.0, 0.9), ("tensorrt-fp16", job_s, graph_s))]
    results["engines"]["tensorrt-fp16"] = {**results["engines"]["torch-eager"], "precision": "fp16",
                                           "label": "TensorRT FP16", "device": "cuda (TensorRT)"}
    results["skipped"] = [s for s in results["skipped"] if s["engine"] != "tensorrt-fp16"]
    return results


def test_merge_derives_the_targets_again(quick, tmp_path):
    base = quick[FAMILIES[0]]["results"]
    for job_s, graph_s, statuses in ((0.3, 0.27, ["met", "met"]), (0.4, 0.2, ["not met", "not met"])):
        first, second = tmp_path / "a.json", tmp_path / "b.json"
        made_up = _with_target_rows(base, job_s, graph_s)
        first.write_text(json.dumps({**made_up, "results": made_up["results"][:1]}))
        second.write_text(json.dumps({**made_up, "results": made_up["results"][1:]}))
        bench("engines.py", "--merge", second, first, "--out", tmp_path / "m")
        merged = json.loads((tmp_path / "m.json").read_text())
        assert [r["engine"] for r in merged["results"] if r["batch"] == 32] == ["torch-eager", "tensorrt-fp16"]
        assert [t["status"] for t in merged["targets"]] == statuses
        assert merged["targets"][0]["value"] == pytest.approx(1.0 / job_s)  # x eager's outputs/s
        assert merged["targets"][1]["value"] == pytest.approx(graph_s / job_s)  # job images/s / main graph's
        assert "| TensorRT FP16 | 32 |" in (tmp_path / "m.md").read_text()


# ------------------------------------------------------------------------------ translate_cpu.py


def test_translate_cpu_times_the_official_loop_and_munit_rt_end_to_end(tmp_path):
    pytest.importorskip("openvino", reason="the --also run (installed by the dev extra)")
    bench("translate_cpu.py", "--family", "munit", "--config", json.dumps(tiny_config(get_family("munit"))),
          "--images", 2, "--size", 32, "--styles", 3, "--also", "openvino:fp32,openvino:int8", "--work-dir",
          tmp_path / "work",
          "--json", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["job"]["outputs"] == 2 * 3
    for key in ("official_pytorch_eager", "munit_rt_onnxruntime"):
        assert results[key]["wall_s"] > 0 and "munit-rt translate --backend" in results[key]["command"]
    assert results["speedup"] == pytest.approx(results["official_pytorch_eager"]["wall_s"]
                                               / results["munit_rt_onnxruntime"]["wall_s"])
    also = results["also"]["openvino-fp32"]  # the same graphs in fp32: the PNGs agree to a level or so
    assert also["png_psnr_db"] is None or also["png_psnr_db"] > 45
    assert also["png_p999_levels"] <= 1
    int8 = results["also"]["openvino-int8"]  # quantized graphs: the PNGs measurably differ, and are compared
    assert int8["png_psnr_db"] is not None and 15 < int8["png_psnr_db"] < 80 and int8["png_p999_levels"] >= 1


def test_memory_reports_each_runs_peak_resident_memory(tmp_path):
    bench("memory.py", "--family", "munit", "--config", json.dumps(tiny_config(get_family("munit"))), "--counts",
          100, 200, "--styles", 2, "--work-dir", tmp_path / "work", "--json", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["images"] for r in results] == [100, 200]
    for run in results:  # every image translated once per style, in a fresh process each
        assert run["translated"] == run["images"] and run["failed"] == 0 and run["files"] == 2 * run["images"]
        assert run["peak_rss_kib"] >= run["rss_after_imports_kib"] > 10 * 1024
    assert sorted(p.name for p in (tmp_path / "work" / "images").iterdir()) == ["000", "001"]  # 100 per folder


# ------------------------------------------------------------------------------ configurations meant for GPUs


def _half_conv_on_cpu() -> str | None:
    import torch

    try:
        torch.nn.functional.conv2d(torch.ones(1, 2, 4, 4).half(), torch.ones(2, 2, 3, 3).half())
    except RuntimeError as exc:
        return f"this torch has no FP16 convolution on the CPU ({exc})"
    return None


@pytest.mark.parametrize("family", FAMILIES)
def test_torch_fp16_channels_last_matches_fp32_on_the_cpu(quick, family, tmp_path):
    """The CUDA configuration run on the CPU (--torch-device cpu): the family's FP16 path (MUNIT keeps its
    LayerNorm in FP32) against eager FP32 on the same job."""
    reason = _half_conv_on_cpu()
    if reason:
        pytest.skip(reason)
    bench("engines.py", "--quick", "--bundle", quick[family]["bundle"], "--torch-device", "cpu", "--engines",
          "torch-eager,torch-fp16-channels-last", "--rounds", 1, "--out", tmp_path / "r")
    results = json.loads((tmp_path / "r.json").read_text())
    rows = [r for r in results["results"] if r["engine"] == "torch-fp16-channels-last"]
    assert [r["batch"] for r in rows] == [1, 2]
    assert "channels-last" in results["engines"]["torch-fp16-channels-last"]["device"]
    for row in rows:
        assert row["rel_err"] < 1e-2 and row["psnr_db"] > 50, row


def test_tensorrt_engines_on_fake_tensorrt(tmp_path):
    """bench/engines.py on the fake TensorRT and cuda-python: engines for the measured shapes, the main graph
    timed, and the job through the TensorRT backend. The child starts the script as `python bench/engines.py`
    would (its folder first on sys.path), with tests/ importable as under pytest, after installing the fakes."""
    from fakes import tensorrt as trt_fakes

    bundle = trt_fakes.write_fake_bundle(tmp_path / "fake.bundle")
    args = ["--bundle", str(bundle), "--engines", "tensorrt-fp32,tensorrt-fp16", "--batches", "1,3", "--size", "16",
            "--quick", "--out", str(tmp_path / "r")]
    child = ("import runpy, sys\n"
             "import pytest\n"
             "from fakes import tensorrt as trt_fakes\n"
             "from munit_rt.backends.tensorrt import TensorRTBackend\n"
             "patch = pytest.MonkeyPatch()\n"
             "trt_fakes.install(patch)\n"
             "patch.setattr(TensorRTBackend, 'unavailable_reason', classmethod(lambda cls: None))\n"
             f"sys.argv = ['bench/engines.py', *{args!r}]\n"
             "sys.path[0] = 'bench'\n"
             "runpy.run_path('bench/engines.py', run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert set(results["engines"]) == {"tensorrt-fp32", "tensorrt-fp16"}
    assert results["engines"]["tensorrt-fp16"]["device"].startswith("cuda (TensorRT")
    assert sorted((r["engine"], r["batch"]) for r in results["results"]) == [
        ("tensorrt-fp16", 1), ("tensorrt-fp16", 3), ("tensorrt-fp32", 1), ("tensorrt-fp32", 3)]
    for row in results["results"]:
        assert "error" not in row, row
        assert row["outputs_per_s"] > 0 and row["graph_median_s"] > 0
    for batch in (1, 3):  # the fake bundle is MUNIT-shaped: one image x 8 styles, decoded in calls of at most B rows
        decodes = [rows for graph, rows in results["jobs"][str(batch)]["calls"] if graph == "decoder_b"]
        assert len(decodes) == -(-8 // batch) and sum(decodes) == 8
    assert "engines" in {p.name for p in bundle.iterdir()}


# ------------------------------------------------------------------------------ the library pieces used here


@pytest.mark.parametrize("family", FAMILIES)
def test_exported_graph_flops_match_pytorch_counter(quick, family):
    """munit_rt.export.flops on every graph of the family's bundle against PyTorch's own FLOP counter
    (torch.utils.flop_counter: every aten convolution, transposed ones included, and matmul) run on the module
    export traced, at its trace inputs."""
    import onnx
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from munit_rt import Bundle
    from munit_rt.export.flops import graph_flops
    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.registry import load_generators

    bundle = Bundle(quick[family]["bundle"])
    ckpt = read_checkpoint(bundle.manifest.source.path)
    specs = get_family(family).graphs(load_generators(ckpt), ckpt.config)
    assert {spec.name for spec in specs} == set(bundle.graphs)
    for spec in specs:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            spec.module(*spec.example_inputs)
        shapes = {t.name: tuple(x.shape) for t, x in zip(spec.inputs, spec.example_inputs)}
        counted = graph_flops(onnx.load_from_string(bundle.graph_bytes(spec.name, "fp32")), shapes)
        assert counted.total == counter.get_total_flops() > 0, spec.name


@pytest.mark.parametrize("family", FAMILIES)
def test_onnxruntime_io_binding_job_equals_the_numpy_path(quick, family):
    """The job with ONNX Runtime values kept as OrtValues (I/O binding, CPU here; CUDA's path) and rows gathered by
    the backend's Gather graph, against plain numpy feeds."""
    from munit_rt import Bundle, Translator
    from munit_rt.backends.onnxruntime import CPU_PROVIDER, OnnxRuntimeBackend
    from munit_rt.translate.options import TranslateOptions

    bundle = Bundle(quick[family]["bundle"])
    options = TranslateOptions(inputs=[], batch_size=3).for_family(bundle.spec, lambda note: None)
    plan = bundle.spec.plan(bundle, options)
    size = bundle.manifest.preprocess.size
    images = np.random.default_rng(0).uniform(-1, 1, (2, plan.channels, size, size)).astype(np.float32)
    outputs = {}
    for io_binding in (False, True):
        backend = OnnxRuntimeBackend(bundle, "fp32", providers=[CPU_PROVIDER], io_binding=io_binding)
        with Translator(bundle, backend=backend) as translator:
            outputs[io_binding] = plan.run(translator, images, ["x/a.png", "x/b.png"])
    assert outputs[True].shape == outputs[False].shape and outputs[True].shape[0] == 2
    np.testing.assert_allclose(outputs[True], outputs[False], rtol=0, atol=1e-6)


def test_recorded_calls_give_the_munit_jobs_flops(quick):
    """munit_rt.export.flops.recorded_calls on the MUNIT job (1 image x 8 styles, --batch-size 3): the calls it
    makes, as the job is written (content once, the style MLP on all 8 codes, decodes of at most 3 rows), and
    calls_flops = rows x one row's FLOPs (graph_flops at batch 1) per graph; run() is restored afterwards."""
    from munit_rt import Bundle, Translator
    from munit_rt.export.flops import bundle_flops, calls_flops, graph_flops, recorded_calls
    from munit_rt.translate.options import TranslateOptions

    if "munit" not in quick:
        pytest.skip("MUNIT is not registered")
    bundle = Bundle(quick["munit"]["bundle"])
    options = TranslateOptions(inputs=[], styles=8, batch_size=3).for_family(bundle.spec, lambda note: None)
    plan = bundle.spec.plan(bundle, options)
    size = bundle.manifest.preprocess.size
    image = np.zeros((1, plan.channels, size, size), np.float32)
    with Translator(bundle, backend="onnxruntime") as translator:
        plan.prepare(translator)
        with recorded_calls(translator.backend) as calls:
            plan.run(translator, image, ["a.png"])
        assert "run" not in vars(translator.backend)
    graphs = {name.rsplit("_", 1)[0]: name for name, _ in calls}  # this direction's graph of each role
    assert sorted(calls) == sorted([(graphs["content_encoder"], 1), (graphs["style_mlp"], 8),
                                    (graphs["decoder"], 3), (graphs["decoder"], 3), (graphs["decoder"], 2)])
    per_row = bundle_flops(bundle, size)
    for name, count in per_row.items():
        shapes = {t.name: t.shape_at(1, size, bundle.manifest.spatial_multiple) for t in bundle.graphs[name].inputs}
        assert count.total == graph_flops(bundle.graph_path(name, "fp32"), shapes).total
    assert calls_flops(calls, per_row) == {graphs["content_encoder"]: per_row[graphs["content_encoder"]].total,
                                           graphs["style_mlp"]: 8 * per_row[graphs["style_mlp"]].total,
                                           graphs["decoder"]: 8 * per_row[graphs["decoder"]].total}
