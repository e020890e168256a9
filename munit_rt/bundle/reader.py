"""Open a bundle and check all of it before any graph runs: `Bundle(path)` raises `BundleError` on the first
problem, with one line naming the manifest key or the file.

Checked on open: manifest.json (bounded JSON, then the typed schema: munit_rt/bundle/schema.py), every listed
file (inside the bundle, symbolic links included; its sha256), and every graph file (self-contained: no ONNX
external data; and its real inputs and outputs: names, element types, ranks and fixed dims as the manifest
says, so a graph swapped for another, hash updated, is refused here and not by a backend mid-run). Backends get
graph bytes from `graph_bytes`, which checks the sha256 again at read time. json + hashlib only.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from munit_rt.bundle.fields import ManifestError, load_json, show_key
from munit_rt.bundle.onnx_proto import MalformedModel, NestingTooDeep, ValueInfo, external_data_locations, graph_io
from munit_rt.bundle.schema import MANIFEST_NAME, MAX_MANIFEST_BYTES, GraphSpec, Manifest, TensorSpec, parse_manifest
from munit_rt.errors import BundleError
from munit_rt.text import printable


class Bundle:
    """A validated bundle directory (a path to its manifest.json is accepted too)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.name == MANIFEST_NAME and path.is_file():
            path = path.parent
        self.path = path
        self._label = f"bundle {printable(str(path), control=True)}"
        if not path.is_dir():
            raise BundleError(f"{self._label}: not a directory (a bundle is the folder `munit-rt export` writes)")
        raw = self._read_manifest()
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            self.manifest: Manifest = parse_manifest(load_json(raw, MAX_MANIFEST_BYTES))
        except ManifestError as exc:
            where = f"key {exc}" if exc.path else str(exc)
            raise BundleError(f"{self._label}: {MANIFEST_NAME}: {where}") from None
        from munit_rt.families import get_family

        self.spec = get_family(self.manifest.family)  # the family's runtime description (munit_rt.families)
        self._verify_files()

    # -- the manifest, typed -------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self.manifest.family

    @property
    def model(self):
        """The family's own manifest keys (munit_rt.families.X.parse_model)."""
        return self.manifest.model

    @property
    def graphs(self) -> dict[str, GraphSpec]:
        return self.manifest.graphs

    @property
    def preprocess(self):
        return self.manifest.preprocess

    @property
    def precisions(self) -> list[str]:
        return list(self.manifest.precisions)

    def graph_path(self, name: str, precision: str = "fp32") -> Path:
        if name not in self.graphs:
            raise BundleError(f"{self._label}: no graph '{name}' (has: {', '.join(sorted(self.graphs))})")
        files = self.graphs[name].files
        if precision not in files:
            raise BundleError(f"{self._label}: graph '{name}' has no {precision} file (has: "
                              f"{', '.join(sorted(files))}); {missing_precision_hint(self.path, precision)}")
        return self.path / files[precision].path

    def graph_bytes(self, name: str, precision: str = "fp32") -> bytes:
        """The graph file's bytes, re-checked against the manifest's sha256 at read time."""
        path = self.graph_path(name, precision)
        entry = self.graphs[name].files[precision]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{self._label}: cannot read {entry.path} ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise BundleError(f"{self._label}: file {entry.path} changed since the bundle was opened (sha256 "
                              "mismatch); re-export the bundle")
        return data

    def describe(self) -> str:
        """Readable summary for `munit-rt info BUNDLE`."""
        from munit_rt.bundle.describe import describe_bundle

        return describe_bundle(self)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, family={self.family!r}, precisions={self.precisions})"

    # -- validation ----------------------------------------------------------------------------------
    def _read_manifest(self) -> bytes:
        try:
            with open(self.path / MANIFEST_NAME, "rb") as fh:
                return fh.read(MAX_MANIFEST_BYTES + 1)  # load_json refuses the oversized
        except FileNotFoundError:
            raise BundleError(f"{self._label}: no {MANIFEST_NAME}; is this a bundle written by "
                              "`munit-rt export`?") from None
        except OSError as exc:
            raise BundleError(f"{self._label}: cannot read {MANIFEST_NAME} ({exc.strerror or exc})") from None

    def _verify_files(self) -> None:
        by_path: dict[str, list[GraphSpec]] = {}  # graphs may share a file: it must fit each of them
        for graph in self.graphs.values():
            for entry in graph.files.values():
                by_path.setdefault(entry.path, []).append(graph)
        root = self.path.resolve()
        for rel, sha in sorted(self.manifest.files.items()):
            path = self._inside(root, rel)
            graphs = by_path.get(rel, [])
            try:  # graphs: hash and inspect the same bytes
                if not path.is_file():
                    raise BundleError(f"{self._label}: file {rel} listed in {MANIFEST_NAME} is missing; re-export "
                                      "the bundle")
                data = path.read_bytes() if graphs else None
                digest = hashlib.sha256(data).hexdigest() if data is not None else _file_sha256(path)
            except OSError as exc:
                raise BundleError(f"{self._label}: cannot read {rel} ({exc.strerror or exc})") from None
            if digest != sha:
                raise BundleError(f"{self._label}: file {rel} does not match its sha256 in {MANIFEST_NAME} "
                                  "(modified or corrupt); re-export the bundle")
            for graph in graphs:
                self._check_graph_file(rel, data, graph)

    def _check_graph_file(self, rel: str, data: bytes, spec: GraphSpec) -> None:
        """Self-contained (external data could point outside the bundle), and the I/O the manifest promises."""
        try:
            locations = external_data_locations(data)
            inputs, outputs = graph_io(data)
        except NestingTooDeep as exc:
            raise BundleError(f"{self._label}: graph file {rel} is refused ({exc})") from None
        except MalformedModel as exc:
            raise BundleError(f"{self._label}: graph file {rel} is not a readable ONNX model ({exc}); re-export "
                              "the bundle") from None
        if locations:
            shown = show_key(", ".join(repr(loc) for loc in sorted(set(locations))[:3]), 300)
            raise BundleError(f"{self._label}: graph file {rel} references external tensor data ({shown}); refused: "
                              "bundle graphs must be self-contained (external data is not supported)")
        for kind, declared, actual in (("inputs", spec.inputs, inputs), ("outputs", spec.outputs, outputs)):
            problem = _io_mismatch(declared, actual)
            if problem:
                raise BundleError(f"{self._label}: graph file {rel} does not fit graph '{spec.name}' of "
                                  f"{MANIFEST_NAME}: {kind} {show_key(problem, 300)}; the file belongs to another "
                                  "graph or bundle, re-export the bundle")

    def _inside(self, root: Path, rel: str) -> Path:
        """The file for a manifest path (already relative and without '..': schema.py); a symbolic link that
        leaves the bundle is refused."""
        try:
            resolved = (root / rel).resolve()
        except (OSError, RuntimeError) as exc:  # a symbolic link loop: RuntimeError before Python 3.13
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "symbolic link loop"
            raise BundleError(f"{self._label}: cannot resolve {rel} ({reason}); refused") from None
        if not resolved.is_relative_to(root):
            raise BundleError(f"{self._label}: {rel} resolves outside the bundle "
                              f"({show_key(str(resolved), 300)}); refused")
        return resolved


