"""The bundle manifest, typed (docs/bundle-format.md): the one definition export writes and the runtime reads.

`parse_manifest(data)` validates a decoded manifest.json and returns a `Manifest`; every key the runtime or
`info` reads is checked here (type, range, finite numbers, choices, required keys; file paths that stay inside
the bundle; the graphs the family needs with their fixed I/O names), and any problem is a `ManifestError`
naming the key. The family's own keys are parsed by its runtime module (munit_rt.families.X.parse_model) and
kept typed in `Manifest.model`. Nothing downstream reads the JSON itself. Export validates the manifest it
wrote with this same function before anything is published.

Schema versions: 2 is written (preprocess always records `fit`; MUNIT records its training resample,
bilinear); 1 is still read, with the rules it was written under (resample: bicubic for shorter-side resizes,
bilinear for square ones; fit: the family's).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from munit_rt.bundle.fields import Fields, ManifestError, check_int, check_str, show_key
from munit_rt.bundle.onnx_proto import ELEM_TYPES
from munit_rt.preprocess import FIT_MODES, RESAMPLE_FILTERS, RESIZE_MODES, Preprocess
from munit_rt.text import printable

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "munit-rt-bundle"
SPATIAL_DIMS = ("H", "W", "h", "w")  # image size; lower case: divided by the spatial multiple
SCHEMA_VERSION = 2               # what export writes
READABLE_VERSIONS = (1, 2)
MAX_MANIFEST_BYTES = 16 << 20    # the largest real manifest is ~60 KB
PRECISIONS = ("fp32", "fp16", "int8")  # graph files a bundle may hold (all keep FP32 inputs and outputs); int8:
                                       # `munit-rt quantize` (a graph not worth quantizing names its fp32 file)
RUNTIME_PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # what --precision names; bf16 runs from the fp32 graphs
QUALITY_PRECISIONS = ("fp16", "bf16", "int8")  # precisions whose measured quality a manifest may record
DTYPES = tuple(ELEM_TYPES.values())
MAX_SIDE = 1 << 16               # image sizes, multiples and channel counts stay far below this
MAX_DIM = 1 << 31
MAX_IO = 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # graph and tensor names: also file and model names


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | str, ...]  # int: fixed; str: symbolic (dynamic)

    @property
    def rank(self) -> int:
        return len(self.shape)

    def shape_at(self, batch: int, size: int, multiple: int) -> tuple[int, ...]:
        """The concrete shape for `batch` images of size x size, by the bundle format's convention
        (docs/bundle-format.md): a symbolic axis 0 is the batch, H and W the image size, h and w the image size
        divided by the spatial multiple; fixed dims as declared. ValueError names any other symbolic dim."""
        dims = []
        for axis, dim in enumerate(self.shape):
            if not isinstance(dim, str):
                dims.append(dim)
            elif axis == 0:
                dims.append(batch)
            elif dim in SPATIAL_DIMS:
                dims.append(size // (multiple if dim.islower() else 1))
            else:
                raise ValueError(f"input '{self.name}' has the symbolic dim {dim!r} at axis {axis} "
                                 f"(known: N, {', '.join(SPATIAL_DIMS)})")
        return tuple(dims)


@dataclass(frozen=True)
class GraphFile:
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Parity:
    """An export check of one graph file: FP32 against PyTorch (max abs error <= atol), reduced precision
    against FP32 (min PSNR >= its bound)."""

    passed: bool
    max_abs_err: float | None = None
    atol: float | None = None
    min_psnr_db: float | None = None
    psnr_bound_db: float | None = None


@dataclass(frozen=True)
class Quality:
    """The measured quality of one reduced precision: the whole translate job's outputs at that precision against
    FP32 on held-out images (`munit-rt quantize`): PSNR over the [-1, 1] outputs (peak-to-peak 2; None: identical)
    and the 99.9th percentile of the uint8 level differences of the written pixels, the worst job (direction)."""

    psnr_db: float | None
    p999_levels: float
    max_levels: int
    images: int                       # held-out images the jobs translated
    outputs: int                      # outputs compared (images x outputs per input, every job)
    jobs: tuple[str, ...]             # the jobs measured (directions; "default" for a family without)
    measured_with: str                # backend and what it executed
    calibration_images: int | None = None
    tool: str | None = None           # what made the graphs (int8: the quantizer and its settings)
    tool_version: str | None = None
    kept_fp32: dict[str, tuple[str, ...]] = field(default_factory=dict)  # graph -> Conv nodes left in FP32
    fp32_graphs: tuple[str, ...] = ()  # graphs whose file is the fp32 one (not worth quantizing, or never run)
    created: str = "?"


@dataclass(frozen=True)
class GraphSpec:
    name: str
    role: str
    domain: str | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict[str, GraphFile]       # precision -> file
    parity: dict[str, Parity]         # precision -> check
    fields: dict[str, str] = field(default_factory=dict)  # the family's extra keys (direction, generator, ...)

    def tensor(self, name: str) -> TensorSpec:
        for tensor in self.inputs + self.outputs:
            if tensor.name == name:
                return tensor
        raise KeyError(name)


@dataclass(frozen=True)
class SourceFile:
    name: str
    path: str
    sha256: str
    generators: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceCheckpoint:
    """The checkpoint a bundle was exported from (for `info` and the PyTorch reference backend)."""

    name: str = "?"
    path: str = ""
    sha256: str = ""
    format: str = "?"
    iteration: int | None = None
    config_source: str | None = None
    files: tuple[SourceFile, ...] = ()


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    family: str
    munit_rt_version: str
    created: str
    source: SourceCheckpoint
    config: dict[str, Any]            # the family's training config; read by the torch side only
    preprocess: Preprocess
    spatial_multiple: int
    opset: int | None
    precisions: tuple[str, ...]
    graphs: dict[str, GraphSpec]
    files: dict[str, str]             # every bundle file (graphs and others) -> sha256
    model: Any                        # the family's own keys, typed by munit_rt.families.X.parse_model
    quality: dict[str, Quality] = field(default_factory=dict)  # reduced precision -> measured quality


def parse_manifest(data: Any) -> Manifest:
    """Validate a decoded manifest.json; ManifestError naming the first bad key."""
    from munit_rt.families import families, get_family

    top = Fields(data)
    version = top.raw("schema_version", None)
    if isinstance(version, bool) or not isinstance(version, int) or version not in READABLE_VERSIONS:
        raise ManifestError("schema_version", f"is {show_key(repr(version))}; this munit-rt reads "
                            f"{', '.join(map(str, READABLE_VERSIONS))}: upgrade munit-rt or re-export the bundle")
    top.str("format", BUNDLE_FORMAT, choices=(BUNDLE_FORMAT,))
    name = top.str("family")
    family = get_family(name)
    if family is None:
        raise ManifestError("family", f"is {show_key(repr(name))}, a model family this munit-rt does not know "
                            f"(known: {', '.join(families())}); written by a newer munit-rt?")
    model = family.parse_model(top)
    precisions = top.strings("precisions", choices=PRECISIONS)
    top.check(bool(precisions), "precisions", "must name at least one precision")
    preprocess = _preprocess(top.obj("preprocess"), version, family.default_fit)
    multiple = top.int("spatial_multiple", preprocess.multiple, low=1, high=MAX_SIDE)
    top.check(multiple == preprocess.multiple, "spatial_multiple",
              f"is {multiple} but preprocess.multiple is {preprocess.multiple}")
    files = {path: check_str(sha, f"files.{path}") for path, sha in top.obj("files").data.items()}
    for path, sha in files.items():
        _check_path(path, f"files.{path}")
        _check_sha(sha, f"files.{path}")
    graphs = {graph_name: _graph(graph_name, graph, precisions, files)
              for graph_name, graph in top.entries("graphs", min_items=1)}
    for graph_name, (inputs, outputs) in family.graphs(model).items():
        if graph_name not in graphs:
            raise ManifestError(f"graphs.{graph_name}", f"is missing (a {family.title} bundle needs it)")
        spec = graphs[graph_name]
        got = tuple(t.name for t in spec.inputs), tuple(t.name for t in spec.outputs)
        if sorted(got[0]) != sorted(inputs) or sorted(got[1]) != sorted(outputs):
            raise ManifestError(f"graphs.{graph_name}", f"has I/O {got[0]} -> {got[1]}, expected {inputs} -> {outputs}")
    manifest = Manifest(version, name, top.str("munit_rt_version", "?"), top.str("created", "?"),
                        _source(top.obj("source_checkpoint", {})), dict(top.obj("config", {}).data), preprocess,
                        multiple, top.int("opset", None, low=1, high=1000), precisions, graphs, files, model,
                        _qualities(top, precisions, graphs))
    family.check(manifest)
    return manifest


def _preprocess(fields: Fields, version: int, default_fit: str) -> Preprocess:
    resize = fields.str("resize", "shorter_side", choices=RESIZE_MODES)
    # schema 1 knew two combinations only, and recorded the resample of both
    default_resample = "bicubic" if resize == "shorter_side" else "bilinear"
    resample = fields.str("resample", choices=RESAMPLE_FILTERS) if version > 1 or fields.has("resample") \
        else default_resample
    if version == 1:
        fields.check((resize, resample) in (("shorter_side", "bicubic"), ("square", "bilinear")), "resample",
                     f"{resample} with resize {resize} did not exist in schema 1")
    fields.str("crop", "center", choices=("center",))
    crop_size = fields.int("crop_size", None, low=1, high=MAX_SIDE) if resize == "square" else None
    mean = fields.numbers("mean", default=(0.5, 0.5, 0.5), low=-1e3, high=1e3)
    std = fields.numbers("std", default=(0.5, 0.5, 0.5), low=1e-6, high=1e3)
    fields.check(1 <= len(mean) <= 4 and len(std) == len(mean), "std", "and mean must hold 1 to 4 values each")
    known = {"resize", "size", "resample", "multiple", "fit", "crop", "crop_size", "mean", "std", "value_range"}
    extra = {key: value for key, value in fields.data.items()
             if key not in known and isinstance(value, (int, str)) and not isinstance(value, bool)}
    return Preprocess(resize=resize, size=fields.int("size", low=1, high=MAX_SIDE), resample=resample,
                      multiple=fields.int("multiple", 1, low=1, high=MAX_SIDE),
                      fit=fields.str("fit", choices=FIT_MODES) if version > 1 or fields.has("fit") else default_fit,
                      crop_size=crop_size, mean=mean, std=std, extra=extra)


def _graph(name: str, fields: Fields, precisions: tuple[str, ...], files: dict[str, str]) -> GraphSpec:
    check_str(name, fields.path)
    if not _NAME.match(name):
        raise ManifestError(fields.path, "is not a valid graph name")
    graph_files = {}
    for precision, entry in fields.entries("files", min_items=1, key_choices=PRECISIONS):
        path, sha = entry.str("path"), entry.str("sha256")
        _check_path(path, entry.key("path"))
        _check_sha(sha, entry.key("sha256"))
        if files.get(path, sha) != sha:
            raise ManifestError(entry.key("sha256"), f"differs from the sha256 of {path} under 'files'")
        files.setdefault(path, sha)
        graph_files[precision] = GraphFile(path, sha, entry.int("bytes", 0, low=0, high=1 << 40))
    missing = [p for p in precisions if p not in graph_files]
    if missing:
        raise ManifestError(fields.key("files"), f"has no {', '.join(missing)} file (the bundle's precisions "
                            f"are {', '.join(precisions)})")
    parity = {precision: _parity(entry) for precision, entry in fields.entries("parity", key_choices=PRECISIONS)} \
        if fields.has("parity") else {}
    known = {"role", "domain", "inputs", "outputs", "files", "parity"}
    extra = {key: check_str(value, fields.key(key), max_len=256) for key, value in fields.data.items()
             if key not in known and isinstance(value, str)}
    return GraphSpec(name, fields.str("role", ""), fields.str("domain", None, max_len=64),
                     _tensors(fields, "inputs"), _tensors(fields, "outputs"), graph_files, parity, extra)


def _tensors(fields: Fields, key: str) -> tuple[TensorSpec, ...]:
    tensors = []
    for tensor in fields.objects(key, min_items=1):
        name = tensor.str("name")
        tensor.check(bool(_NAME.match(name)), "name", "is not a valid tensor name")
        dims = tensor.list("shape", min_items=1, max_items=8)
        shape = tuple(check_str(d, tensor.key("shape"), max_len=64) if isinstance(d, str)
                      else check_int(d, tensor.key("shape"), 1, MAX_DIM) for d in dims)
        tensors.append(TensorSpec(name, tensor.str("dtype", choices=DTYPES), shape))
    if len(tensors) > MAX_IO or len({t.name for t in tensors}) != len(tensors):
        raise ManifestError(fields.key(key), "must name each tensor once (at most 16)")
    return tuple(tensors)


def _parity(fields: Fields) -> Parity:
    numbers = {key: fields.float(key, None, low=-1e6, high=1e6)
               for key in ("max_abs_err", "atol", "min_psnr_db", "psnr_bound_db")}
    return Parity(passed=fields.bool("passed", False), **numbers)


def _qualities(top: Fields, precisions: tuple[str, ...], graphs: dict[str, GraphSpec]) -> dict[str, Quality]:
    """The optional "quality" block: {precision: record}; a stored precision's record needs its graphs."""
    if not top.has("quality"):
        return {}
    records = {}
    for precision, entry in top.entries("quality", key_choices=QUALITY_PRECISIONS):
        if precision in PRECISIONS and precision not in precisions:
            raise ManifestError(top.key("quality") + f".{precision}", f"records a precision the bundle has no "
                                f"graphs of (precisions: {', '.join(precisions)})")
        records[precision] = _quality(entry, graphs)
    return records


