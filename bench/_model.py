"""The model under test for bench/throughput.py: a bundle of any family given with --bundle, or a random-weight
MUNIT built and exported here (official default config; --quick: a tiny one).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench._workload import ModelInfo

DEFAULT_GEN = {"dim": 64, "n_res": 4, "style_dim": 8, "mlp_dim": 256, "n_downsample": 2}  # official defaults
QUICK_GEN = {"dim": 8, "n_res": 1, "style_dim": 8, "mlp_dim": 16, "n_downsample": 2}


def fp16_consumer_present(cuda: bool) -> bool:
    """Some backend here would run FP16 graphs (TensorRT, ONNX Runtime CUDA): only then are they exported."""
    from munit_rt.backends.tensorrt import TensorRTBackend

    ort_cuda = False
    if cuda:
        import onnxruntime

        ort_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return TensorRTBackend.unavailable_reason() is None or ort_cuda


def build_default_model(work: Path, gen: dict[str, int], size: int, precision: str) -> tuple[Path, Path, float | None]:
    """Random-weight checkpoint (seed 0) and its bundle in `work`, and the export's seconds (None: reused)."""
    import torch

    from munit_rt import export
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.config import config_from_dict
    from munit_rt.training.families.munit.model import AdaINGen

    config = config_from_dict({"gen": gen, "new_size": size, "crop_image_height": size, "crop_image_width": size})
    checkpoint, bundle = work / "gen_00000000.pt", work / "bench.bundle"
    manifest = bundle / "manifest.json"
    wanted = ["fp32", "fp16"] if precision == "both" else ["fp32"]
    if checkpoint.is_file() and manifest.is_file():
        old = json.loads(manifest.read_text())
        if old.get("config") == config.to_dict() and sorted(old.get("precisions", [])) == sorted(wanted):
            return checkpoint, bundle, None
    torch.manual_seed(0)
    gens = {d: AdaINGen(config.input_dim(d), config.gen).eval() for d in ("a", "b")}
    work.mkdir(parents=True, exist_ok=True)
    save_checkpoint(checkpoint, "munit", gens, config, iteration=0)
    started = time.perf_counter()
    export.export_bundle(checkpoint, bundle, precision=precision, force=True)
    return checkpoint, bundle, time.perf_counter() - started


@contextmanager
def model_context(args: argparse.Namespace, settings: dict[str, Any], cuda: bool) -> Iterator[ModelInfo]:
    """The ModelInfo to measure; sets settings["model"] (a description) and settings["export_s"]."""
    from munit_rt.bundle import Bundle

    if args.bundle:
        bundle = Bundle(args.bundle)
        source = bundle.manifest.get("source_checkpoint") or {}
        settings.update(model=f"{bundle.spec.title} bundle {args.bundle}", export_s=None)
        if bundle.family != "munit":
            yield family_model(bundle, source, args.checkpoint)
            return
        checkpoint = args.checkpoint or (Path(source["path"]) if source.get("path") else None)
        problem = None
        if checkpoint is None or not checkpoint.is_file():
            problem = f"source checkpoint {checkpoint} not found (pass --checkpoint)"
        elif args.checkpoint is None and source.get("sha256"):
            from munit_rt.training.checkpoint import file_sha256

            if file_sha256(checkpoint) != source["sha256"]:
                problem = f"{checkpoint} is not the checkpoint the bundle was exported from (sha256 differs)"
        yield ModelInfo(bundle, checkpoint, problem)
        return
    precision = args.precision
    if precision == "auto":
        precision = "both" if importlib.util.find_spec("onnxconverter_common") and fp16_consumer_present(cuda) else "fp32"
    gen = QUICK_GEN if args.quick else DEFAULT_GEN
    with tempfile.TemporaryDirectory(prefix="munit-rt-throughput-") as tmp:
        work = args.work_dir or Path(tmp)
        print(f"building the {'tiny' if args.quick else 'default'} model ({precision}) in {work} ...", flush=True)
        checkpoint, bundle_path, export_s = build_default_model(work, gen, settings["size"], precision)
        settings.update(model="random-weight MUNIT " + ", ".join(f"{k} {v}" for k, v in gen.items()),
                        export_s=export_s)
        yield ModelInfo(Bundle(bundle_path), checkpoint)


def family_model(bundle: Any, source: dict[str, Any], checkpoint: Path | None) -> ModelInfo:
    """CycleGAN/StarGAN: every source file, in the order the sha256 covers (the manifest's path first), as
    munit_rt.backends.torch resolves them; their sha256 is checked when the PyTorch runners load them."""
    if checkpoint is not None:
        paths = [checkpoint]
    elif source.get("files"):
        paths = sorted((Path(f["path"]) for f in source["files"]), key=lambda p: str(p) != source.get("path"))
    else:
        paths = [Path(source["path"])] if source.get("path") else []
    missing = [str(p) for p in paths if not p.is_file()]
    problem = None
    if not paths or missing:
        problem = f"source checkpoint {', '.join(missing) or 'unknown'} not found (pass --checkpoint)"
    return ModelInfo(bundle, paths[0] if paths else None, problem, checkpoints=tuple(paths),
                     check_sha256=checkpoint is None)  # as for MUNIT: a --checkpoint given is taken as it is
