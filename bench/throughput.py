"""Throughput of every backend configuration that can run here, for one bundle: rates, latency, GFLOP/s, memory.

    .venv/bin/python bench/throughput.py [--bundle B | --family F [--config C]] [--batches 1,8,32,64] [--size 256]
        [--styles 8] [--backends KEY,...] [--json r.json] [--markdown r.md] [--plot r.png] [--quick]

Per configuration (CONFIGS) and batch: every graph of the bundle alone, and the family's translate job; what is
measured and reported: bench/README.md. Configurations that cannot run are listed as skipped with the reason.
Numbers are printed, never asserted; the README's targets are reported as met / not met / not measured.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import _report
from _timing import (CPU_ROOFS, DeviceMemory, cuda_roofs, cuda_torch, engine_roofs, gpu_present, keep_higher,
                     load_average, machine, time_calls)
from _workload import (Engine, add_model_options, chosen, compare, each_engine, flops_per_row, job_flops, job_inputs,
                       job_plan, model_bundle, open_translator, recorded_calls, synthetic_feeds, why_not)

CPU, CUDA = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
CONFIGS = (  # the reference first: ratios and errors are against it
    Engine("torch-eager-fp32", "PyTorch eager FP32", "torch", "fp32", {"device": "auto"}),
    Engine("torch-fp16-channels-last", "PyTorch FP16 channels-last", "torch", "fp16",
           {"device": "cuda", "channels_last": True}, ("torch-cuda",)),
    Engine("torch-compile-fp16", "torch.compile FP16 (reduce-overhead: CUDA graphs)", "torch", "fp16",
           {"device": "cuda", "channels_last": True, "compile": "reduce-overhead"}, ("torch-cuda", "triton")),
    Engine("onnxruntime-cpu", "ONNX Runtime CPU FP32", "onnxruntime", "fp32", {"providers": CPU}, ("graphs",)),
    Engine("onnxruntime-cuda-fp32", "ONNX Runtime CUDA FP32 (I/O binding)", "onnxruntime", "fp32",
           {"providers": CUDA, "io_binding": True}, ("ort-cuda", "graphs")),
    Engine("onnxruntime-cuda-fp16", "ONNX Runtime CUDA FP16 (I/O binding)", "onnxruntime", "fp16",
           {"providers": CUDA, "io_binding": True}, ("ort-cuda", "graphs")),
    Engine("tensorrt-fp32", "TensorRT FP32", "tensorrt", "fp32", {}, ("graphs",)),
    Engine("tensorrt-fp16", "TensorRT FP16", "tensorrt", "fp16", {}, ("graphs",)),
    Engine("openvino-fp32", "OpenVINO FP32 (CPU)", "openvino", "fp32", {}, ("graphs",)),
    Engine("openvino-bf16", "OpenVINO BF16 (CPU, native bf16 only)", "openvino", "bf16", {}, ("graphs",)),
    Engine("openvino-int8", "OpenVINO INT8 (CPU; the bundle's int8 graphs)", "openvino", "int8", {}, ("graphs",)),
)
KEYS = tuple(c.key for c in CONFIGS)
# machine -> batches, size, repeats, warm-up calls, seconds of timed calls per point, matmul roof n and best-of
DEFAULTS = {"cuda": ([1, 8, 32, 64], 256, 20, 3, 3.0, 8192, 10), "cpu": ([1, 8], 128, 5, 1, 20.0, 2048, 8),
            "quick": ([1, 2], 32, 2, 1, 5.0, 512, 3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--checkpoint", type=Path, help="the PyTorch configurations' checkpoint (default: the "
                   "manifest's source files)")
    p.add_argument("--batches", help="comma-separated batch sizes (default 1,8,32,64 with a GPU, 1,8 without)")
    p.add_argument("--size", type=int, help="image side (default 256 with a GPU, 128 without)")
    p.add_argument("--styles", type=int, default=8, help="--styles of the translate job (families with styles)")
    p.add_argument("--backends", help=f"comma-separated configurations (default: all: {', '.join(KEYS)})")
    p.add_argument("--graphs", help="comma-separated graphs to time alone (default: all; the job always runs)")
    p.add_argument("--repeats", type=int, help="timed calls per point at most (median reported)")
    p.add_argument("--warmup", type=int, help="untimed calls before timing each point")
    p.add_argument("--rotate", type=int, default=3, help="distinct input sets cycled through")
    p.add_argument("--budget-s", type=float, help="stop timing a point after this many seconds (>= 1 sample)")
    p.add_argument("--cpu-max-batch", type=int, default=8, help="largest batch of CPU configurations with a GPU")
    p.add_argument("--torch-device", choices=("auto", "cpu"), default="auto", help="cpu: every PyTorch "
                   "configuration on the CPU, the CUDA ones too (an accuracy check, not a speed figure)")
    p.add_argument("--tf32", action="store_true", help="let PyTorch FP32 use TF32 (its default); else true FP32")
    p.add_argument("--quick", action="store_true", help="smoke run: 32x32, batches 1,2, 2 repeats, a 512^3 roof, "
                   "the family's tiny_config when it offers one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here (it is always printed)")
    p.add_argument("--plot", type=Path, help="write a PNG of images/s against batch here")
    p.add_argument("--merge", type=Path, nargs="+", metavar="JSON", help="measure nothing: combine earlier runs' "
                   "JSON (e.g. one per --backends group), derive ratios and targets again, write the reports")
    return p.parse_args(argv)


def resolve_settings(args: argparse.Namespace, gpu: bool) -> dict[str, Any]:
    batches, size, repeats, warmup, budget, roof_n, roof_repeats = DEFAULTS["quick" if args.quick else
                                                                            "cuda" if gpu else "cpu"]
    if args.batches:
        batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    if min(batches) < 1 or args.styles < 1:
        raise SystemExit("--batches and --styles must be positive")
    return {"batches": batches, "size": args.size or size, "styles": args.styles, "repeats": args.repeats or repeats,
            "warmup": warmup if args.warmup is None else args.warmup, "rotate": max(1, args.rotate),
            "budget_s": args.budget_s or budget, "cpu_max_batch": args.cpu_max_batch, "seed": args.seed,
            "roof_n": roof_n, "roof_repeats": roof_repeats, "tf32": args.tf32, "torch_device": args.torch_device,
            "configs": chosen(args.backends, KEYS, "--backends"),
            "graphs": [g.strip() for g in args.graphs.split(",")] if args.graphs else None}


# ---------------------------------------------------------------------------------------- configurations


def backend_options(config: Engine, bundle: Any, settings: dict[str, Any], checkpoint: Path | None) -> dict:
    options = dict(config.options)
    if config.backend == "torch":
        options.update({"checkpoint": checkpoint} if checkpoint else {})
        options["device"] = "cpu" if settings["torch_device"] == "cpu" else options["device"]
    if config.backend == "tensorrt":  # engines for exactly the measured shapes
        from munit_rt.tensorrt.profiles import ProfileOptions

        size = settings["size"]
        options["profile"] = ProfileOptions(max_batch=max(settings["batches"]), min_size=size, opt_size=size,
                                            max_size=size)
    return options


# ------------------------------------------------------------------------------------------------ measuring


def measure_config(config: Engine, bundle: Any, settings: dict[str, Any], per_row: dict, references: dict,
                   checkpoint: Path | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open the configuration (timed as its build), then measure every batch; a failing batch is recorded."""
    memory, rows = DeviceMemory(), []
    options = backend_options(config, bundle, settings, checkpoint)
    started = time.perf_counter()
    translator = open_translator(config, bundle, options)
    backend = translator.backend
    try:
        rng = np.random.default_rng(settings["seed"])
        for name, graph in bundle.graphs.items():  # sessions, engines, compilation: all built by a first call
            backend.run(name, synthetic_feeds(graph, settings["batches"][0], settings["size"],
                                              bundle.manifest.spatial_multiple, rng), to_host=False)
        backend.synchronize()
        memory.started(config.backend, backend.device)
        info = {"label": config.label, "backend": config.backend, "precision": config.precision,
                "device": backend.device, "options": {k: str(v) for k, v in options.items()},
                "build_s": time.perf_counter() - started, "memory_method": memory.method}
        for batch in settings["batches"]:
            if backend.device.startswith("cpu") and gpu_present() and batch > settings["cpu_max_batch"]:
                continue
            try:
                rows.append(measure_batch(config, backend, translator, bundle, batch, settings, per_row, memory,
                                          references))
            except Exception as exc:  # noqa: BLE001 - recorded; the other batches and configurations go on
                rows.append({"config": config.key, "batch": batch, "error": f"{type(exc).__name__}: {exc}"})
            _report.progress(rows[-1])
            _release()
    finally:
        translator.close()
        _release()
    return info, rows


