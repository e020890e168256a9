"""End to end on the CPU: `munit-rt translate` (ONNX Runtime) against the official test loop.

The official test loop is `munit-rt translate --backend torch --batch-size 1` (PyTorch eager FP32, each output
decoded alone); munit-rt's run is `munit-rt translate` (ONNX Runtime CPU, --batch-size 8), both in-process and
end to end on N smooth random JPEGs. Details and the JSON fields: bench/README.md; the engines and graphs alone,
against their roofs: bench/engines.py. Prints numbers only.

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

from _timing import machine
from _workload import add_model_options, model_bundle, smooth_images, with_int8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_options(parser)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="munit-rt's --batch-size")
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


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from munit_rt import Bundle
    from munit_rt.backends.onnxruntime import winograd_mode

    also = [tuple(item.split(":", 1)) for item in args.also.split(",") if item.strip()]
    if any(len(item) != 2 for item in also):
        raise SystemExit("--also: give BACKEND:PRECISION pairs, e.g. openvino:bf16,openvino:int8")
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

    results = {
        "machine": {**machine(), "torch_threads": torch.get_num_threads()},
        "job": {"model": what, "family": Bundle(path).family, "images": args.images, "size": args.size,
                "styles": args.styles, "outputs": outputs, "batch_size": args.batch_size},
        "official_pytorch_eager": {"wall_s": official_s, "outputs_per_s": outputs / official_s,
                                   "command": "munit-rt translate " + " ".join(official_args)},
        "munit_rt_onnxruntime": {"wall_s": munit_rt_s, "outputs_per_s": outputs / munit_rt_s,
                                 "winograd": winograd_mode(),  # translate's: $MUNIT_RT_WINOGRAD, default auto
                                 "command": "munit-rt translate " + " ".join(munit_rt_args)},
        "speedup": official_s / munit_rt_s,
        "also": extra_runs,  # each: wall_s, speedup (x the official loop), PNG PSNR / p99.9 levels vs the fp32 run
    }
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def compare_pngs(reference: Path, test: Path) -> dict:
    """PSNR (8-bit, peak 255) and 99.9th-percentile level difference of every output PNG against the same file
    of the reference run (contact sheets left out)."""
    from PIL import Image

    from munit_rt.export.quantize.quality import Comparison

    comparison = Comparison()  # over pixels mapped to [-1, 1]: its PSNR (peak-to-peak 2) is 8-bit PSNR (peak 255)
    for path in (p for p in sorted(reference.rglob("*.png")) if p.name != "grid.png"):
        comparison.add(*(np.atleast_3d(np.asarray(Image.open(p), np.float64)).transpose(2, 0, 1)[None] / 127.5 - 1
                         for p in (path, test / path.relative_to(reference))))
    return {"png_psnr_db": comparison.psnr_db, "png_p999_levels": int(comparison.percentile_levels(99.9))}


def print_table(r: dict) -> None:
    job = r["job"]
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
    print(f"\nspeed-up {r['speedup']:.2f}x")


if __name__ == "__main__":
    main()
