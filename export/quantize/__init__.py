"""INT8 graphs calibrated on real images, with their quality measured on held-out ones: `munit-rt quantize`.

    from munit_rt.export.quantize import quantize_bundle
    result = quantize_bundle("model.bundle", "photos/", min_psnr=40.0)   # writes int8 graphs into the bundle
    result.quality["int8"]["psnr_db"]

Steps (no torch: onnx and onnxruntime.quantization; OpenVINO, when installed, measures what it will run):

1. The images under the calibration folder are split at random (seed 0) into held-out images (`holdout`, default
   a fifth, 1 to 32) and calibration images (the rest, at most 256).
2. Calibration data comes from the family's own translate job (munit_rt.export.quantize.calibration: its TranslatePlan
   at the default options, every direction) run in FP32 on the calibration images through a backend that records
   what each graph receives. No family is named here.
3. Graphs worth it are quantized by ONNX Runtime's static quantizer (munit_rt.export.quantize.graphs: Conv and
   ConvTranspose only, the first and last of each graph in FP32); the others keep their fp32 file as their int8 file.
4. Quality, on the held-out images only: the whole job's outputs at int8 (OpenVINO when installed, as
   `--backend openvino --precision int8` runs them here; else ONNX Runtime) against FP32 (ONNX Runtime), as PSNR
   and the 99.9th-percentile uint8 level difference; bf16 too (OpenVINO on the fp32 graphs) where this CPU runs
   it natively. Below `min_psnr` nothing is written.
5. The int8 files and a new manifest with the `quality` records are written into the bundle atomically
   (munit_rt.export.quantize.publish); quantizing again replaces them.

It lives in the export layer (munit_rt.export: writes graphs into bundles, may use the runtime) because it runs
the runtime's Translator and counts FLOPs with munit_rt.export.flops, which the runtime layer may not import.

Why ONNX Runtime's quantizer and not NNCF: the same quality (48.5 vs 48.6 dB PSNR on the trained default MUNIT,
int8 vs fp32 over the whole job) and the same OpenVINO speed, measured; onnxruntime is already a dependency.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from munit_rt.bundle import Bundle, open_bundle
from munit_rt.errors import InputError, MunitRtError
from munit_rt.export.quantize.calibration import (Job, RecordingBackend, job_plans, list_calibration_images,
                                                  read_images, run_job)
from munit_rt.export.quantize.graphs import TOOL, GraphChoice, choose_graphs, quantize_graph, tool_version
from munit_rt.export.quantize.quality import Comparison, record
from munit_rt.text import printable

DEFAULT_MIN_PSNR = 40.0
MAX_DEFAULT_HOLDOUT = 32
MAX_CALIBRATION_IMAGES = 256  # a seeded random subset beyond this: more adds time, not range statistics


class BelowFloor(MunitRtError):
    """The measured int8 quality is below --min-psnr: nothing was written."""


@dataclass
class QuantizeResult:
    bundle: Path
    choices: dict[str, GraphChoice]
    quality: dict[str, dict[str, Any]]
    written: list[str] = field(default_factory=list)
    calibration_images: int = 0
    heldout_images: int = 0
    seconds: float = 0.0


def quantize_bundle(bundle: Bundle | str | Path, calibrate: str | Path, min_psnr: float = DEFAULT_MIN_PSNR,
                    holdout: int | None = None, notify: Callable[[str], None] = print,
                    output: str | Path | None = None) -> QuantizeResult:
    """Calibrate, quantize, measure, and (at or above `min_psnr`) write int8 graphs into the bundle, or with
    `output` into a new bundle there (a copy with the int8 graphs; the bundle itself is not changed)."""
    started = time.perf_counter()
    bundle = open_bundle(bundle)
    label = printable(str(bundle.path), control=True)
    if output is not None and Path(output).resolve() == bundle.path.resolve():
        output = None
    if "fp32" not in bundle.precisions:
        raise InputError(f"bundle {label} has no fp32 graphs to quantize")
    if output is None and not os.access(bundle.path, os.W_OK):
        raise InputError(f"bundle {label} is not writable; pass --output NEW.bundle to write a quantized copy")
    if output is not None and Path(output).exists() and (not Path(output).is_dir() or any(Path(output).iterdir())):
        raise InputError(f"--output {printable(str(output), control=True)} exists and is not an empty folder; "
                         "choose a new one")
    calibration, heldout = split_images(list_calibration_images(Path(calibrate)), holdout)
    notify(f"{len(calibration)} calibration images, {len(heldout)} held out for the quality check")
    jobs = job_plans(bundle)

    # 1. what each graph sees in the jobs, in fp32
    recorder = RecordingBackend(_onnxruntime(bundle))
    from munit_rt.translator import Translator

    with Translator(bundle, backend=recorder) as translator:
        for job in jobs:
            job.plan.prepare(translator)
            images = read_images(calibration, job.plan, notify)
            if not images:
                raise InputError(f"--calibrate {printable(str(calibrate), control=True)}: none of the calibration "
                                 "images could be read (see the lines above)")
            run_job(translator, job.plan, images)
    choices = choose_graphs(bundle, recorder)

    # 2. the int8 graphs
    int8: dict[str, bytes | None] = {}
    for name, choice in choices.items():
        notify(f"{name}: {'quantizing, ' if choice.quantize else 'fp32 file, '}{choice.reason}"
               + (f" ({choice.rows} calibration rows)" if choice.quantize else ""))
        int8[name] = quantize_graph(bundle.graph_bytes(name, "fp32"), recorder.rows[name], choice.kept_fp32) \
            if choice.quantize else None
    recorder.rows.clear()

    # 3. quality on the held-out images, measured on a staged copy; 4. publish at or above the floor
    from munit_rt.export.quantize import publish

    raw = _raw_manifest(bundle)
    details = {"calibration_images": len(calibration), "tool": TOOL, "tool_version": tool_version(),
               "kept_fp32": {n: c.kept_fp32 for n, c in choices.items() if c.quantize},
               "fp32_graphs": [n for n, c in choices.items() if not c.quantize],
               "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    manifest, new_files = publish.int8_manifest(raw, int8, {})
    with tempfile.TemporaryDirectory(prefix="munit-rt-quantize-") as tmp:
        staged = Bundle(publish.stage(bundle.path, manifest, new_files, Path(tmp)))
        quality = measure_quality(staged, jobs, heldout, details, notify)
    if quality["int8"]["psnr_db"] is not None and quality["int8"]["psnr_db"] < min_psnr:
        raise BelowFloor(f"int8 quality {quality['int8']['psnr_db']:.1f} dB PSNR vs fp32 on {len(heldout)} held-out "
                         f"images is below --min-psnr {min_psnr:g}; nothing written (calibrate on more images like "
                         "the ones you translate, or use fp32/bf16)")
    manifest, new_files = publish.int8_manifest(raw, int8, quality)
    if output is None:
        written = publish.publish(bundle.path, raw, manifest, new_files)
    else:
        written = publish.publish_copy(bundle.path, manifest, new_files, Path(output))
    return QuantizeResult(Path(output or bundle.path), choices, quality, written, len(calibration), len(heldout),
                          time.perf_counter() - started)


def split_images(items: list, holdout: int | None) -> tuple[list, list]:
    """(calibration, held-out): a seeded random split, so the same folder gives the same split."""
    if len(items) < 2:
        raise InputError(f"--calibrate: {len(items)} image found; quantize needs at least 2 (calibration images and "
                         "at least one held out to measure the quality)")
    count = holdout if holdout is not None else max(1, min(MAX_DEFAULT_HOLDOUT, len(items) // 5))
    if not 1 <= count < len(items):
        raise InputError(f"--holdout {count}: must be at least 1 and leave calibration images (found {len(items)} "
                         "images)")
    order = np.random.default_rng(0).permutation(len(items))
    held = sorted(order[:count])
    rest = sorted(order[count:count + MAX_CALIBRATION_IMAGES])
    return [items[i] for i in rest], [items[i] for i in held]


def measure_quality(staged: Bundle, jobs: list[Job], heldout: list, details: dict[str, Any],
                    notify: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """int8 (and bf16 where native) against fp32 over the jobs on the held-out images."""
    from munit_rt.backends import unavailable_reason
    from munit_rt.translator import Translator

    openvino = unavailable_reason("openvino") is None
    runs = {"int8": "openvino" if openvino else "onnxruntime"}
    if openvino:
        from munit_rt.backends.openvino import OpenVinoBackend

        if OpenVinoBackend.precision_refusal("bf16") is None:
            runs["bf16"] = "openvino"
        else:
            notify("bf16 quality not measured: this CPU has no native bf16")
    else:
        notify("int8 quality measured with ONNX Runtime (OpenVINO is not installed); bf16 not measured")
    images = {job.name: read_images(heldout, job.plan, notify) for job in jobs}
    if not all(images.values()):
        raise InputError("none of the held-out images could be read (see the lines above); nothing written")
    references: dict[str, dict[str, np.ndarray]] = {job.name: {} for job in jobs}
    with Translator(staged, backend=_onnxruntime(staged)) as translator:
        for job in jobs:
            job.plan.prepare(translator)
            run_job(translator, job.plan, images[job.name], each=references[job.name].__setitem__)
    quality = {}
    for precision, backend in runs.items():
        by_job = {job.name: Comparison() for job in jobs}
        with Translator(staged, backend=backend, precision=precision) as translator:
            for job in jobs:
                job.plan.prepare(translator)
                run_job(translator, job.plan, images[job.name],
                        each=lambda rel, out, c=by_job[job.name], r=references[job.name]: c.add(r[rel], out))
            measured_with = f"{backend} {_version(backend)} ({translator.backend.device})"
        extra = details if precision == "int8" else {"created": details["created"]}
        quality[precision] = record(by_job, len(heldout), measured_with, **extra)
        psnr = quality[precision]["psnr_db"]
        notify(f"{precision}: {'identical' if psnr is None else f'{psnr:.1f} dB PSNR'} vs fp32, p99.9 "
               f"{quality[precision]['p999_levels']:g} levels ({measured_with})")
    return quality


def _onnxruntime(bundle: Bundle):
    """The FP32 reference: ONNX Runtime on the CPU, as the graphs were exported (no Winograd rewrite)."""
    from munit_rt.backends.onnxruntime import CPU_PROVIDER, OnnxRuntimeBackend

    return OnnxRuntimeBackend(bundle, "fp32", providers=[CPU_PROVIDER], winograd="off")


def _version(backend: str) -> str:
    import importlib

    version = getattr(importlib.import_module(backend), "__version__", "?")
    return version.split("-")[0]


def _raw_manifest(bundle: Bundle) -> dict[str, Any]:
    import hashlib
    import json

    from munit_rt.bundle.schema import MANIFEST_NAME
    from munit_rt.errors import BundleError

    data = (bundle.path / MANIFEST_NAME).read_bytes()
    if hashlib.sha256(data).hexdigest() != bundle.manifest_sha256:
        raise BundleError(f"bundle {printable(str(bundle.path), control=True)}: {MANIFEST_NAME} changed while "
                          "quantizing; nothing written, run it again")
    return json.loads(data)