def measure_batch(config: Engine, backend: Any, translator: Any, bundle: Any, batch: int, s: dict[str, Any],
                  per_row: dict, memory: DeviceMemory, references: dict) -> dict[str, Any]:
    size, multiple = s["size"], bundle.manifest.spatial_multiple
    rng = np.random.default_rng(s["seed"] + batch)
    row: dict[str, Any] = {"config": config.key, "batch": batch, "device": backend.device, "graphs": {}}
    memory.reset()
    for name, graph in bundle.graphs.items():
        if s["graphs"] and name not in s["graphs"]:
            continue
        sets = [{k: backend.to_device(v) for k, v in synthetic_feeds(graph, batch, size, multiple, rng).items()}
                for _ in range(s["rotate"])]
        timing = time_calls(lambda k: backend.run(name, sets[k], to_host=False), backend.synchronize, s["rotate"],
                            s["warmup"], s["repeats"], s["budget_s"])
        row["graphs"][name] = rates(timing, batch, batch * per_row[name].total)
        memory.sample()
        sets.clear()  # device buffers freed before the next graph's

    plan, notes = job_plan(bundle, batch, s["styles"])
    plan.prepare(translator)
    inputs = job_inputs(plan, batch, size, s["rotate"], s["seed"] + batch)
    with recorded_calls(backend) as calls:
        output = plan.run(translator, *inputs[0])  # the first warm-up call, compared with the reference's
    flops, main = job_flops(calls, per_row)
    timing = time_calls(lambda k: plan.run(translator, *inputs[k]), backend.synchronize, s["rotate"],
                        max(0, s["warmup"] - 1), s["repeats"], s["budget_s"])
    per_graph = {g: [r for n, r in calls if n == g] for g in dict.fromkeys(n for n, _ in calls)}
    job = rates(timing, output.shape[0] * output.shape[1], flops)
    job.update(inputs=len(inputs[0][0]), outputs_per_input=output.shape[1], main_graph=main, notes=notes,
               graph_calls={g: {"calls": len(rows), "rows": sum(rows)} for g, rows in per_graph.items()})
    if config.key == CONFIGS[0].key:
        references[batch] = output
        job["reference"] = True
    elif batch in references:
        job.update(compare(output, references[batch]))
    row["job"] = job
    row["memory"] = {"peak_bytes": memory.peak()}
    return row


