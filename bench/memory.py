"""Peak resident memory of `translate` on many small images: does it stay flat as the image count grows?

Translates the first N of --image-size noise PNGs for each N in --counts, each run in a fresh child process
(translate_paths, ONNX Runtime CPU), and prints its peak resident memory (VmHWM; ru_maxrss without /proc), its
resident memory once the modules are imported, and the throughput. Bounded prefetch queues keep the peak flat.
The model's weights count in it: pass a small --config to measure the pipeline. bench/README.md has the command.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _workload import add_model_options, model_bundle

PER_FOLDER = 100

# Runs in the child: everything imported first, then one measurement of the resident set, then the run.
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from munit_rt.translate.options import TranslateOptions
from munit_rt.translate.run import translate_paths
import munit_rt.backends.onnxruntime, onnxruntime, PIL.Image, PIL.PngImagePlugin, tqdm  # imports, not work

def status_kb(key):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

folders, bundle, out, styles, batch, size = json.loads(sys.argv[1])
before = status_kb("VmRSS")
started = time.perf_counter()
report = translate_paths(TranslateOptions(inputs=[Path(f) for f in folders], output=Path(out), model=Path(bundle),
                                          styles=styles, batch_size=batch, size=size, backend="onnxruntime",
                                          progress=False), notify=lambda line: None)
print(json.dumps({"inputs": report.inputs, "translated": report.translated, "failed": len(report.failures),
                  "files": report.files_written, "wall_s": time.perf_counter() - started,
                  "rss_after_imports_kib": before, "peak_rss_kib": status_kb("VmHWM")}))
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_options(parser)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 5000],
                        help=f"images per run; multiples of {PER_FOLDER}")
    parser.add_argument("--styles", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=40)
    parser.add_argument("--size", type=int, default=32, help="translate's --size (outputs' shorter side)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def write_images(root: Path, count: int, size: int) -> list[Path]:
    """count noise PNGs in root/000/, root/001/, ... (PER_FOLDER per folder); existing ones are kept."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        path = root / f"{index // PER_FOLDER:03d}" / f"img_{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        if not path.exists():
            Image.fromarray(pixels).save(path)
    return sorted(root.glob("[0-9][0-9][0-9]"))


def measure(folders: list[Path], bundle: Path, out: Path, args: argparse.Namespace) -> dict:
    child = json.dumps([[str(f) for f in folders], str(bundle), str(out), args.styles, args.batch_size, args.size])
    done = subprocess.run([sys.executable, "-c", CHILD, child], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    for count in args.counts:
        if count < 1 or count % PER_FOLDER:
            raise SystemExit(f"--counts: {count} is not a multiple of {PER_FOLDER}")
    with tempfile.TemporaryDirectory(prefix="munit-rt-memory-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        bundle, what, _ = model_bundle(args, work)
        folders = write_images(work / "images", max(args.counts), args.image_size)
        print(f"{what}; {max(args.counts)} {args.image_size}x{args.image_size} PNGs under {work / 'images'} (set-up "
              f"{time.perf_counter() - started:.1f} s); {args.styles} styles, batch {args.batch_size}, "
              f"--size {args.size}")
        print(f"{'images':>7} {'translated':>10} {'files':>7} {'wall s':>7} {'img/s':>7} "
              f"{'RSS after imports MiB':>22} {'peak RSS MiB':>13} {'peak - imports MiB':>19}")
        results = []
        for count in args.counts:
            inputs = folders[: count // PER_FOLDER]
            out = work / f"out_{count}"
            shutil.rmtree(out, ignore_errors=True)  # a fresh run each time (a kept one would all be --resume skips)
            result = {"images": count, **measure(inputs, bundle, out, args)}
            results.append(result)
            before, peak = result["rss_after_imports_kib"] / 1024, result["peak_rss_kib"] / 1024
            rate = result["translated"] / result["wall_s"]
            print(f"{count:>7} {result['translated']:>10} {result['files']:>7} {result['wall_s']:>7.1f} {rate:>7.1f} "
                  f"{before:>22.1f} {peak:>13.1f} {peak - before:>19.1f}")
        if len(results) > 1:
            first, last = results[0], results[-1]
            growth = (last["peak_rss_kib"] - first["peak_rss_kib"]) / 1024
            print(f"peak RSS {first['images']} -> {last['images']} images: {growth:+.1f} MiB "
                  f"({growth * 1024 * 1024 / (last['images'] - first['images']):+.0f} bytes per extra image)")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
