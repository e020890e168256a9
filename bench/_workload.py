"""What the benchmarks run: the bundle, the engines (munit_rt backends) measured on it, synthetic graph feeds, the
family's job and the graphs it calls. Nothing here knows a model family: the bundle is given (--bundle) or random
weights of a registered family (munit_rt.export.random_bundle), feeds follow each graph's TensorSpecs, the job is
the family's TranslatePlan, and which graphs it calls, with how many rows, is recorded while it runs.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _timing import cuda_torch


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, help="bundle to measure (default: random weights of --family)")
    parser.add_argument("--family", help="family of the random-weight bundle (default: the registry's default)")
    parser.add_argument("--config", help="its config keys: a JSON object, or a .json/.yaml file (default: the "
                        "family's defaults, upstream's sizes; --quick: the family's tiny_config when it has one)")
    parser.add_argument("--work-dir", "--work", type=Path, dest="work_dir",
                        help="keep the random-weight model here and reuse it while family and config match")


def read_config(text: str | None) -> dict | None:
    """--config: JSON text, or a .json/.yaml file (JSON is YAML)."""
    import yaml

    is_file = bool(text) and Path(text).suffix in (".json", ".yaml", ".yml") and Path(text).is_file()
    return yaml.safe_load(Path(text).read_text(encoding="utf-8")) if is_file else json.loads(text) if text else None


def model_bundle(args: argparse.Namespace, work: Path, precision: str = "fp32",
                 tiny: bool = False) -> tuple[Path, str, float | None]:
    """(bundle path, what it is, export seconds or None when given or reused)."""
    if args.bundle:
        return args.bundle, f"bundle {args.bundle}", None
    from munit_rt.training.errors import ConfigError
    from munit_rt.training.registry import default_family, get_family

    try:
        family = get_family(args.family) if args.family else default_family()
    except ConfigError as exc:
        raise SystemExit(f"--family: {exc}") from None
    config = read_config(args.config)
    offered = getattr(family, "tiny_config", None) if tiny and config is None else None
    if offered is not None:
        config = dict(offered() if callable(offered) else offered)
    what = f"random-weight {family.title}, " + (f"config {json.dumps(config)}" if config else "default config")
    stamp, record = {"family": family.name, "config": config, "precision": precision}, work / "bench-model.json"
    if record.is_file():
        old = json.loads(record.read_text(encoding="utf-8"))
        if old["stamp"] == stamp and (Path(old["bundle"]) / "manifest.json").is_file():
            return Path(old["bundle"]), what, None
    from munit_rt.export.random_bundle import random_bundle

    print(f"exporting a {what} ({precision}) into {work} ...", flush=True)
    started = time.perf_counter()
    bundle = random_bundle(family.name, work, config=config, precision=precision, force=True)
    record.write_text(json.dumps({"stamp": stamp, "bundle": str(bundle)}), encoding="utf-8")
    return bundle, what, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class Engine:
    """One measured engine: a backend of munit_rt.backends with its precision and options; `needs`: torch-cuda,
    triton, ort-cuda (a usable ONNX Runtime CUDA provider); `roof`: the
    engine_roofs key its GFLOP/s is compared with on the CPU (on CUDA: cuda_<precision>); `batch_one`: the
    official loop, the job at --batch-size 1."""

    key: str
    label: str
    backend: str
    precision: str
    options: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    roof: str = "ort_fp32"
    batch_one: bool = False


def chosen(text: str | None, known: tuple[str, ...], option: str) -> list[str]:
    """The keys of a comma-separated `option` (empty: all of `known`)."""
    keys = [k.strip() for k in (text or "").split(",") if k.strip()]
    unknown = set(keys) - set(known)
    if unknown:
        raise SystemExit(f"{option}: unknown {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    return keys or list(known)


def why_not(engine: Engine, torch_device: str = "auto") -> str | None:
    """Why `engine` cannot run here (None: it can): its backend's reason, a precision this CPU would not run
    natively (OpenVINO bf16 without AVX512_BF16/AMX), or one of its `needs` missing (--torch-device cpu: torch's
    CUDA needs are not). A bundle without the precision's graphs refuses it when opened."""
    from munit_rt.backends import backend_class, unavailable_reason

    reason = unavailable_reason(engine.backend)
    if reason is None:
        reason = backend_class(engine.backend).precision_refusal(engine.precision)
    on_cpu = torch_device == "cpu"
    for need in engine.needs:
        if reason:
            break
        if need == "torch-cuda" and not on_cpu and cuda_torch() is None:
            reason = "CUDA only; torch sees no CUDA GPU"
        elif need == "triton" and not on_cpu and importlib.util.find_spec("triton") is None:
            reason = "triton is not installed (torch.compile's CUDA code generator)"
        elif need == "ort-cuda":
            from munit_rt.backends.onnxruntime import cuda_usable

            reason = None if cuda_usable() else "no usable ONNX Runtime CUDA provider (onnxruntime-gpu and a GPU)"
    return reason


