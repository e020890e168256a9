"""ONNX graph -> TensorRT engine, and the cached build of a bundle's engines.

Engines are built *strongly typed* from the bundle's graphs of the requested precision: fp16 engines from
fp16/*.onnx, fp32 engines from fp32/*.onnx. The precision is decided at export; TensorRT keeps every tensor
in the type the ONNX graph gives it (TensorRT 11 removed BuilderFlag.FP16 and always types strongly; on 10.x
we pass NetworkDefinitionCreationFlag.STRONGLY_TYPED). fp32 engines also clear BuilderFlag.TF32, so "fp32"
means fp32 arithmetic, as the ONNX Runtime parity numbers in the manifest assume.

    build_engine(onnx_path, profile, precision, workspace_mib, timing_cache_path, logger) -> plan bytes
    build_engines(bundle, BuildOptions) -> [engine paths]   `munit-rt build`; reuses current cached engines
    ensure_engines(bundle, precision, profile_options)      first use in `translate --backend tensorrt`
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from munit_rt.errors import BundleError
from munit_rt.tensorrt import EngineBuildError, import_tensorrt, tensorrt_major
from munit_rt.tensorrt import cache as engine_cache
from munit_rt.tensorrt.profiles import ProfileOptions, ShapeRange, profile_json, profile_shapes

PRECISIONS = ("fp16", "fp32")


def _import_tensorrt():  # seam: tests inject a fake `trt` module here
    return import_tensorrt()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp16"
    profile: ProfileOptions = field(default_factory=ProfileOptions)
    workspace_mib: int | None = None       # None: TensorRT's default (the device's memory)
    graphs: tuple[str, ...] | None = None  # None: every graph of the bundle
    force: bool = False                    # rebuild even when a current engine is cached


@dataclass(frozen=True)
class EngineRecord:
    graph: str
    path: Path
    built: bool  # False: the cached engine was current


# ------------------------------------------------------------------------------------------- one engine


def network_flags(trt) -> int:
    """Strongly typed, explicit batch. 0 is explicit batch since TensorRT 10; 11 is always strongly typed."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None or tensorrt_major(trt) >= 11:
        return 0
    return 1 << int(flag)


def parser_errors(parser) -> list[str]:
    """Every parser error as "node NAME (OP): DESC" (node index when the name is unknown)."""
    messages = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        node_name = _call(error, "node_name")
        if not node_name:
            node = _call(error, "node")
            node_name = f"#{node}" if node is not None and node != -1 else "?"
        operator = _call(error, "node_operator")
        where = f"node {node_name}" + (f" ({operator})" if operator else "")
        messages.append(f"{where}: {_call(error, 'desc') or error}")
    return messages


def _call(obj: Any, method: str) -> Any:
    fn = getattr(obj, method, None)
    try:
        return fn() if callable(fn) else None
    except Exception:  # noqa: BLE001 - an accessor missing in an older TensorRT must not hide the real error
        return None


def build_engine(onnx_path: Path, profile_shapes: Mapping[str, ShapeRange], precision: str,
                 workspace_mib: int | None, timing_cache_path: Path | None, logger: Any) -> bytes:
    """Parse `onnx_path`, add one optimisation profile, build and return the serialized engine."""
    if precision not in PRECISIONS:
        raise EngineBuildError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    trt = _import_tensorrt()
    onnx_path = Path(onnx_path)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(str(onnx_path))  # from the file, so external weights resolve
    if not parsed or parser.num_errors:
        errors = parser_errors(parser) or ["the parser reported failure without details"]
        raise EngineBuildError(f"TensorRT could not parse {onnx_path} ({len(errors)} error"
                               f"{'s' if len(errors) != 1 else ''}): " + "; ".join(errors))

    config = builder.create_builder_config()
    if workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)

    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(inputs) != sorted(profile_shapes):
        raise EngineBuildError(f"{onnx_path.name}: the graph's inputs {sorted(inputs)} do not match the manifest's "
                               f"{sorted(profile_shapes)}; re-export the bundle")
    profile = builder.create_optimization_profile()
    for name in inputs:
        shapes = profile_shapes[name]
        profile.set_shape(name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(profile)

    timing_cache = None
    if timing_cache_path is not None:
        path = Path(timing_cache_path)
        timing_cache = config.create_timing_cache(path.read_bytes() if path.is_file() else b"")
        config.set_timing_cache(timing_cache, False)  # ignore_mismatch=False: a foreign cache is not used

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above; "
                               "a larger --workspace or a smaller --max-size/--max-batch may help)")
    if timing_cache is not None:
        engine_cache.atomic_write(Path(timing_cache_path), bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(plan))


