"""TensorRT plans for a Triton repository: pick, per graph, a cached engine of `munit-rt build`.

Nothing is built here (that needs the GPU and the TensorRT of the Triton server); the engine cache
(munit_rt/tensorrt/cache.py) is only read. A plan is usable when its sidecar names the graph and precision,
was built from the bundle's current graph bytes (graph_sha256), holds the key its parts hash to, and the
plan file matches the sidecar's size and sha256. A Triton server runs one TensorRT version on one kind of
GPU, so all plans must come from one *target* (TensorRT version, GPU name, compute capability); `gpu` and
`trt_version` choose among several. Within a target, a graph's plan with the largest batch range wins
(newest first on ties), and it must take batch 1 up to the repository's max_batch_size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from munit_rt.errors import BundleError, InputError
from munit_rt.tensorrt import cache


@dataclass(frozen=True)
class Plan:
    graph: str
    path: Path
    target: tuple[str, str, str]   # (tensorrt_version, gpu_name, compute_capability)
    batch: tuple[int, int]         # (min, max) batch every input's profile allows
    mtime: float


def describe_target(target: tuple[str, str, str]) -> str:
    version, gpu, capability = target
    return f"TensorRT {version} on {gpu} (sm {capability})"


def engine_dirs(bundle_path: Path) -> list[Path]:
    """Where `munit-rt build` puts engines: BUNDLE/engines, or the per-bundle user cache (read-only bundles)."""
    dirs = [bundle_path / cache.ENGINES_DIR]
    manifest = bundle_path / "manifest.json"
    if manifest.is_file():
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        dirs.append(base / "munit-rt" / cache.ENGINES_DIR / cache.sha256_file(manifest)[:16])
    return [d for d in dirs if d.is_dir()]


def _batch_range(profile: Any) -> tuple[int, int] | None:
    try:
        lows = [int(shapes["min"][0]) for shapes in profile.values()]
        highs = [int(shapes["max"][0]) for shapes in profile.values()]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None
    return (max(lows), min(highs)) if lows else None


def _plan_if_valid(plan_path: Path, graph: str, precision: str, graph_sha: str) -> Plan | None:
    sidecar = cache.read_sidecar(plan_path)
    if sidecar is None or sidecar.get("graph") != graph:
        return None
    parts = sidecar.get("parts")
    if not isinstance(parts, dict) or parts.get("precision") != precision or parts.get("graph_sha256") != graph_sha:
        return None
    key = cache.sha256_text(cache.canonical_json(parts))
    if sidecar.get("key") != key or not plan_path.name.endswith(f"-{key[:16]}{cache.PLAN_SUFFIX}"):
        return None
    try:
        if plan_path.stat().st_size != sidecar.get("plan_bytes") \
                or cache.sha256_file(plan_path) != sidecar.get("plan_sha256"):
            return None
    except OSError:
        return None
    batch = _batch_range(parts.get("profile"))
    if batch is None:
        return None
    target = (str(parts.get("tensorrt_version")), str(parts.get("gpu_name")), str(parts.get("compute_capability")))
    return Plan(graph, plan_path, target, batch, plan_path.stat().st_mtime)


def find_plans(bundle: Any, graphs: Iterable[str], precision: str, max_batch: int | None, gpu: str | None = None,
               trt_version: str | None = None) -> tuple[dict[str, Plan], int]:
    """One plan per graph from a single target, and the max_batch_size they all serve."""
    graphs = list(graphs)
    bundle_path = bundle.path
    candidates: list[Plan] = []
    for directory in engine_dirs(bundle_path):
        for graph in graphs:
            graph_sha = bundle.graphs[graph].files[precision].sha256
            for plan_path in sorted(directory.glob(f"{graph}-{precision}-*{cache.PLAN_SUFFIX}")):
                plan = _plan_if_valid(plan_path, graph, precision, graph_sha)
                if plan is not None:
                    candidates.append(plan)
    build_hint = (f"run `munit-rt build {bundle_path} --precision {precision}` first, on a machine with the GPU "
                  "and the TensorRT version of your Triton server (or use --platform onnxruntime)")
    if not candidates:
        raise BundleError(f"{bundle_path}: no TensorRT engines for its current {precision} graphs in "
                          f"{bundle_path / cache.ENGINES_DIR}; {build_hint}")
    wanted = [p for p in candidates
              if (gpu is None or gpu.lower() in p.target[1].lower() or gpu == p.target[2])
              and (trt_version is None or p.target[0] == trt_version or p.target[0].startswith(trt_version + "."))]
    if not wanted:
        found = sorted({describe_target(p.target) for p in candidates})
        raise InputError(f"no engines match --gpu/--trt-version (the bundle has engines for: {'; '.join(found)})")

    by_target: dict[tuple[str, str, str], dict[str, list[Plan]]] = {}
    for plan in wanted:
        by_target.setdefault(plan.target, {}).setdefault(plan.graph, []).append(plan)
    complete = {target: plans for target, plans in by_target.items() if set(plans) == set(graphs)}
    if not complete:
        lines = [f"{describe_target(t)} lacks {', '.join(g for g in graphs if g not in plans)}"
                 for t, plans in sorted(by_target.items())]
        raise BundleError(f"{bundle_path}: no single TensorRT target has engines for every graph needed "
                          f"({'; '.join(lines)}); {build_hint}")
    if len(complete) > 1:
        targets = "; ".join(describe_target(t) for t in sorted(complete))
        raise InputError(f"the bundle has complete engine sets for several targets ({targets}); choose one with "
                         "--gpu NAME and/or --trt-version VERSION (the Triton server's)")
    (target, plans), = complete.items()

    chosen: dict[str, Plan] = {}
    for graph in graphs:
        usable = [p for p in plans[graph] if p.batch[0] <= 1 and (max_batch is None or p.batch[1] >= max_batch)]
        if not usable:
            best = max(p.batch[1] for p in plans[graph])
            raise InputError(f"graph '{graph}': its engines take batches up to {best}, fewer than --max-batch "
                             f"{max_batch}; lower --max-batch or rebuild with `munit-rt build --max-batch {max_batch}`"
                             if max_batch is not None else
                             f"graph '{graph}': no engine takes batch 1; rebuild with `munit-rt build`")
        chosen[graph] = max(usable, key=lambda p: (p.batch[1], p.mtime))
    served = max_batch if max_batch is not None else min(p.batch[1] for p in chosen.values())
    return chosen, served
