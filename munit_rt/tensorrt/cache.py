"""Engine cache: BUNDLE/engines/<graph>-<precision>-<key[:16]>.plan plus a .json sidecar with the full key.

An engine is only valid for the exact graph bytes, TensorRT version, GPU, compute capability, precision and
profile it was built with, so all of them go into the key:

    key = sha256(canonical JSON of {cache_format, graph_sha256, tensorrt_version, gpu_name,
                                    compute_capability, precision, profile})

`find_engine` returns a path only when the sidecar holds the same full key and the plan's size and sha256
match the sidecar; anything else (a stale or half-written engine) is ignored and rebuilt. When a new engine is
written, engines of the same graph and precision built from *other graph bytes* are removed (they can never be
loaded again); engines for other GPUs, TensorRT versions or profiles are kept, since a bundle on shared storage
may serve several machines. Every write is atomic (temp file in the same directory + os.replace).

The timing cache (`timing-<key[:16]>.cache`) is keyed by TensorRT version + GPU name + compute capability only.
If BUNDLE/engines cannot be written (a read-only install), engines go to
$XDG_CACHE_HOME/munit-rt/engines/<sha256(manifest.json)[:16]>/ instead.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from munit_rt.errors import BundleError
from munit_rt.tensorrt import CudaError, cuda_check, import_cudart

CACHE_FORMAT = 1
ENGINES_DIR = "engines"
PLAN_SUFFIX = ".plan"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ device facts


@dataclass(frozen=True)
class DeviceInfo:
    name: str                 # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str   # e.g. "9.0"


def query_device(device: int = 0) -> DeviceInfo:
    """GPU name and compute capability through cuda-python (tests replace this function)."""
    cudart = import_cudart()
    try:
        props = cuda_check(cudart, cudart.cudaGetDeviceProperties(device), f"cudaGetDeviceProperties({device})")
    except CudaError as exc:
        raise CudaError(f"{exc}; TensorRT needs an NVIDIA GPU visible to this process (check nvidia-smi and "
                        "CUDA_VISIBLE_DEVICES)") from None
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode("utf-8", "replace")
    return DeviceInfo(str(name).strip(), f"{props.major}.{props.minor}")


# ------------------------------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class EngineKey:
    graph: str                      # file name only; not part of the digest
    precision: str
    graph_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    profile: Mapping[str, Any] = field(default_factory=dict)  # profiles.profile_json(...)

    def parts(self) -> dict[str, Any]:
        return {
            "cache_format": CACHE_FORMAT,
            "graph_sha256": self.graph_sha256,
            "tensorrt_version": str(self.tensorrt_version),
            "gpu_name": self.gpu_name,
            "compute_capability": str(self.compute_capability),
            "precision": self.precision,
            "profile": json.loads(canonical_json(self.profile)),  # tuples -> lists, as a sidecar reads back
        }

    @property
    def digest(self) -> str:
        return sha256_text(canonical_json(self.parts()))

    @property
    def file_name(self) -> str:
        return f"{self.graph}-{self.precision}-{self.digest[:16]}{PLAN_SUFFIX}"


def engine_key(bundle: Any, graph: str, precision: str, profile: Mapping[str, Any], tensorrt_version: str,
               device: DeviceInfo) -> EngineKey:
    files = bundle.graphs[graph].files
    if precision not in files:
        raise BundleError(f"the manifest lists no {precision} file for graph '{graph}'")
    return EngineKey(graph, precision, files[precision].sha256, str(tensorrt_version), device.name,
                     device.compute_capability, profile)


# --------------------------------------------------------------------------------------------- layout


def engine_dir(bundle_path: Path) -> Path:
    """BUNDLE/engines when writable, else a per-bundle directory in the user's cache."""
    directory = Path(bundle_path) / ENGINES_DIR
    try:
        directory.mkdir(exist_ok=True)
        if os.access(directory, os.W_OK | os.X_OK):
            return directory
    except OSError:
        pass
    manifest = Path(bundle_path) / "manifest.json"
    tag = sha256_file(manifest)[:16] if manifest.is_file() else sha256_text(str(Path(bundle_path).resolve()))[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    fallback = base / "munit-rt" / ENGINES_DIR / tag
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def sidecar_path(plan_path: Path) -> Path:
    return plan_path.with_suffix(".json")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, then os.replace: readers never see a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_sidecar(plan_path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(sidecar_path(plan_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find_engine(directory: Path, key: EngineKey, verify_hash: bool = True) -> Path | None:
    """The cached plan for exactly this key, or None (missing, stale, or not matching its sidecar)."""
    plan = Path(directory) / key.file_name
    sidecar = read_sidecar(plan)
    if sidecar is None or not plan.is_file():
        return None
    if sidecar.get("key") != key.digest or sidecar.get("parts") != key.parts() or sidecar.get("graph") != key.graph:
        return None
    if plan.stat().st_size != sidecar.get("plan_bytes"):
        return None
    if verify_hash and sha256_file(plan) != sidecar.get("plan_sha256"):
        return None
    return plan


def write_engine(directory: Path, key: EngineKey, plan: bytes, build_seconds: float | None = None) -> Path:
    """Store a plan and its sidecar atomically (plan first: a plan without a sidecar is never used)."""
    from munit_rt import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / key.file_name
    atomic_write(path, bytes(plan))
    sidecar = {"key": key.digest, "graph": key.graph, "parts": key.parts(), "plan_bytes": len(plan),
               "plan_sha256": hashlib.sha256(plan).hexdigest(), "munit_rt_version": __version__,
               "build_seconds": None if build_seconds is None else round(build_seconds, 3)}
    atomic_write(sidecar_path(path), (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    remove_stale(directory, key)
    return path


def remove_stale(directory: Path, key: EngineKey) -> list[Path]:
    """Delete engines of key.graph/key.precision built from other graph bytes; return the removed plans."""
    removed = []
    for plan in sorted(Path(directory).glob(f"{key.graph}-{key.precision}-*{PLAN_SUFFIX}")):
        if plan.name == key.file_name:
            continue
        sidecar = read_sidecar(plan)
        if sidecar is None or sidecar.get("graph") != key.graph:
            continue  # not ours to judge (being written, or another graph whose name shares the prefix)
        if sidecar.get("parts", {}).get("graph_sha256") != key.graph_sha256:
            plan.unlink(missing_ok=True)
            sidecar_path(plan).unlink(missing_ok=True)
            removed.append(plan)
    return removed


def timing_cache_path(directory: Path, tensorrt_version: str, device: DeviceInfo) -> Path:
    tag = sha256_text(canonical_json({"cache_format": CACHE_FORMAT, "tensorrt_version": str(tensorrt_version),
                                      "gpu_name": device.name, "compute_capability": device.compute_capability}))
    return Path(directory) / f"timing-{tag[:16]}.cache"