def missing_precision_hint(path: Path, precision: str) -> str:
    """How to give a bundle the graphs of `precision`: int8 graphs come from calibration, others from export."""
    shown = printable(str(path), control=True)
    if precision == "int8":
        return f"calibrate them with: munit-rt quantize {shown} --calibrate IMAGES_DIR"
    return f"re-export with --precision {precision}"


def _io_mismatch(declared: tuple[TensorSpec, ...], actual: list[ValueInfo]) -> str:
    """'' when the graph file's tensors are the manifest's (names, dtypes, ranks, fixed dims), else why not."""
    names = sorted(v.name for v in actual)
    if names != sorted(t.name for t in declared):
        return f"are {names}, the manifest says {sorted(t.name for t in declared)}"
    by_name = {v.name: v for v in actual}
    for tensor in declared:
        value = by_name[tensor.name]
        if value.dtype != tensor.dtype:
            return f"'{tensor.name}' is {value.dtype or 'of another type'}, the manifest says {tensor.dtype}"
        if value.shape is None or len(value.shape) != tensor.rank:
            rank = "no shape" if value.shape is None else f"rank {len(value.shape)}"
            return f"'{tensor.name}' has {rank}, the manifest says {list(tensor.shape)}"
        for want, got in zip(tensor.shape, value.shape):
            if isinstance(want, int) and got != want or isinstance(want, str) and isinstance(got, int):
                return f"'{tensor.name}' has shape {list(value.shape)}, the manifest says {list(tensor.shape)}"
    return ""


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
