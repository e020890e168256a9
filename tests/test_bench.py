"""The benchmark scripts, run as scripts (`python bench/X.py`, never imported): bench/throughput.py --quick on a
tiny random-weight bundle of every registered family, its reports, the PyTorch FP16 channels-last configuration on
the CPU, the TensorRT configurations on the fakes of tests/fakes/tensorrt.py, and --merge with the targets.
Also the library pieces the benchmarks rest on: munit_rt.export.flops against PyTorch's own FLOP counter on every
family's graphs, and ONNX Runtime's I/O-binding path against its numpy path."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the random-weight bundles are exported from torch modules")
pytest.importorskip("onnx", reason="the bundles are ONNX graphs")
pytest.importorskip("matplotlib", reason="bench/throughput.py plots with matplotlib")

from contract.conftest import tiny_config  # noqa: E402 - the contract suite's tiny config per family
from munit_rt.training.registry import families, get_family  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FAMILIES = sorted(families())
pytestmark = pytest.mark.slow


def bench(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, f"bench/{script}", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, dict]:
    """Per family: one `throughput.py --quick` run on its tiny config (JSON, Markdown, PNG, and the bundle)."""
    runs = {}
    for name in FAMILIES:
        out = tmp_path_factory.mktemp(f"quick_{name}")
        paths = {"json": out / "r.json", "markdown": out / "r.md", "plot": out / "r.png"}
        bench("throughput.py", "--quick", "--family", name, "--config", json.dumps(tiny_config(get_family(name))),
              "--work-dir", out / "work", "--json", paths["json"], "--markdown", paths["markdown"],
              "--plot", paths["plot"])
        results = json.loads(paths["json"].read_text())
        runs[name] = {**paths, "results": results, "text": paths["markdown"].read_text(),
                      "bundle": Path(results["meta"]["bundle"])}
    return runs


@pytest.mark.parametrize("family", FAMILIES)
def test_every_cpu_configuration_has_positive_rates(quick, family):
    results = quick[family]["results"]
    assert results["meta"]["family"] == family
    multiple = results["meta"].get("spatial_multiple") or json.loads((quick[family]["bundle"] / "manifest.json")
                                                                     .read_text())["spatial_multiple"]
    assert results["settings"]["batches"] == [1, 2]  # --quick's size 32, brought to the bundle's multiple
    assert results["settings"]["size"] == max(multiple, round(32 / multiple) * multiple)
    assert {"torch-eager-fp32", "onnxruntime-cpu"} <= set(results["configs"])
    graphs = set(results["graphs"])
    for key, info in results["configs"].items():
        rows = [r for r in results["results"] if r["config"] == key]
        assert [r["batch"] for r in rows] == [1, 2] and info["build_s"] > 0, key
        for row in rows:
            assert "error" not in row, row
            assert row["device"].startswith("cpu") and set(row["graphs"]) == graphs
            job = row["job"]
            assert job["main_graph"] in graphs and row["job_share_of_main"] > 0
            assert sum(c["rows"] for c in job["graph_calls"].values()) >= row["batch"]
            for entry in [job, *row["graphs"].values()]:
                assert entry["images_per_s"] > 0 and entry["samples"] >= 1
                assert entry["p95_ms"] >= entry["p50_ms"] > 0
                assert entry["gflops"] > 0 and entry["roof_share"] > 0 and entry["x_eager_fp32"] > 0
    for key in ("cpu_fp32", "cpu_fp32_numpy"):
        assert results["roofs"][key]["gflops"] > 0
    assert "ONNX Runtime MatMul" in results["roofs"]["cpu_fp32"]["method"]
    assert results["roofs"]["cpu_fp32_numpy"]["method"].startswith("numpy (")
    for row in results["results"]:  # same weights, same inputs as the eager reference
        if row["config"] == "onnxruntime-cpu":
            assert row["job"]["rel_err"] < 1e-4 and row["job"]["psnr_db"] > 60


@pytest.mark.parametrize("family", FAMILIES)
def test_skipped_configurations_say_why(quick, family):
    results = quick[family]["results"]
    skipped = {s["config"]: s["reason"] for s in results["skipped"]}
    assert all(reason.strip() for reason in skipped.values())
    assert set(skipped) | set(results["configs"]) == {
        "torch-eager-fp32", "torch-fp16-channels-last", "torch-compile-fp16", "onnxruntime-cpu",
        "onnxruntime-cuda-fp32", "onnxruntime-cuda-fp16", "tensorrt-fp32", "tensorrt-fp16", "openvino-fp32",
        "openvino-bf16", "openvino-int8"}
    assert "int8 graphs" in skipped["openvino-int8"]  # a random-weight bundle is never quantized
    if "tensorrt-fp16" not in skipped:
        pytest.skip("TensorRT can run on this machine")
    assert "tensorrt" in skipped["tensorrt-fp32"].lower() and "tensorrt" in skipped["tensorrt-fp16"].lower()
    assert [t["status"] for t in results["targets"]] == ["not measured", "not measured"]


@pytest.mark.parametrize("family", FAMILIES)
def test_markdown_has_a_row_per_configuration_and_batch(quick, family):
    run = quick[family]
    text, results = run["text"], run["results"]
    header = next(line for line in text.splitlines() if line.startswith("| config |"))
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| config |")]
    for row in results["results"]:
        (line,) = [x for x in rows if x.startswith(f"| {row['config']} | {row['batch']} |")]
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == header.count("|") - 1 and float(cells[2].replace(",", "")) > 0
    for graph in results["graphs"]:
        assert any(line.startswith(f"| {graph} | onnxruntime-cpu | 2 |") for line in rows)
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


def _with_target_rows(results: dict, job: float, main: float) -> dict:
    """A run at 256x256 with eager FP32 and TensorRT FP16 rows at batch 32 (rates made up)."""
    results = json.loads(json.dumps(results))
    results["settings"]["size"] = 256
    main_graph = results["results"][0]["job"]["main_graph"]
    eager = next(r for r in results["results"] if r["config"] == "torch-eager-fp32")
    rows = []
    for key, job_rate, main_rate in (("torch-eager-fp32", 10.0, 12.0), ("tensorrt-fp16", job, main)):
        row = json.loads(json.dumps(eager))
        row.update(config=key, batch=32, device="cuda" if key.startswith("tensorrt") else eager["device"])
        row["job"]["images_per_s"], row["graphs"][main_graph]["images_per_s"] = job_rate, main_rate
        rows.append(row)
    results["results"] = rows
    results["configs"]["tensorrt-fp16"] = {**results["configs"]["torch-eager-fp32"], "precision": "fp16",
                                           "label": "TensorRT FP16"}
    results["skipped"] = [s for s in results["skipped"] if s["config"] != "tensorrt-fp16"]
    return results


def test_merge_derives_the_targets_again(quick, tmp_path):
    base = quick[FAMILIES[0]]["results"]
    for job, main, statuses in ((31.0, 35.0, ["met", "met"]), (29.0, 40.0, ["not met", "not met"])):
        first, second = tmp_path / "a.json", tmp_path / "b.json"
        made_up = _with_target_rows(base, job, main)
        first.write_text(json.dumps({**made_up, "results": made_up["results"][:1]}))
        second.write_text(json.dumps({**made_up, "results": made_up["results"][1:]}))
        bench("throughput.py", "--merge", second, first, "--json", tmp_path / "m.json", "--markdown", tmp_path / "m.md")
        merged = json.loads((tmp_path / "m.json").read_text())
        assert [r["config"] for r in merged["results"]] == ["torch-eager-fp32", "tensorrt-fp16"]
        assert [t["status"] for t in merged["targets"]] == statuses
        assert merged["targets"][0]["value"] == pytest.approx(job / 10.0)
        assert merged["targets"][1]["value"] == pytest.approx(job / main)
        assert "tensorrt-fp16 | 32 |" in (tmp_path / "m.md").read_text()


# ------------------------------------------------------------------------------ engines_cpu.py: one run, all engines

ENGINES = ("official", "torch-eager", "ort-fp32", "ort-fp32-direct", "openvino-fp32", "openvino-bf16",
           "openvino-int8", "ort-int8")  # torch.compile left out here: minutes of inductor compiling


def test_engines_cpu_quick_measures_every_engine_in_one_run(tmp_path):
    pytest.importorskip("openvino", reason="the OpenVINO contenders (installed by the dev extra)")
    out = tmp_path / "engines"
    bench("engines_cpu.py", "--quick", "--rounds", "1", "--work-dir", tmp_path / "work", "--out", out,
          "--contenders", ",".join(ENGINES))
    results = json.loads(Path(f"{out}.json").read_text())
    skipped = {s["contender"]: s["reason"] for s in results["skipped"]}
    assert set(results["results"]) | set(skipped) == set(ENGINES) and set(skipped) <= {"openvino-bf16"}, skipped
    for key, entry in results["results"].items():
        assert entry["graph_median_s"] > 0 and entry["job_median_s"] > 0 and entry["x_official"] > 0, key
        assert entry["gflops"] > 0 and entry["roof_share"] > 0 and len(entry["job_s"]) == 1, key
    assert results["results"]["official"]["graph_calls"] == results["main_graph"]["rows"] > 1
    assert results["results"]["ort-fp32"]["psnr_db"] > 60  # against PyTorch eager FP32: the same job
    assert results["results"]["openvino-int8"]["psnr_db"] > 20 and "int8 executed" in \
        results["results"]["openvino-int8"]["device"]
    assert {"ort_fp32", "ort_int8", "openvino_fp32", "openvino_int8", "numpy_fp32"} <= set(results["roofs"])
    assert "int8" in results["meta"]["quality_recorded"]  # the bundle copy was quantized for the run
    text = Path(f"{out}.md").read_text()
    assert all(f"| {entry['label']} |" in text for entry in results["results"].values())
    from PIL import Image

    with Image.open(f"{out}.png") as image:
        assert image.format == "PNG" and image.width > 100


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
    bench("throughput.py", "--quick", "--bundle", quick[family]["bundle"], "--torch-device", "cpu", "--backends",
          "torch-eager-fp32,torch-fp16-channels-last", "--graphs", "none", "--json", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())
    rows = [r for r in results["results"] if r["config"] == "torch-fp16-channels-last"]
    assert [r["batch"] for r in rows] == [1, 2]
    assert "channels-last" in results["configs"]["torch-fp16-channels-last"]["device"]
    for row in rows:
        assert row["job"]["rel_err"] < 1e-2 and row["job"]["psnr_db"] > 50, row["job"]


def test_tensorrt_configurations_on_fake_tensorrt(tmp_path):
    """bench/throughput.py on the fake TensorRT and cuda-python: engines for the measured shapes, every graph
    timed, and the job through the TensorRT backend. The child starts the script as `python bench/throughput.py`
    would (its folder first on sys.path), with tests/ importable as under pytest, after installing the fakes."""
    from fakes import tensorrt as trt_fakes

    bundle = trt_fakes.write_fake_bundle(tmp_path / "fake.bundle")
    args = ["--bundle", str(bundle), "--backends", "tensorrt-fp32,tensorrt-fp16", "--batches", "1,3", "--size", "16",
            "--quick", "--json", str(tmp_path / "r.json")]
    child = ("import runpy, sys\n"
             "import pytest\n"
             "from fakes import tensorrt as trt_fakes\n"
             "from munit_rt.backends.tensorrt import TensorRTBackend\n"
             "patch = pytest.MonkeyPatch()\n"
             "trt_fakes.install(patch)\n"
             "patch.setattr(TensorRTBackend, 'unavailable_reason', classmethod(lambda cls: None))\n"
             f"sys.argv = ['bench/throughput.py', *{args!r}]\n"
             "sys.path[0] = 'bench'\n"
             "runpy.run_path('bench/throughput.py', run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert set(results["configs"]) == {"tensorrt-fp32", "tensorrt-fp16"}
    assert results["configs"]["tensorrt-fp16"]["device"].startswith("cuda (TensorRT")
    assert sorted((r["config"], r["batch"]) for r in results["results"]) == [
        ("tensorrt-fp16", 1), ("tensorrt-fp16", 3), ("tensorrt-fp32", 1), ("tensorrt-fp32", 3)]
    for row in results["results"]:
        assert "error" not in row, row
        assert set(row["graphs"]) == set(results["graphs"])
        assert all(e["images_per_s"] > 0 for e in [row["job"], *row["graphs"].values()])
        # the fake bundle is MUNIT-shaped: one image x 8 styles, its 8 outputs decoded in calls of at most B rows
        assert row["job"]["graph_calls"]["decoder_b"] == {"calls": -(-8 // row["batch"]), "rows": 8}
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
