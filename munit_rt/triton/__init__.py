"""Triton Inference Server model repositories from munit-rt bundles (`munit-rt export-triton`).

    from munit_rt.triton import export_triton
    repo = export_triton("model.bundle", "triton_repo")                       # ONNX Runtime backend
    repo = export_triton("model.bundle", "triton_repo", platform="tensorrt")  # plans from `munit-rt build`

Layout written (MUNIT; models per family in munit_rt/triton/layout.py):

    REPO/munit_content_encoder_a/config.pbtxt   platform onnxruntime_onnx (or tensorrt_plan), dynamic batching
    REPO/munit_content_encoder_a/1/model.onnx   the bundle's graph file, copied and checked against its sha256
    ...                                         (model.plan with --platform tensorrt)
    REPO/munit_a2b/config.pbtxt                 ensemble: image + style -> output
    REPO/munit_a2b/1/                           (ensembles have an empty version folder)
    REPO/munit_a2b_guided/config.pbtxt          ensemble: image + reference -> output

Tensors are those of the bundle (docs/bundle-format.md): float32 NCHW images in [-1, 1], style codes
[N, style_dim]; pre- and post-processing (resize, normalise, to uint8) stay with the client. The repository
is written into a temporary folder beside REPO and renamed into place, so REPO is complete or absent.
Pure python (no torch, no protobuf): tests parse every config with Triton's ModelConfig protobuf.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from munit_rt.errors import BundleError, InputError, MunitRtError
from munit_rt.bundle import open_bundle
from munit_rt.triton.layout import DIRECTIONS, Layout, family_layout
from munit_rt.triton.pbtxt import ensemble_config, model_config, to_pbtxt

__all__ = ["export_triton", "TritonRepository", "PLATFORMS", "KINDS", "DEFAULT_MAX_BATCH"]

PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}
KINDS = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DEFAULT_MAX_BATCH = 16  # as `munit-rt build`'s default profile, so both platforms serve the same batches
VERSION = "1"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class TritonRepository:
    """What `export_triton` wrote."""

    path: Path
    family: str
    platform: str
    precision: str
    max_batch: int
    kind: str
    instances: int
    models: list[str] = field(default_factory=list)      # one per graph
    ensembles: list[str] = field(default_factory=list)   # MUNIT: <prefix>_<direction>[_guided]
    target: str | None = None                            # TensorRT: the engines' TensorRT version and GPU

    def describe(self) -> str:
        lines = [f"wrote Triton model repository {self.path}",
                 f"  {self.family} bundle, platform {PLATFORMS[self.platform][0]}, {self.precision}, max batch "
                 f"{self.max_batch}, {self.instances} x {self.kind} per model"]
        if self.target:
            lines.append(f"  engines: {self.target} (the Triton server must use this TensorRT version and GPU)")
        lines.append(f"  models:    {', '.join(self.models)}")
        if self.ensembles:
            lines.append(f"  ensembles: {', '.join(self.ensembles)}")
        lines.append(f"serve: tritonserver --model-repository={self.path.resolve()}")
        return "\n".join(lines)


def export_triton(bundle: str | Path, repo: str | Path, *, platform: str = "onnxruntime", precision: str = "fp32",
                  max_batch: int | None = None, instances: int = 1, kind: str | None = None, direction: str = "both",
                  prefix: str | None = None, force: bool = False, gpu: str | None = None,
                  trt_version: str | None = None, progress: Callable[[str], None] | None = None) -> TritonRepository:
    """Write a Triton model repository for `bundle` at `repo` and return what was written.

    Args:
        platform: "onnxruntime" (the bundle's ONNX graphs) or "tensorrt" (plans cached by `munit-rt build`).
        precision: which graphs ("fp32" or "fp16"; FP16 graphs keep FP32 inputs and outputs).
        max_batch: max_batch_size of every model; default 16, for TensorRT the engines' largest common batch.
        instances, kind: instance_group count and kind ("auto", "gpu", "cpu"; default gpu for TensorRT, auto
            for ONNX Runtime: GPU when Triton sees one, else CPU).
        direction: "a2b", "b2a" or "both": the MUNIT ensembles (and graphs they use), the CycleGAN generators.
        prefix: model-name prefix (default: the bundle's family, e.g. munit_content_encoder_a).
        force: replace an existing `repo` (swapped in by rename, then the old one deleted).
        gpu, trt_version: TensorRT only, choose among engines built for several GPUs / TensorRT versions.
    """
    say = progress or (lambda line: None)
    if platform not in PLATFORMS:
        raise InputError(f"--platform must be one of {', '.join(PLATFORMS)}, got {platform!r}")
    kind = kind or ("gpu" if platform == "tensorrt" else "auto")
    if kind not in KINDS:
        raise InputError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if platform == "tensorrt" and kind == "cpu":
        raise InputError("--kind cpu: TensorRT plans run on GPUs only; use --platform onnxruntime for CPU serving")
    if max_batch is not None and max_batch < 1:
        raise InputError(f"--max-batch must be >= 1, got {max_batch}")
    if instances < 1:
        raise InputError(f"--instances must be >= 1, got {instances}")
    if direction not in (*DIRECTIONS, "both"):
        raise InputError(f"--direction must be a2b, b2a or both, got {direction!r}")

    opened = open_bundle(bundle)
    bundle_path = opened.path
    prefix = prefix if prefix is not None else opened.family
    if not _NAME_RE.match(prefix):
        raise InputError(f"--prefix {prefix!r}: Triton model names here are letters, digits, '_', '.', '-'")
    if precision not in opened.precisions:
        raise BundleError(f"bundle {bundle_path} has no {precision} graphs (exported: "
                          f"{', '.join(opened.precisions)}); pass --precision {opened.precisions[0]} or re-export")
    layout = family_layout(opened, direction, prefix)
    repo = Path(repo)
    _check_destination(repo, bundle_path, force)

    target = None
    if platform == "tensorrt":
        from munit_rt.triton.engines import describe_target, find_plans

        plans, max_batch = find_plans(opened, [m.graph for m in layout.models], precision, max_batch, gpu,
                                      trt_version)
        sources = {graph: (plan.path, None) for graph, plan in plans.items()}
        target = describe_target(next(iter(plans.values())).target)
    else:
        if gpu is not None or trt_version is not None:
            raise InputError("--gpu and --trt-version choose TensorRT engines; they need --platform tensorrt")
        max_batch = max_batch if max_batch is not None else DEFAULT_MAX_BATCH
        sources = {m.graph: (opened.graph_path(m.graph, precision), opened.graphs[m.graph].files[precision].sha256)
                   for m in layout.models}

    result = TritonRepository(repo, opened.family, platform, precision, max_batch, KINDS[kind], instances, target=target)
    staging = Path(tempfile.mkdtemp(prefix=f".{repo.name}.tmp-", dir=repo.parent))
    try:
        _write_repository(staging, layout, sources, result, bundle_path, say)
        _publish(staging, repo, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


# ------------------------------------------------------------------------------------------------ writing


def _check_destination(repo: Path, bundle_path: Path, force: bool) -> None:
    if repo.exists() or repo.is_symlink():
        if not force:
            raise InputError(f"{repo} already exists; pass --force to replace it")
        if not repo.is_dir() or repo.is_symlink():
            raise InputError(f"{repo} exists and is not a folder; refusing to replace it")
        if bundle_path.resolve().is_relative_to(repo.resolve()):
            raise InputError(f"{repo} holds the bundle {bundle_path}; write the repository elsewhere")
    if not repo.parent.is_dir():
        raise InputError(f"{repo.parent}: no such folder (the repository's parent must exist)")


def _copy_checked(source: Path, dest: Path, sha256: str | None) -> None:
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(dest, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                dst.write(chunk)
    except FileNotFoundError:
        raise BundleError(f"{source}: listed in the bundle's manifest but missing; re-export the bundle") from None
    if sha256 is not None and digest.hexdigest() != sha256:
        raise BundleError(f"{source}: does not match its sha256 in the manifest (modified or corrupt); re-export")


def _write_repository(staging: Path, layout: Layout, sources: dict[str, tuple[Path, str | None]],
                      result: TritonRepository, bundle_path: Path, say: Callable[[str], None]) -> None:
    backend, filename = PLATFORMS[result.platform]
    origin = f"munit-rt export-triton from {bundle_path.resolve()}"
    for spec in layout.models:
        source, sha = sources[spec.graph]
        folder = staging / spec.name
        (folder / VERSION).mkdir(parents=True)
        _copy_checked(source, folder / VERSION / filename, sha)
        config = model_config(spec.name, backend, result.max_batch, spec.inputs, spec.outputs, result.instances,
                              result.kind)
        comments = (origin, f"graph {spec.graph} ({result.precision}): {source.name}"
                    + (f", sha256 {sha}" if sha else ""))
        (folder / "config.pbtxt").write_text(to_pbtxt(config, comments), encoding="utf-8")
        result.models.append(spec.name)
        say(f"{spec.name:<28} {backend}  {spec.graph} ({result.precision})")
    for ensemble in layout.ensembles:
        folder = staging / ensemble.name
        (folder / VERSION).mkdir(parents=True)
        config = ensemble_config(ensemble.name, result.max_batch, ensemble.inputs, ensemble.outputs, ensemble.steps)
        text = to_pbtxt(config, (origin, ensemble.description) if ensemble.description else (origin,))
        (folder / "config.pbtxt").write_text(text, encoding="utf-8")
        result.ensembles.append(ensemble.name)
        say(f"{ensemble.name:<28} ensemble  {' -> '.join(step.model for step in ensemble.steps)}")
    for folder in staging.rglob("*"):  # mkdtemp made the root 0700; the server may run as another user
        os.chmod(folder, 0o755 if folder.is_dir() else 0o644)
    os.chmod(staging, 0o755)


def _publish(staging: Path, repo: Path, force: bool) -> None:
    """Rename staging into place; with force, the old repository is moved aside first, then deleted."""
    old = None
    if repo.exists() and force:
        old = Path(tempfile.mkdtemp(prefix=f".{repo.name}.old-", dir=repo.parent))
        os.replace(repo, old / repo.name)
    try:
        os.rename(staging, repo)
    except OSError as exc:
        if old is not None:  # put the previous repository back
            os.replace(old / repo.name, repo)
            shutil.rmtree(old, ignore_errors=True)
        raise MunitRtError(f"{repo}: cannot move the new repository into place ({exc.strerror or exc})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