# ---------------------------------------------------------------------------------------- bundle engines


def _select_graphs(bundle: Any, graphs: Iterable[str] | None) -> list[str]:
    available = list(bundle.graphs)
    if graphs is None:
        return available
    names = list(dict.fromkeys(graphs))
    unknown = [g for g in names if g not in bundle.graphs]
    if unknown:
        raise BundleError(f"--graphs: unknown graph {', '.join(unknown)} (bundle {bundle.path} has "
                          f"{', '.join(available)})")
    return names


def _check_precision(bundle: Any, precision: str) -> None:
    if precision not in PRECISIONS:
        raise EngineBuildError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision not in bundle.precisions:
        raise BundleError(f"bundle {bundle.path} has no {precision} graphs (exported: {', '.join(bundle.precisions)}); "
                          f"re-export with --precision {'both' if precision == 'fp16' else precision} or pass "
                          f"--precision {bundle.precisions[0]}")


def prepare_engines(bundle: Any, options: BuildOptions,
                    progress: Callable[[str], None] = _stderr, first_use: bool = False) -> list[EngineRecord]:
    """Find or build the engine of each selected graph; the one loop behind build_engines and ensure_engines."""
    _check_precision(bundle, options.precision)
    names = _select_graphs(bundle, options.graphs)
    shapes = profile_shapes(bundle, options.profile, names)  # option errors before anything heavy
    trt = _import_tensorrt()
    device = engine_cache.query_device()
    directory = engine_cache.engine_dir(bundle.path)
    timing_path = engine_cache.timing_cache_path(directory, trt.__version__, device)
    logger = None
    records = []
    for name in names:
        key = engine_cache.engine_key(bundle, name, options.precision, profile_json(shapes[name]),
                                      trt.__version__, device)
        cached = None if options.force else engine_cache.find_engine(directory, key)
        if cached is not None:
            records.append(EngineRecord(name, cached, built=False))
            continue
        note = " (first use, this takes a minute)" if first_use else ""
        progress(f"building engine {name} {options.precision}{note} ...")
        logger = logger or _logger(trt)
        started = time.perf_counter()
        plan = build_engine(bundle.graph_path(name, options.precision), shapes[name], options.precision,
                            options.workspace_mib, timing_path, logger)
        seconds = time.perf_counter() - started
        path = engine_cache.write_engine(directory, key, plan, build_seconds=seconds)
        progress(f"built engine {name} {options.precision} in {seconds:.1f} s -> {path}")
        records.append(EngineRecord(name, path, built=True))
    return records


def _logger(trt) -> Any:
    from munit_rt.tensorrt.runner import trt_logger

    return trt_logger(trt)


def build_engines(bundle: Any, options: BuildOptions, progress: Callable[[str], None] = _stderr) -> list[Path]:
    """`munit-rt build`: an engine per selected graph; graphs whose cached engine is current are not rebuilt."""
    return [record.path for record in prepare_engines(bundle, options, progress)]


def ensure_engines(bundle: Any, precision: str, profile: ProfileOptions | None = None,
                   graphs: Iterable[str] | None = None, workspace_mib: int | None = None,
                   progress: Callable[[str], None] = _stderr) -> dict[str, Path]:
    """Engine paths for `graphs` (default all), building missing or stale ones with a first-use message."""
    options = BuildOptions(precision=precision, profile=profile or ProfileOptions(), workspace_mib=workspace_mib,
                           graphs=tuple(graphs) if graphs is not None else None)
    return {r.graph: r.path for r in prepare_engines(bundle, options, progress, first_use=True)}