def rates(timing: dict[str, Any], outputs: int, flops: int) -> dict[str, Any]:
    return {"images_per_s": outputs / timing["median_s"], "gflops": flops / timing["median_s"] / 1e9, **timing}


def _release() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------------ main


def measure(bundle: Any, settings: dict[str, Any], checkpoint: Path | None) -> dict[str, Any]:
    from munit_rt.backends.onnxruntime import physical_cores

    multiple = bundle.manifest.spatial_multiple  # the size must suit the bundle (e.g. a U-Net's 2**depth)
    settings["size"] = max(multiple, round(settings["size"] / multiple) * multiple)
    per_row = flops_per_row(bundle, settings["size"])
    results: dict[str, Any] = {"settings": settings, "configs": {}, "skipped": [], "results": [],
                               "graphs": {name: {"gflop_per_row": count.total / 1e9, **count.to_dict()}
                                          for name, count in per_row.items()}}
    load_before = load_average()
    n, repeats = settings["roof_n"], settings["roof_repeats"]
    roofs = {**engine_roofs(n, repeats, physical_cores(), CPU_ROOFS), **cuda_roofs(n, repeats)}
    references: dict[int, np.ndarray] = {}
    measured, results["skipped"] = each_engine(
        [c for c in CONFIGS if c.key in settings["configs"]], lambda c: why_not(c, bundle, settings["torch_device"]),
        lambda c: measure_config(c, bundle, settings, per_row, references, checkpoint), "config")
    for key, (info, rows) in measured.items():
        results["configs"][key] = info
        results["results"] += rows
    results["roofs"] = keep_higher(roofs, {**engine_roofs(n, repeats, physical_cores(), CPU_ROOFS),
                                           **cuda_roofs(n, repeats)})
    results["load_average"] = {"before": load_before, "after": load_average()}
    _report.add_derived(results)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.merge:
        results = _report.merge(args.merge, list(KEYS))
        _report.write(results, args.json, args.markdown, args.plot)
        return results
    settings = resolve_settings(args, gpu_present())
    torch = cuda_torch()
    if torch is not None:  # "FP32" means FP32 arithmetic unless --tf32
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32
    fp16 = importlib.util.find_spec("onnxconverter_common") is not None and any(
        c.precision == "fp16" and "graphs" in c.needs and c.key in settings["configs"]
        and why_not(c, None, settings["torch_device"]) is None for c in CONFIGS)
    with tempfile.TemporaryDirectory(prefix="munit-rt-throughput-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        path, what, export_s = model_bundle(args, work, "both" if fp16 else "fp32", tiny=args.quick)
        from munit_rt import Bundle

        bundle = Bundle(path)
        results = measure(bundle, settings, args.checkpoint)
    results["meta"] = {"family": bundle.family, "model": what, "bundle": str(path), "export_s": export_s,
                       "machine": machine(), "timing": _report.TIMING}
    _report.write(results, args.json, args.markdown, args.plot)
    return results


if __name__ == "__main__":
    main()