def each_engine(engines: list[Engine], why: Callable[[Engine], str | None],
                run: Callable[[Engine], Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """{key: run(engine)} of the engines that can run here, and the skipped ones, each with its reason: why's, or
    the error `run` raised (reported like a skip; the others go on)."""
    done, skipped = {}, []
    for engine in engines:
        reason = why(engine)
        if reason is None:
            try:
                done[engine.key] = run(engine)
                continue
            except Exception as exc:  # noqa: BLE001 - could not open or build: reported like a skip
                reason = f"failed to open: {type(exc).__name__}: {str(exc)[:300]}"
        print(f"{engine.label}: skipped ({reason})", flush=True)
        skipped.append({"engine": engine.key, "label": engine.label, "reason": reason})
    return done, skipped


def open_translator(engine: Engine, bundle: Any, options: dict) -> Any:
    """A Translator on the engine's backend (its `.backend`), opened."""
    from munit_rt import Translator
    from munit_rt.backends import backend_class

    return Translator(bundle, backend=backend_class(engine.backend)(bundle, precision=engine.precision, **options))


def compare(output: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Relative L2 error, largest difference and PSNR (images in [-1, 1]: peak-to-peak 2) against the reference."""
    diff = output.astype(np.float64) - reference
    mse = float(np.mean(diff ** 2))
    return {"rel_err": float(np.linalg.norm(diff) / max(float(np.linalg.norm(reference)), 1e-30)),
            "max_abs_err": float(np.abs(diff).max()), "psnr_db": 10 * math.log10(4.0 / mse) if mse else None}


# ------------------------------------------------------------------------------------------------ feeds


def synthetic_feeds(graph: Any, batch: int, size: int, multiple: int, rng: np.random.Generator) -> dict:
    """Float inputs N(0, 1) clipped to [-1, 1] (the speed does not depend on values), other inputs zeros."""
    feeds = {}
    for tensor in graph.inputs:
        shape = tensor.shape_at(batch, size, multiple)
        feeds[tensor.name] = (np.clip(rng.standard_normal(shape), -1, 1).astype(tensor.dtype)
                              if tensor.dtype.startswith("float") else np.zeros(shape, tensor.dtype))
    return feeds


# -------------------------------------------------------------------------------------------------- job


def job_plan(bundle: Any, batch: int, styles: int) -> tuple[Any, list[str]]:
    """The family's plan of a translate run with the default options, --styles and --batch-size B; and the
    notes about options the family ignores."""
    from munit_rt.translate.options import TranslateOptions

    notes: list[str] = []
    options = TranslateOptions(inputs=[], styles=styles, batch_size=batch).for_family(bundle.spec, notes.append)
    return bundle.spec.plan(bundle, options), notes


def job_inputs(plan: Any, batch: int, size: int, sets: int, seed: int) -> list[tuple[np.ndarray, list[str]]]:
    """`sets` distinct (images, relative paths): ceil(B / outputs per input) host images in [-1, 1] each."""
    count = -(-batch // len(plan.names))
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (count, plan.channels, size, size)).astype(np.float32),
             [f"set{k}/image{i:03d}.png" for i in range(count)]) for k in range(sets)]


def describe_job(calls: list[tuple[str, int]], batch: int, per_row: dict[str, Any], inputs: tuple,
                 output: np.ndarray) -> dict[str, Any]:
    """The job at --batch-size `batch` from the (graph, rows) calls it made: its FLOPs, its main graph (most FLOPs)
    and that graph's rows per call at this batch (min(batch, its rows in all): a batch-1 loop's calls give the
    same), in images and outputs."""
    from munit_rt.export.flops import calls_flops

    flops = calls_flops(calls, per_row)
    main = max(flops, key=flops.get)
    rows = min(batch, sum(r for g, r in calls if g == main))
    return {"main_graph": main, "rows": rows, "gflop_per_call": rows * per_row[main].total / 1e9,
            "gflop": sum(flops.values()) / 1e9, "images": len(inputs[0]), "outputs": int(np.prod(output.shape[:2])),
            "calls": [list(c) for c in calls]}


# ------------------------------------------------------------------------------------------------- int8


def with_int8(bundle_path: Path, work: Path, calibrate: Path | None, size: int) -> tuple[Path, str]:
    """The bundle, or a quantized copy of it in `work` (`munit-rt quantize --output`; never the user's bundle),
    reused while the bundle and the calibration images are the same."""
    from munit_rt import Bundle
    from munit_rt.export.quantize import quantize_bundle

    bundle = Bundle(bundle_path)
    if "int8" in bundle.precisions:
        return bundle_path, "the bundle's own int8 graphs"
    source = str(calibrate.resolve()) if calibrate else f"smooth random {size}"
    copy = work / f"int8-{bundle.manifest_sha256[:12]}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    if not copy.is_dir():  # complete or absent
        images = calibrate or smooth_images(work / "calibration", 20, size)  # written only when quantizing
        print(f"quantizing a copy of the bundle on {images} ...", flush=True)
        quantize_bundle(bundle_path, images, min_psnr=0.0, output=copy, notify=lambda line: print(f"  {line}"))
    return copy, f"quantized here on {calibrate or 'smooth random images'} (munit_rt.export.quantize)"


def smooth_images(folder: Path, count: int, size: int, suffix: str = ".png", side: int = 2) -> Path:
    """Smooth random images: size / 16 (at least `side`) random pixels a side, upscaled; JPEG at quality 95."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (max(side, size // 16), max(side, size // 16), 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"img_{i:03d}{suffix}",
                                                                                    quality=95)
    return folder
