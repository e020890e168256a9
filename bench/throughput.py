"""Throughput of every backend on this machine for one bundle: images/s, latency, GFLOP/s, memory, build time.

    .venv/bin/python bench/throughput.py [--bundle B.bundle] [--batches 1,8,32,64] [--size 256] [--styles 8]
        [--json out.json] [--markdown out.md] [--plot out.png] [--quick]

Backends (each skipped, with the reason printed, where it cannot run): PyTorch eager FP32, PyTorch FP16
channels-last (CUDA), torch.compile FP16 with CUDA graphs (CUDA), ONNX Runtime CPU, ONNX Runtime CUDA with
I/O binding (FP32, FP16), TensorRT FP32 and FP16 through munit_rt's backend (engine build time recorded).
Per backend and batch: images/s of the content encoder, the decoder and the whole translate job (MUNIT), or
of one generator call and the whole Translator.generate job (CycleGAN, StarGAN: encode/decode are n/a);
p50/p95 latency per call; device memory peak; achieved GFLOP/s from the exact FLOPs of the graphs
(export/flops.py) and its share of the matmul rate measured in the same run; ratios against PyTorch eager
FP32. Without --bundle a random-weight MUNIT at the official default config is built and exported into a
temporary directory. Prints numbers only; the README targets are reported as met / not met / not measured.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import _report, _timing  # noqa: E402
from bench._model import model_context  # noqa: E402
from bench._runners import ModelInfo, Runner, Unavailable, make_workload  # noqa: E402
from bench._workload import flops_summary, stage_flops  # noqa: E402

BACKEND_KEYS = ("torch-eager-fp32", "torch-fp16-channels-last", "torch-compile-fp16", "onnxruntime-cpu",
                "onnxruntime-cuda-fp32", "onnxruntime-cuda-fp16", "tensorrt-fp32", "tensorrt-fp16")
# machine -> batches, size, repeats, warmup, budget_s (seconds of timed calls per point before stopping early)
DEFAULTS = {"cuda": ([1, 8, 32, 64], 256, 20, 3, 3.0), "cpu": ([1, 8], 128, 5, 1, 20.0),
            "quick": ([1, 2], 32, 2, 1, 5.0)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="bundle to measure (default: build a random-weight default model)")
    p.add_argument("--checkpoint", type=Path, help="its checkpoint for the PyTorch backends (default: the "
                   "manifest's source_checkpoint files)")
    p.add_argument("--batches", help="comma-separated batch sizes (default 1,8,32,64 with a GPU, 1,8 on CPU)")
    p.add_argument("--size", type=int, help="image side (default 256 with a GPU, 128 on CPU)")
    p.add_argument("--styles", type=int, default=8, help="styles per image in the translate job (MUNIT)")
    p.add_argument("--repeats", type=int, help="timed calls per point (median reported)")
    p.add_argument("--warmup", type=int, help="untimed calls before timing")
    p.add_argument("--rotate", type=int, default=3, help="distinct preallocated input sets cycled through")
    p.add_argument("--budget-s", type=float, help="stop timing a point after this many seconds (>= 1 sample)")
    p.add_argument("--cpu-max-batch", type=int, default=8, help="largest batch for CPU backends when a GPU is present")
    p.add_argument("--backends", help="comma-separated backend keys to run (default: all that can run)")
    p.add_argument("--precision", choices=("auto", "fp32", "both"), default="auto",
                   help="graphs to export for the default model (auto: both when an FP16 backend can run)")
    p.add_argument("--compile-mode", choices=("reduce-overhead", "max-autotune"), default="reduce-overhead")
    p.add_argument("--tf32", action="store_true", help="let PyTorch FP32 use TF32 (its default); off: true FP32")
    p.add_argument("--rebuild-engines", action="store_true", help="rebuild TensorRT engines to time the build")
    p.add_argument("--work-dir", type=Path, help="keep the default model here (reused when its config matches)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model (dim 8), 32x32, batches 1,2, 2 repeats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--markdown", type=Path, help="write the Markdown table here (it is always printed)")
    p.add_argument("--plot", type=Path, help="write a PNG of images/s against batch here")
    return p.parse_args(argv)


def resolve_settings(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    batches, size, repeats, warmup, budget = DEFAULTS["quick" if args.quick else "cuda" if cuda else "cpu"]
    if args.batches:
        batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    settings = {"batches": batches, "size": args.size or size, "styles": args.styles,
                "repeats": args.repeats or repeats, "warmup": warmup if args.warmup is None else args.warmup,
                "rotate": max(1, args.rotate), "budget_s": args.budget_s or budget, "cpu_max_batch": args.cpu_max_batch,
                "compile_mode": args.compile_mode, "tf32": args.tf32, "seed": args.seed}
    if min(batches) < 1 or args.styles < 1:
        raise SystemExit("--batches and --styles must be positive")
    unknown = {b.strip() for b in (args.backends or "").split(",") if b.strip()} - set(BACKEND_KEYS)
    if unknown:
        raise SystemExit(f"--backends: unknown {', '.join(sorted(unknown))} (known: {', '.join(BACKEND_KEYS)})")
    return settings


# -------------------------------------------------------------------------------------------- backends


def plan_backends(model: ModelInfo, settings: dict[str, Any], cuda: bool, only: set[str] | None,
                  rebuild: bool) -> tuple[list[Runner], list[dict[str, str]]]:
    """Runners for every backend that can run here, and the skipped ones with the reason."""
    if model.generator_only:  # CycleGAN, StarGAN: the generator-only runners
        from bench._gen_runners import OrtCpuGenRunner as OrtCpuRunner
        from bench._gen_runners import OrtCudaGenRunner as OrtCudaRunner
        from bench._gen_runners import TensorRTGenRunner as TensorRTRunner
        from bench._gen_runners import TorchGenRunner as TorchRunner
    else:
        from bench._gpu_runners import OrtCudaRunner, TensorRTRunner
        from bench._runners import OrtCpuRunner, TorchRunner

    torch_reason = None if importlib.util.find_spec("torch") else "torch is not installed"
    torch_reason = torch_reason or model.checkpoint_problem
    no_cuda = "CUDA only; no CUDA GPU visible to torch"
    import onnxruntime

    ort_cuda = (None if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else
                "onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
    from munit_rt.backends.tensorrt import TensorRTBackend

    mode, device = settings["compile_mode"], "cuda" if cuda else "cpu"
    cuda_torch = torch_reason or (None if cuda else no_cuda)
    no_triton = None if importlib.util.find_spec("triton") else "triton is not installed"
    eager, compiled = f"PyTorch eager FP32 ({device})", f"torch.compile FP16 ({mode}, CUDA graphs)"
    plan = [  # (key, label, why it cannot run or None, runner factory); the eager FP32 reference first
        ("torch-eager-fp32", eager, torch_reason,
         lambda: TorchRunner(model, "torch-eager-fp32", eager, device, tf32=settings["tf32"])),
        ("torch-fp16-channels-last", "PyTorch FP16 channels-last", cuda_torch,
         lambda: TorchRunner(model, "torch-fp16-channels-last", "PyTorch FP16 channels-last", "cuda", half=True,
                             channels_last=True)),
        ("torch-compile-fp16", compiled, cuda_torch or no_triton,
         lambda: TorchRunner(model, "torch-compile-fp16", compiled, "cuda", half=True, channels_last=True,
                             compile_mode=mode)),
        ("onnxruntime-cpu", OrtCpuRunner.label, None, lambda: OrtCpuRunner(model)),
    ]
    for precision in ("fp32", "fp16"):
        missing = None if precision in model.bundle.precisions else f"the bundle has no {precision} graphs"
        plan.append((f"onnxruntime-cuda-{precision}", OrtCudaRunner.label_for(precision),
                     ort_cuda or (None if cuda else no_cuda) or missing, lambda p=precision: OrtCudaRunner(model, p)))
    for precision in ("fp32", "fp16"):
        missing = None if precision in model.bundle.precisions else f"the bundle has no {precision} graphs"
        plan.append((f"tensorrt-{precision}", f"TensorRT {precision.upper()}", TensorRTBackend.unavailable_reason()
                     or missing, lambda p=precision: TensorRTRunner(model, p, settings["batches"], settings["size"],
                                                                   rebuild)))
    assert [key for key, *_ in plan] == list(BACKEND_KEYS)
    runners, skipped = [], []
    for key, label, reason, factory in plan:
        if only is not None and key not in only:
            reason = "not selected (--backends)"
        if reason:
            skipped.append({"backend": key, "label": label, "reason": reason})
        else:
            runners.append(factory())
    return runners, skipped


# ---------------------------------------------------------------------------------------------- running


def measure_batch(runner: Runner, work: Any, settings: dict[str, Any], flops: dict[str, float],
                  check: bool) -> tuple[dict[str, Any], Any]:
    """One backend at one batch: the family's stages (encode, decode | generate), then the job; returns the row
    and (if `check`) the last stage's output."""
    s, stages = settings, runner.model.stages
    timing = dict(sync=runner.sync, repeats=s["repeats"], rotate=s["rotate"], budget_s=s["budget_s"])
    runner.memory_reset()
    runner.load(work)
    row = {"backend": runner.key, "label": runner.label, "device": runner.device, "precision": runner.precision,
           "batch": work.batch, "job_images": work.job_count, "job_outputs": work.job_outputs}
    row.update({stage: "n/a" for stage in ("encode", "decode") if stage not in stages})
    warm: dict[str, float] = {}
    reference_output = None
    for stage in (*stages, "job"):
        call, warmup, first_index = getattr(runner, stage), s["warmup"], 0
        if stage == "job" and runner.device != "cuda" and not runner.model.generator_only:
            warmup = 0  # MUNIT's CPU job (S decoder calls per image) reuses the shapes the stage warm-ups ran
        started = time.perf_counter()
        if stage == stages[-1]:  # its first (warm-up) call is also the parity check at the smallest batch
            first = call(0)
            runner.sync()
            reference_output = runner.decode_numpy(first) if check else None
            warmup, first_index = max(0, warmup - 1), 1
        samples = _timing.measure(call, warmup=warmup, first_index=first_index, **timing)
        warm[stage] = time.perf_counter() - started - sum(samples)
        row[stage] = _timing.summarize(samples, work.job_outputs if stage == "job" else work.batch, flops[stage])
    row.update(warmup_s=warm, memory={"peak_bytes": runner.memory_peak(), "method": runner.memory_method})
    runner.unload()
    return row, reference_output


