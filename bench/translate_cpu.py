"""End to end on the CPU: `munit-rt translate` (ONNX Runtime) against the official test loop; the job's main graph.

The official test loop is `munit-rt translate --backend torch --batch-size 1` (PyTorch eager FP32, each output
decoded alone); munit-rt's run is `munit-rt translate` (ONNX Runtime CPU, --batch-size 8), both in-process and
end to end on N smooth random JPEGs. Then the job's main graph is timed alone with $MUNIT_RT_WINOGRAD auto (as
translate runs it) and off, against ONNX Runtime's own MatMul roof. Details and the JSON fields: bench/README.md.
Prints numbers only.

    .venv/bin/python bench/translate_cpu.py [--images 4] [--size 256] [--styles 8] [--work-dir W] [--json out.json]
        [--also openvino:bf16,openvino:int8 [--calibrate DIR]]   # more munit-rt runs, PNGs vs the FP32 run's
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import CPU_ROOFS, best_s, engine_roofs, keep_higher, machine
from _workload import (add_model_options, executed_flops, flops_per_row, job_inputs, job_plan, main_graph,
                       model_bundle, smooth_images, synthetic_feeds, with_int8)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_options(parser)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="munit-rt's --batch-size")
    parser.add_argument("--repeats", type=int, default=3, help="best-of for the graph and matmul timings")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--also", default="", metavar="BACKEND:PRECISION,...",
                        help="more munit-rt runs, e.g. openvino:bf16,openvino:int8: each timed end to end like the "
                             "first, its PNGs compared with the ONNX Runtime FP32 run's (int8: the bundle is copied "
                             "and quantized in the work folder on --calibrate's images, else smooth random ones)")
    parser.add_argument("--calibrate", type=Path, help="images for --also ...:int8 (see munit-rt quantize)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def translate(args: list[str]) -> float:
    """`munit-rt translate ARGS` in this process; its wall seconds (a failed run stops the benchmark)."""
    from munit_rt.cli import cli

    started = time.perf_counter()
    try:
        cli.main(["translate", *args], prog_name="munit-rt", standalone_mode=False)
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise SystemExit(f"munit-rt translate {' '.join(args)}: exit code {stop.code}") from None
    return time.perf_counter() - started


def time_graph(bundle, graph: str, feeds: dict, mode: str, repeats: int) -> tuple[float, np.ndarray]:
    """Best seconds of one call through an ONNX Runtime CPU session with Winograd `mode`, and its output."""
    from munit_rt.backends.onnxruntime import CPU_PROVIDER, OnnxRuntimeBackend

    with OnnxRuntimeBackend(bundle, "fp32", providers=[CPU_PROVIDER], winograd=mode) as backend:
        output = next(iter(backend.run(graph, feeds).values()))  # warm-up: session, first-run allocations
        return best_s(lambda: backend.run(graph, feeds), repeats), output


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from munit_rt import Bundle
    from munit_rt.backends.onnxruntime import physical_cores, winograd_mode

    threads, mode = physical_cores(), winograd_mode()  # what translate uses: $MUNIT_RT_WINOGRAD, default auto
    also = [tuple(item.split(":", 1)) for item in args.also.split(",") if item.strip()]
    if any(len(item) != 2 for item in also):
        raise SystemExit("--also: give BACKEND:PRECISION pairs, e.g. openvino:bf16,openvino:int8")
    roofs = engine_roofs(args.matmul_size, args.repeats, threads, CPU_ROOFS)
    with tempfile.TemporaryDirectory(prefix="munit-rt-bench-") as tmp:
        work = Path(tmp)
        path, what, _ = model_bundle(args, args.work_dir or work)
        if any(precision == "int8" for _, precision in also):  # every run on the same (quantized copy) bundle
            path, _ = with_int8(path, args.work_dir or work, args.calibrate, args.size)
        smooth_images(work / "inputs", args.images, args.size, ".jpg", side=1)  # JPEGs like typical photos
        job = ["--styles", str(args.styles), "--size", str(args.size)]
        official_args = ["--backend", "torch", "--batch-size", "1", *job]
        munit_rt_args = ["--backend", "onnxruntime", "--batch-size", str(args.batch_size), *job]
        official_s, munit_rt_s = (translate(run + ["--model", str(path), "-o", str(work / out), str(work / "inputs")])
                                  for run, out in ((official_args, "official"), (munit_rt_args, "munit-rt")))
        outputs = sum(1 for _ in (work / "munit-rt").rglob("*.png"))
        extra_runs = {}
        for backend, precision in also:
            run = ["--backend", backend, "--precision", precision, "--batch-size", str(args.batch_size), *job]
            out = f"{backend}-{precision}"
            seconds = translate(run + ["--model", str(path), "-o", str(work / out), str(work / "inputs")])
            extra_runs[out] = {"wall_s": seconds, "outputs_per_s": outputs / seconds, "speedup": official_s / seconds,
                               "command": "munit-rt translate " + " ".join(run),
                               **compare_pngs(work / "munit-rt", work / out)}

        bundle = Bundle(path)
        per_row = flops_per_row(bundle, args.size)
        plan, _ = job_plan(bundle, args.batch_size, args.styles)  # a small-image job: rows do not depend on the size
        small = job_inputs(plan, args.batch_size, 16 * bundle.manifest.spatial_multiple, 1, 0)[0]
        _, _, graph, rows = main_graph(bundle, plan, small, per_row)
        feeds = synthetic_feeds(bundle.graphs[graph], rows, args.size, bundle.manifest.spatial_multiple,
                                np.random.default_rng(0))
        graph_s, output = time_graph(bundle, graph, feeds, mode, args.repeats)
        direct_s, direct = time_graph(bundle, graph, feeds, "off", args.repeats)
        executed = executed_flops(bundle, graph, feeds, mode)
    roofs = keep_higher(roofs, engine_roofs(args.matmul_size, args.repeats, threads, CPU_ROOFS))
    flops = rows * per_row[graph].total
    matmul, numpy_matmul = roofs["cpu_fp32"]["gflops"], roofs["cpu_fp32_numpy"]["gflops"]
    results = {
        "machine": {**machine(), "torch_threads": torch.get_num_threads()},
        "job": {"model": what, "family": bundle.family, "images": args.images, "size": args.size,
                "styles": args.styles, "outputs": outputs, "batch_size": args.batch_size},
        "official_pytorch_eager": {"wall_s": official_s, "outputs_per_s": outputs / official_s,
                                   "command": "munit-rt translate " + " ".join(official_args)},
        "munit_rt_onnxruntime": {"wall_s": munit_rt_s, "outputs_per_s": outputs / munit_rt_s, "winograd": mode,
                                 "command": "munit-rt translate " + " ".join(munit_rt_args)},
        "speedup": official_s / munit_rt_s,
        "also": extra_runs,  # each: wall_s, speedup (x the official loop), PNG PSNR / p99.9 levels vs the fp32 run
        "main_graph": {"name": graph, "batch": rows, "gflop_per_call": flops / 1e9, "best_s": graph_s,
                       "gflops": flops / graph_s / 1e9, "winograd": mode, "best_s_winograd_off": direct_s,
                       "executed_gflop_per_call": executed / 1e9, "executed_gflops": executed / graph_s / 1e9,
                       "max_abs_diff_vs_winograd_off": float(np.abs(output - direct).max())},
        "matmul_fp32": {"n": args.matmul_size, "gflops": matmul, "method": roofs["cpu_fp32"]["method"],
                        "numpy_gflops": numpy_matmul, "numpy_method": roofs["cpu_fp32_numpy"]["method"]},
        "main_graph_vs_matmul": flops / graph_s / 1e9 / matmul,
        "executed_vs_matmul": executed / graph_s / 1e9 / matmul,
    }
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def compare_pngs(reference: Path, test: Path) -> dict:
    """PSNR (8-bit, peak 255) and 99.9th-percentile level difference of every output PNG against the same file
    of the reference run (contact sheets left out)."""
    from PIL import Image

    squared, values, levels = 0.0, 0, np.zeros(256, np.int64)
    for path in sorted(reference.rglob("*.png")):
        if path.name == "grid.png":
            continue
        ref = np.asarray(Image.open(path), np.int16)
        got = np.asarray(Image.open(test / path.relative_to(reference)), np.int16)
        diff = np.abs(got - ref)
        squared, values = squared + float(np.sum(diff.astype(np.float64) ** 2)), values + diff.size
        levels += np.bincount(diff.ravel(), minlength=256)
    mse = squared / max(1, values)
    cumulative = np.cumsum(levels)
    return {"png_psnr_db": 10 * np.log10(255.0 ** 2 / mse) if mse else None,
            "png_p999_levels": int(np.searchsorted(cumulative, 0.999 * cumulative[-1])) if values else None}


def print_table(r: dict) -> None:
    job, g, m = r["job"], r["main_graph"], r["matmul_fp32"]
    print(f"\n{job['model']}: {job['images']} images, --styles {job['styles']}, {job['size']}x{job['size']}: "
          f"{job['outputs']} outputs\n\n| run | wall s | outputs/s | x official loop | PNGs vs the FP32 run's |\n"
          "|---|---:|---:|---:|---|")
    for key, speedup, pngs in (("official_pytorch_eager", 1.0, "-"), ("munit_rt_onnxruntime", r["speedup"], "-")):
        print(f"| {r[key]['command']} | {r[key]['wall_s']:.2f} | {r[key]['outputs_per_s']:.3f} | {speedup:.2f} | "
              f"{pngs} |")
    for run in r["also"].values():
        psnr = "identical" if run["png_psnr_db"] is None else f"{run['png_psnr_db']:.1f} dB PSNR"
        print(f"| {run['command']} | {run['wall_s']:.2f} | {run['outputs_per_s']:.3f} | {run['speedup']:.2f} | "
              f"{psnr}, p99.9 {run['png_p999_levels']} levels |")
    print(f"\nspeed-up {r['speedup']:.2f}x\n\n{g['name']} alone, batch {g['batch']}, Winograd {g['winograd']} / off: "
          f"{g['best_s']:.3f} / {g['best_s_winograd_off']:.3f} s per call (max abs difference "
          f"{g['max_abs_diff_vs_winograd_off']:.1e}); {g['gflop_per_call']:.1f} GFLOP per call in the bundle's graph, "
          f"{g['executed_gflop_per_call']:.1f} executed; {g['gflops']:.1f} / {g['executed_gflops']:.1f} GFLOP/s = "
          f"{r['main_graph_vs_matmul']:.2f} / {r['executed_vs_matmul']:.2f} of the matmul roof, {m['gflops']:.1f} "
          f"GFLOP/s ({m['method']}; {m['numpy_method']}: {m['numpy_gflops']:.1f})")


if __name__ == "__main__":
    main()
