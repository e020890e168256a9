"""Every engine that can run here, side by side in one run: the family's translate job and its most expensive graph
on each, at each batch, in interleaved rounds; speed, error, GFLOP/s against the engine's own roof, device memory.

    .venv/bin/python bench/engines.py [--bundle B | --family F [--config C]] [--engines KEY,...] [--batches 8]
        [--size 256] [--rounds 5] [--calibrate DIR] [--out PREFIX] [--quick] | --merge A.json B.json --out PREFIX

Engines (ENGINES), the job, the rounds, the report (PREFIX.json, .md, .png): bench/README.md. Prints numbers,
asserts none: the targets are reported as met / not met / not measured.
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
from _timing import (best_s, cuda_free_bytes, cuda_roofs, cuda_torch, engine_roofs, gpu_present, keep_higher,
                     load_average, machine)
from _workload import (Engine, add_model_options, chosen, compare, describe_job, each_engine, job_inputs, job_plan,
                       model_bundle, open_translator, synthetic_feeds, why_not, with_int8)

CPU, CUDA = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
ENGINES = (  # the official loop: the speed-ups' base; PyTorch eager FP32: the error reference
    Engine("official", "official loop: PyTorch eager FP32, batch 1", "torch", "fp32", {"device": "auto"},
           batch_one=True),
    Engine("torch-eager", "PyTorch eager FP32", "torch", "fp32", {"device": "auto"}),
    Engine("torch-compile", "torch.compile FP32 (inductor, CPU)", "torch", "fp32", {"device": "cpu",
                                                                                    "compile": "default"}),
    Engine("torch-fp16-channels-last", "PyTorch FP16 channels-last", "torch", "fp16",
           {"device": "cuda", "channels_last": True}, ("torch-cuda",)),
    Engine("torch-compile-fp16", "torch.compile FP16 (reduce-overhead: CUDA graphs)", "torch", "fp16",
           {"device": "cuda", "channels_last": True, "compile": "reduce-overhead"}, ("torch-cuda", "triton")),
    Engine("ort-fp32", "munit-rt ONNX Runtime FP32 (Winograd auto)", "onnxruntime", "fp32",
           {"providers": CPU, "winograd": "auto"}),
    Engine("ort-fp32-direct", "munit-rt ONNX Runtime FP32 (Winograd off)", "onnxruntime", "fp32",
           {"providers": CPU, "winograd": "off"}),
    Engine("ort-cuda-fp32", "ONNX Runtime CUDA FP32 (I/O binding)", "onnxruntime", "fp32",
           {"providers": CUDA, "io_binding": True}, ("ort-cuda",)),
    Engine("ort-cuda-fp16", "ONNX Runtime CUDA FP16 (I/O binding)", "onnxruntime", "fp16",
           {"providers": CUDA, "io_binding": True}, ("ort-cuda",)),
    Engine("tensorrt-fp32", "TensorRT FP32", "tensorrt", "fp32"),
    Engine("tensorrt-fp16", "TensorRT FP16", "tensorrt", "fp16"),
    Engine("openvino-fp32", "OpenVINO FP32", "openvino", "fp32", roof="openvino_fp32"),
    Engine("openvino-bf16", "OpenVINO BF16", "openvino", "bf16", roof="openvino_bf16"),
    Engine("openvino-int8", "OpenVINO INT8 (the rest bf16 where native)", "openvino", "int8", roof="openvino_int8"),
    Engine("ort-int8", "ONNX Runtime INT8 (QDQ)", "onnxruntime", "int8", {"providers": CPU}, roof="ort_int8"),
)
KEYS = tuple(e.key for e in ENGINES)
# machine -> batches, size, rounds, warm-up calls, matmul roof n and best-of
DEFAULTS = {"cuda": ([1, 8, 32], 256, 20, 3, 8192, 10), "cpu": ([8], 256, 5, 1, 2048, 8),
            "quick": ([1, 2], 32, 2, 1, 512, 3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--checkpoint", type=Path, help="the PyTorch engines' checkpoint (default: the manifest's)")
    p.add_argument("--engines", help=f"comma-separated (default all: {', '.join(KEYS)})")
    p.add_argument("--batches", help="comma-separated --batch-size values (default 1,8,32 with a GPU, 8 without)")
    p.add_argument("--size", type=int, help="image side (default 256; --quick 32), brought to the bundle's multiple")
    p.add_argument("--styles", type=int, default=8, help="--styles of the job (families with styles)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 20 with a GPU, 5 without; --quick 2)")
    p.add_argument("--warmup", type=int, help="untimed job and graph calls per batch after opening")
    p.add_argument("--cpu-max-batch", type=int, default=8, help="largest batch of CPU engines when a GPU is present")
    p.add_argument("--calibrate", type=Path, help="images to quantize a bundle without int8 graphs on")
    p.add_argument("--roof-n", type=int, help="matmul roof size n^3 (default 8192 with a GPU, 2048 without)")
    p.add_argument("--torch-device", choices=("auto", "cpu"), default="auto", help="cpu: every PyTorch engine on "
                   "the CPU, the CUDA ones too (an accuracy check of their code paths, not a speed figure)")
    p.add_argument("--tf32", action="store_true", help="let PyTorch FP32 use TF32 (its default); else true FP32")
    p.add_argument("--out", type=Path, help="output prefix (default bench/results/engines)")
    p.add_argument("--quick", action="store_true", help="smoke run: the family's tiny config, 32x32, batches 1,2")
    p.add_argument("--merge", type=Path, nargs="+", metavar="JSON", help="measure nothing: combine earlier runs "
                   "of one bundle (e.g. one per --engines group), derive ratios and targets again, write reports")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    batches, size, rounds, warmup, roof_n, roof_repeats = DEFAULTS["quick" if args.quick else
                                                                   "cuda" if gpu_present() else "cpu"]
    if args.batches:
        batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    if min(batches) < 1 or args.styles < 1:
        raise SystemExit("--batches and --styles must be positive")
    return {"batches": batches, "size": args.size or size, "styles": args.styles, "rounds": args.rounds or rounds,
            "warmup": max(1, args.warmup or warmup), "roof_n": args.roof_n or roof_n, "roof_repeats": roof_repeats,
            "cpu_max_batch": args.cpu_max_batch, "torch_device": args.torch_device, "tf32": args.tf32,
            "seed": args.seed, "engines": chosen(args.engines, KEYS, "--engines")}


# ------------------------------------------------------------------------------------------------ opening


def backend_options(engine: Engine, settings: dict[str, Any], checkpoint: Path | None) -> dict[str, Any]:
    options = dict(engine.options)
    if engine.backend == "torch":
        options.update({"checkpoint": checkpoint} if checkpoint else {})
        options["device"] = "cpu" if settings["torch_device"] == "cpu" else options["device"]
    if engine.backend == "tensorrt":  # engines for exactly the measured shapes
        from munit_rt.tensorrt.profiles import ProfileOptions

        size = settings["size"]
        options["profile"] = ProfileOptions(max_batch=max(settings["batches"]), min_size=size, opt_size=size,
                                            max_size=size)
    return options


class Opened:
    """One engine, open and warmed up at each of its batches: per batch its job (plan, host inputs, output, the
    graph calls it made) and its main-graph call (feeds on the device; the official loop: one call per row)."""

    def __init__(self, engine: Engine, bundle: Any, settings: dict[str, Any], inputs: dict[int, tuple],
                 jobs: dict[int, dict], per_row: dict, checkpoint: Path | None):
        print(f"opening {engine.label} ...", flush=True)
        self.engine, self.inputs, self.failed = engine, inputs, {}
        free_before, started = cuda_free_bytes(), time.perf_counter()
        self.translator = open_translator(engine, bundle, backend_options(engine, settings, checkpoint))
        self.backend = backend = self.translator.backend
        cpu_capped = not backend.device.startswith("cuda") and gpu_present()
        self.batches = [b for b in settings["batches"] if not (cpu_capped and b > settings["cpu_max_batch"])]
        self.plans, self.outputs, self.feeds = {}, {}, {}
        for batch in list(self.batches):
            try:
                self._warm_up(bundle, batch, settings, jobs, per_row)
            except Exception as exc:  # noqa: BLE001 - recorded; its other batches and the other engines go on
                self.failed[batch] = f"{type(exc).__name__}: {str(exc)[:300]}"
                self.batches.remove(batch)
        self.open_s = time.perf_counter() - started
        free_after = cuda_free_bytes() if free_before is not None and backend.device.startswith("cuda") else None
        self.memory_bytes = None if free_after is None else max(0, free_before - free_after)
        self.samples: dict[int, dict[str, list[float]]] = {b: {"graph_s": [], "job_s": []} for b in self.batches}

    def _warm_up(self, bundle: Any, batch: int, settings: dict[str, Any], jobs: dict[int, dict],
                 per_row: dict) -> None:
        """The first job call (recorded: it gives the main graph and its rows, once per batch) and warm-ups."""
        from munit_rt.export.flops import recorded_calls

        plan = self.plans[batch] = job_plan(bundle, 1 if self.engine.batch_one else batch, settings["styles"])[0]
        plan.prepare(self.translator)
        with recorded_calls(self.backend) as calls:
            self.outputs[batch] = self.job(batch)
        job = jobs.setdefault(batch, describe_job(calls, batch, per_row, self.inputs[batch], self.outputs[batch]))
        feeds = synthetic_feeds(bundle.graphs[job["main_graph"]], job["rows"], settings["size"],
                                bundle.manifest.spatial_multiple, np.random.default_rng(settings["seed"]))
        rows = [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(job["rows"])] if self.engine.batch_one \
            else [feeds]
        self.feeds[batch] = [{k: self.backend.to_device(v) for k, v in f.items()} for f in rows]
        for k in range(settings["warmup"]):  # sessions, compiled shapes, CUDA graphs: first calls of each shape
            self.graph(batch, job["main_graph"])
            if k:
                self.job(batch)

    def graph(self, batch: int, name: str) -> None:
        for feeds in self.feeds[batch]:
            self.backend.run(name, feeds, to_host=False)
        self.backend.synchronize()

    def job(self, batch: int) -> np.ndarray:
        return self.plans[batch].run(self.translator, *self.inputs[batch])

    def time_round(self, main: dict[int, str]) -> None:
        for batch in self.batches:
            self.samples[batch]["graph_s"].append(best_s(lambda: self.graph(batch, main[batch]), 1))
            self.samples[batch]["job_s"].append(best_s(lambda: self.job(batch), 1, self.backend.synchronize))

    def close(self) -> None:
        self.translator.close()
        _release()


def _release() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ measuring


def measure(bundle: Any, settings: dict[str, Any], checkpoint: Path | None) -> dict[str, Any]:
    from munit_rt.backends.onnxruntime import physical_cores
    from munit_rt.export.flops import bundle_flops, executed_flops

    size, threads, per_row = settings["size"], physical_cores(), bundle_flops(bundle, settings["size"])
    jobs: dict[int, dict] = {}
    inputs = {b: job_inputs(job_plan(bundle, b, settings["styles"])[0], b, size, 1, settings["seed"])[0]
              for b in settings["batches"]}
    engines = [e for e in ENGINES if e.key in settings["engines"]]
    roof_keys = {e.roof for e in engines if e.backend in ("onnxruntime", "openvino")} | {"ort_fp32", "numpy_fp32"}
    n, repeats = settings["roof_n"], settings["roof_repeats"]
    roofs = lambda: {**engine_roofs(min(n, 2048), repeats, threads, tuple(sorted(roof_keys))),  # noqa: E731
                     **cuda_roofs(n, repeats)}
    load_before, first_roofs = load_average(), roofs()

    opened, skipped = each_engine(engines, lambda e: why_not(e, settings["torch_device"]),
                                  lambda e: Opened(e, bundle, settings, inputs, jobs, per_row, checkpoint))
    main = {b: jobs[b]["main_graph"] for b in settings["batches"] if b in jobs}
    order = list(opened)
    for k in range(settings["rounds"] if order else 0):  # every engine once per round, the first one rotating
        for key in order[k % len(order):] + order[:k % len(order)]:
            opened[key].time_round(main)
            gc.collect()
        print(f"round {k + 1}/{settings['rounds']}: " + ", ".join(
            f"{key} {opened[key].samples[b]['job_s'][-1]:.3f} s" for key in order for b in opened[key].batches[-1:]),
              flush=True)
    winograd = next((o for o in opened.values() if o.engine.options.get("winograd", "off") != "off"), None)
    for batch in (b for b in main if winograd and b in winograd.batches):  # ONNX Runtime CPU executes fewer
        shapes = {k: v.shape for k, v in winograd.feeds[batch][0].items()}
        mode = winograd.engine.options["winograd"]
        jobs[batch]["executed_gflop_per_call"] = executed_flops(bundle, main[batch], shapes, mode) / 1e9
    # errors against PyTorch eager FP32; without the source checkpoint (a bundle shipped alone), against ONNX
    # Runtime FP32 as exported, and the report says so
    reference = next((k for k in ("torch-eager", "ort-fp32-direct", "ort-fp32", "ort-cuda-fp32", "openvino-fp32")
                      if k in opened), None)
    rows, info = [], {}
    for key, o in opened.items():
        info[key] = {"label": o.engine.label, "backend": o.engine.backend, "precision": o.engine.precision,
                     "device": o.backend.device, "options": {k: str(v) for k, v in o.engine.options.items()},
                     "open_s": o.open_s, "memory_bytes": o.memory_bytes, "roof": o.engine.roof,
                     "batch_one": o.engine.batch_one, **({"executed": o.backend.executed()}
                                                         if hasattr(o.backend, "executed") else {})}
        rows += [{"engine": key, "batch": b, "error": error} for b, error in o.failed.items()]
        for batch in o.batches:
            row = {"engine": key, "batch": batch, "graph_calls": len(o.feeds[batch]), **o.samples[batch]}
            ref = opened[reference].outputs.get(batch) if reference else None
            if ref is not None and key != reference:
                row.update(compare(o.outputs[batch], ref))
            rows.append(row)
        o.close()
    return {"engines": info, "results": sorted(rows, key=lambda r: (KEYS.index(r["engine"]), r["batch"])),
            "skipped": skipped, "reference": reference, "roofs": keep_higher(first_roofs, roofs()),
            "jobs": {str(b): jobs[b] for b in main},
            "load_average": {"before": load_before, "after": load_average()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.merge:
        results = _report.merge(args.merge, list(KEYS))
        _report.write(results, args.out or Path("bench/results/engines"))
        return results
    settings = resolve_settings(args)
    torch = cuda_torch()
    if torch is not None:  # "FP32" means FP32 arithmetic unless --tf32
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32
    chosen_engines = [e for e in ENGINES if e.key in settings["engines"]]
    fp16 = importlib.util.find_spec("onnxconverter_common") is not None and any(  # FP16 graphs: a consumer runs here
        e.precision == "fp16" and e.backend != "torch" and why_not(e, args.torch_device) is None
        for e in chosen_engines)
    with tempfile.TemporaryDirectory(prefix="munit-rt-engines-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        path, what, export_s = model_bundle(args, work, "both" if fp16 else "fp32", tiny=args.quick)
        from munit_rt import Bundle

        multiple = Bundle(path).manifest.spatial_multiple  # the size must suit the bundle (a U-Net's 2**depth)
        settings["size"] = max(multiple, round(settings["size"] / multiple) * multiple)
        int8 = "not measured"
        if any(e.precision == "int8" for e in chosen_engines):
            path, int8 = with_int8(path, work, args.calibrate, settings["size"])
        bundle = Bundle(path)
        results = {"settings": settings, **measure(bundle, settings, args.checkpoint)}
        results["meta"] = {"family": bundle.family, "model": what, "bundle": str(path), "export_s": export_s,
                           "int8": int8, "machine": machine(), "timing": _report.TIMING,
                           "quality_recorded": {p: vars(q) for p, q in bundle.manifest.quality.items()}}
        _report.add_derived(results)
        _report.write(results, args.out or (work / "engines_quick" if args.quick else Path("bench/results/engines")))
    return results


if __name__ == "__main__":
    main()