def run_backends(runners: list[Runner], model: ModelInfo, settings: dict[str, Any], cuda: bool,
                 results: dict[str, Any]) -> None:
    import numpy as np

    workloads: dict[int, Any] = {}
    flop_cache: dict = {}
    size, styles = settings["size"], settings["styles"]
    reference: tuple[str, np.ndarray] | None = None
    for runner in runners:
        print(f"{runner.label}: opening ...", flush=True)
        try:
            runner.open()
        except Unavailable as exc:
            results["skipped"].append({"backend": runner.key, "label": runner.label, "reason": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - one broken backend must not end the run
            results["skipped"].append({"backend": runner.key, "label": runner.label,
                                       "reason": f"failed to open: {type(exc).__name__}: {exc}"})
            continue
        warm_total = 0.0
        for batch in settings["batches"]:
            if runner.device == "cpu" and cuda and batch > settings["cpu_max_batch"]:
                results["notes"].append(f"{runner.key}: batch {batch} not run (CPU backend, --cpu-max-batch "
                                        f"{settings['cpu_max_batch']})")
                continue
            work = workloads.get(batch) or workloads.setdefault(
                batch, make_workload(model, batch, size, styles, settings["rotate"], settings["seed"]))
            flops = stage_flops(model, flop_cache, work, size)
            check = batch == settings["batches"][0]
            try:
                row, output = measure_batch(runner, work, settings, flops, check)
            except Exception as exc:  # noqa: BLE001 - record, skip this backend's larger batches
                results["results"].append({"backend": runner.key, "label": runner.label, "device": runner.device,
                                           "precision": runner.precision, "batch": batch,
                                           "error": f"{type(exc).__name__}: {exc}"})
                print(f"  batch {batch}: failed: {type(exc).__name__}: {exc}", flush=True)
                break
            if output is not None:
                if reference is None:
                    reference = (runner.key, output)
                    row["parity_reference"] = True
                else:
                    ref = reference[1]
                    row["parity_rel_err"] = float(np.linalg.norm(output - ref) / np.linalg.norm(ref))
                    row["parity_against"] = reference[0]
                    row["parity_nan"] = bool(np.isnan(output).any())
            warm_total += sum(row["warmup_s"].values())
            results["results"].append(row)
            rates = ", ".join(f"{stage} {row[stage]['images_per_s']:.2f}" for stage in (*model.stages, "job"))
            print(f"  batch {batch}: {rates} images/s", flush=True)
        build_s = runner.build_s
        if runner.key == "torch-compile-fp16":  # compilation happens in the first calls at each shape
            build_s = (build_s or 0.0) + warm_total
            runner.build_note = "module load + every warm-up call (compilation and CUDA graph capture per shape)"
        results["backends"][runner.key] = {"label": runner.label, "device": runner.device,
                                           "precision": runner.precision, "build_s": build_s,
                                           "build_note": runner.build_note, "memory_method": runner.memory_method}
        runner.close()


def machine_meta(cuda: bool) -> dict[str, Any]:
    import onnxruntime

    from munit_rt.backends.onnxruntime import physical_cores

    meta = {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "cpu": platform.processor() or platform.machine(), "physical_cores": physical_cores(),
            "logical_cpus": os.cpu_count()}
    try:
        import torch

        meta.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if cuda:
            meta["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    meta["load_before"] = load_average()
    gpu = f", {meta['gpu']}" if "gpu" in meta else ", no GPU"
    meta["machine"] = f"{meta['physical_cores']} physical CPU cores ({meta['logical_cpus']} logical){gpu}"
    return meta


def load_average() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cuda = _timing.cuda_present()
    settings = resolve_settings(args, cuda)
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": machine_meta(cuda), "settings": settings, "results": [], "skipped": [],
                               "backends": {}, "notes": []}
    with model_context(args, settings, cuda) as model:
        if settings["size"] % model.multiple:
            raise SystemExit(f"--size {settings['size']} must be a multiple of {model.multiple}")
        results["meta"].update(model=settings.pop("model"), export_s=settings.pop("export_s"),
                               bundle_precisions=model.bundle.precisions, family=model.family,
                               stages=[*model.stages, "job"], graphs=model.stage_graphs,
                               timing=("host perf_counter between device synchronisations, median of up to "
                                       f"{settings['repeats']} calls after {settings['warmup']} warm-up(s), "
                                       f"{settings['rotate']} rotating input sets"))
        if model.family == "cyclegan":
            results["meta"]["direction"] = model.direction
        if model.family == "stargan":
            name, vector = model.label()
            results["meta"]["label"] = {"attribute": name, "vector": vector.tolist(),
                                        "note": "first label of the sweep (upstream create_labels from all zeros), "
                                                "the same for every image"}
        results["roofs"] = {"cpu_fp32": _timing.cpu_matmul_rate()}
        if cuda:
            results["roofs"].update(cuda_fp32=_timing.cuda_matmul_rate("fp32"), cuda_fp16=_timing.cuda_matmul_rate("fp16"))
        only = {b.strip() for b in args.backends.split(",") if b.strip()} if args.backends else None
        runners, results["skipped"] = plan_backends(model, settings, cuda, only, args.rebuild_engines)
        for skipped in results["skipped"]:
            print(f"{skipped['label']}: skipped ({skipped['reason']})", flush=True)
        run_backends(runners, model, settings, cuda, results)
        # the CPU is often shared: measure its roof again after the runs and keep the higher of the two
        before, after = results["roofs"]["cpu_fp32"], _timing.cpu_matmul_rate()
        results["roofs"]["cpu_fp32"] = max(before, after, key=lambda r: r["gflops"])
        results["roofs"]["cpu_fp32"]["measurements_gflops"] = [before["gflops"], after["gflops"]]
        results["flops"] = flops_summary(model, settings["size"])
    results["meta"]["wall_s"] = time.perf_counter() - started
    results["meta"]["load_after"] = load_average()
    _report.add_derived(results)
    table = _report.markdown(results)
    print("\n" + table)
    for path, text in ((args.json, json.dumps(results, indent=2)), (args.markdown, table)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.plot:
        _report.plot(results, args.plot)
    return results


if __name__ == "__main__":
    main()