def _quality(fields: Fields, graphs: dict[str, GraphSpec]) -> Quality:
    psnr = None if fields.raw("psnr_db") is None else fields.float("psnr_db", low=0.0, high=1000.0)
    jobs = fields.strings("jobs", default=("default",))
    fields.check(len(jobs) >= 1, "jobs", "must name at least one job")
    nodes = fields.obj("kept_fp32", {})
    for graph in nodes.data:
        nodes.check(graph in graphs, graph, "is not a graph of the bundle")
    kept = {graph: tuple(check_str(node, nodes.key(graph), max_len=1024) for node in nodes.list(graph))
            for graph in nodes.data}
    fp32_graphs = fields.strings("fp32_graphs", default=())
    for graph in fp32_graphs:
        fields.check(graph in graphs, "fp32_graphs", f"names graph '{show_key(graph)}', which the bundle does not have")
    calibration = fields.int("calibration_images", None, low=1, high=1 << 40) \
        if fields.raw("calibration_images", None) is not None else None
    return Quality(psnr, fields.float("p999_levels", low=0.0, high=255.0), fields.int("max_levels", low=0, high=255),
                   fields.int("images", low=1, high=1 << 40), fields.int("outputs", low=1, high=1 << 40), jobs,
                   fields.str("measured_with", max_len=512), calibration,
                   fields.str("tool", None, max_len=512) if fields.raw("tool", None) is not None else None,
                   fields.str("tool_version", None, max_len=128) if fields.raw("tool_version", None) is not None
                   else None, kept, fp32_graphs, fields.str("created", "?", max_len=64))


def _source(fields: Fields) -> SourceCheckpoint:
    files = tuple(SourceFile(f.str("name", "?"), f.str("path", ""), f.str("sha256", ""),
                             f.strings("generators", default=()))
                  for f in (fields.objects("files") if fields.has("files") else []))
    return SourceCheckpoint(fields.str("name", "?"), fields.str("path", ""), fields.str("sha256", ""),
                            fields.str("format", "?"), fields.int("iteration", None, low=0, high=1 << 62),
                            fields.str("config_source", None), files)


def _check_path(path: str, key: str) -> None:
    """A bundle file's path: relative POSIX, staying inside the bundle (the reader checks symbolic links), and
    printable as it is (messages name it)."""
    pure = PurePosixPath(path)
    if (not path or len(path) > 1024 or pure.is_absolute() or ".." in pure.parts or "\\" in path or ":" in path
            or printable(path, control=True) != path or path == MANIFEST_NAME):
        raise ManifestError(key, f"names the path '{show_key(path)}'; bundle paths must be relative and stay inside "
                            "the bundle")


def _check_sha(sha: str, key: str) -> None:
    if not _SHA256.match(sha):
        raise ManifestError(key, "must be a sha256 hex digest (64 lowercase hex digits)")
