"""What the benchmarks run: the bundle under test, synthetic graph feeds, the family's job, and the graphs it calls.

Nothing here knows a model family. The bundle is given (--bundle) or random weights of a registered family
(munit_rt.export.random_bundle); feeds follow each graph's TensorSpecs (docs/bundle-format.md: N the batch, H and
W the image size, h and w the size over the spatial multiple, integer dims fixed); the job is the family's
TranslatePlan, and which graphs it calls, with how many rows, is recorded while it runs, never assumed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, help="bundle to measure (default: random weights of --family)")
    parser.add_argument("--family", help="family of the random-weight bundle (default: the registry's default)")
    parser.add_argument("--config", help="its config keys: a JSON object, or a .json/.yaml file (default: the "
                        "family's defaults, upstream's sizes; --quick: the family's tiny_config when it has one)")
    parser.add_argument("--work-dir", "--work", type=Path, dest="work_dir",
                        help="keep the random-weight model here and reuse it while family and config match")


def read_config(text: str | None) -> dict | None:
    if not text:
        return None
    path = Path(text)
    if path.suffix in (".json", ".yaml", ".yml") and path.is_file():
        import yaml

        return yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    return json.loads(text)


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


# ------------------------------------------------------------------------------------------------ feeds


def feed_shape(tensor: Any, batch: int, size: int, multiple: int) -> tuple[int, ...]:
    dims = {"N": batch, "H": size, "W": size, "h": size // multiple, "w": size // multiple}
    try:
        return tuple(d if isinstance(d, int) else dims[d] for d in tensor.shape)
    except KeyError as exc:
        raise ValueError(f"input '{tensor.name}' {list(tensor.shape)}: unknown symbolic dim {exc}") from None


def synthetic_feeds(graph: Any, batch: int, size: int, multiple: int, rng: np.random.Generator) -> dict:
    """Float inputs N(0, 1) clipped to [-1, 1] (the speed does not depend on values), other inputs zeros."""
    feeds = {}
    for tensor in graph.inputs:
        shape = feed_shape(tensor, batch, size, multiple)
        feeds[tensor.name] = (np.clip(rng.standard_normal(shape), -1, 1).astype(tensor.dtype)
                              if tensor.dtype.startswith("float") else np.zeros(shape, tensor.dtype))
    return feeds


def flops_per_row(bundle: Any, size: int) -> dict[str, Any]:
    """Exact FLOPs (munit_rt.export.flops) of one batch row of every graph at size x size: they scale with N."""
    import onnx

    from munit_rt.export.flops import graph_flops

    precision = "fp32" if "fp32" in bundle.precisions else bundle.precisions[0]
    multiple = bundle.manifest.spatial_multiple
    return {name: graph_flops(onnx.load_from_string(bundle.graph_bytes(name, precision)),
                              {t.name: feed_shape(t, 1, size, multiple) for t in graph.inputs})
            for name, graph in bundle.graphs.items()}


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


@contextmanager
def recorded_calls(backend: Any) -> Iterator[list[tuple[str, int]]]:
    """(graph, rows) of every `backend.run` while active: what a family's job runs, as it runs it."""
    calls: list[tuple[str, int]] = []
    run = backend.run

    def recording(graph: str, feeds: dict, to_host: bool = True) -> dict:
        calls.append((graph, backend.value_info(next(iter(feeds.values())))[0][0]))
        return run(graph, feeds, to_host)

    backend.run = recording
    try:
        yield calls
    finally:
        del backend.run


def job_flops(calls: list[tuple[str, int]], per_row: dict[str, Any]) -> tuple[int, str | None]:
    """Total FLOPs of recorded calls, and the graph that took most of them (the job's main graph)."""
    by_graph: dict[str, int] = {}
    for graph, rows in calls:
        by_graph[graph] = by_graph.get(graph, 0) + rows * per_row[graph].total
    return sum(by_graph.values()), max(by_graph, key=by_graph.get) if by_graph else None


def executed_flops(bundle, graph: str, shapes: dict, mode: str) -> float:
    """FLOPs of one call as ONNX Runtime's CPU session runs it: after the Winograd rewrite of `mode` and constant
    folding (which computes the Winograd filter transforms once), Conv/Gemm/MatMul counted at inferred shapes."""
    import onnx
    import onnxruntime

    from munit_rt import winograd
    from munit_rt.export.flops import graph_flops

    model, _ = winograd.rewrite_bytes(bundle.graph_bytes(graph, "fp32"), mode)
    with tempfile.TemporaryDirectory(prefix="munit-rt-flops-") as tmp:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC  # standard ops
        options.optimized_model_filepath, options.log_severity_level = str(Path(tmp) / "folded.onnx"), 3
        onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return float(graph_flops(onnx.load(options.optimized_model_filepath), shapes).total)


# ------------------------------------------------------------------------------------------------- int8


def with_int8(bundle_path: Path, work: Path, calibrate: Path | None, size: int) -> tuple[Path, str]:
    """The bundle, or a copy of it in `work` quantized there (never the user's bundle)."""
    from munit_rt import Bundle
    from munit_rt.export.quantize import quantize_bundle

    bundle = Bundle(bundle_path)
    if "int8" in bundle.precisions:
        return bundle_path, "the bundle's own int8 graphs"
    copy = work / f"int8-{bundle.manifest_sha256[:12]}.bundle"
    if not _has_int8(copy):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(bundle_path, copy, ignore=shutil.ignore_patterns("engines"))
        images = calibrate or smooth_images(work / "calibration", 20, size)
        print(f"quantizing a copy of the bundle on {images} ...", flush=True)
        quantize_bundle(copy, images, min_psnr=0.0, notify=lambda line: print(f"  {line}", flush=True))
    return copy, f"quantized here on {calibrate or 'smooth random images'} (munit_rt.export.quantize)"


def _has_int8(path: Path) -> bool:
    from munit_rt import Bundle
    from munit_rt.errors import MunitRtError

    try:
        return (path / "manifest.json").is_file() and "int8" in Bundle(path).precisions
    except MunitRtError:  # a copy left half-made by an interrupted run: made again
        return False


def smooth_images(folder: Path, count: int, size: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (max(2, size // 16), max(2, size // 16), 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"img_{i:03d}.png")
    return folder
