"""Read and validate a model bundle (docs/bundle-format.md) before any graph runs. json + hashlib only.

Everything the manifest says is checked up front: schema version, family, the graphs the family needs
with their fixed I/O names, and every file's location and sha256, so a corrupt or hand-edited bundle
fails here with one line instead of deep inside a session.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from munit_rt.errors import BundleError
from munit_rt.family import COMMON_KEYS, FAMILIES, FamilySpec, ManifestProblem  # noqa: F401 (re-exported)

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "munit-rt-bundle"
SUPPORTED_SCHEMA_VERSIONS = (1,)


# What each family's bundle must contain (keys, graphs and their I/O names) is the table in munit_rt/family.


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | str, ...]  # str = symbolic (dynamic) dim

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class GraphFile:
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class GraphSpec:
    name: str
    role: str
    domain: str | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict[str, GraphFile]  # precision -> file
    parity: dict[str, Any] = field(default_factory=dict)


class Bundle:
    """A validated bundle directory. `Bundle(path)` raises `BundleError` on the first problem found."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.name == MANIFEST_NAME and path.is_file():
            path = path.parent
        self.path = path
        self._label = f"bundle {path}"
        if not path.is_dir():
            raise BundleError(f"{self._label}: not a directory (a bundle is the folder `munit-rt export` writes)")
        self.manifest = self._read_manifest()
        self.family = self._check_header()
        self.graphs = self._parse_graphs()
        self._verify_files()

    # -- public view ---------------------------------------------------------------------------------
    @property
    def spec(self) -> FamilySpec:
        """The family's entry in munit_rt.family.FAMILIES."""
        return FAMILIES[self.family]

    @property
    def domains(self) -> dict[str, int]:
        """Domain -> channels (MUNIT, CycleGAN); empty for StarGAN, whose images have `channels`."""
        return {name: int(spec["channels"]) for name, spec in self.manifest.get("domains", {}).items()}

    @property
    def directions(self) -> dict[str, dict[str, Any]]:
        """CycleGAN: the exported directions (a2b, b2a) -> {graph, generator, source_domain, target_domain}."""
        return dict(self.manifest.get("directions", {}))

    @property
    def labels(self) -> dict[str, Any]:
        """StarGAN: the label layout block (c_dim, selected_attrs, layout, hair colours)."""
        return dict(self.manifest.get("labels", {}))

    @property
    def style_dim(self) -> int:
        if "style_dim" not in self.manifest:
            raise BundleError(f"{self._label}: a {self.spec.title} bundle has no style codes (style_dim is "
                              "MUNIT's)")
        return int(self.manifest["style_dim"])

    @property
    def adain(self) -> dict[str, Any]:
        return self.manifest.get("adain", {})

    @property
    def preprocess(self) -> dict[str, Any]:
        return self.manifest["preprocess"]

    @property
    def precisions(self) -> list[str]:
        return list(self.manifest["precisions"])

    def graph_path(self, name: str, precision: str = "fp32") -> Path:
        if name not in self.graphs:
            raise BundleError(f"{self._label}: no graph '{name}' (has: {', '.join(sorted(self.graphs))})")
        files = self.graphs[name].files
        if precision not in files:
            raise BundleError(f"{self._label}: graph '{name}' has no {precision} file (exported: "
                              f"{', '.join(sorted(files))}); re-export with --precision {precision}")
        return self.path / files[precision].path

    def graph_bytes(self, name: str, precision: str = "fp32") -> bytes:
        """The graph file's bytes, re-checked against the manifest's sha256 at read time."""
        path = self.graph_path(name, precision)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.graphs[name].files[precision].sha256:
            raise BundleError(f"{self._label}: file {self.graphs[name].files[precision].path} changed since the "
                              "bundle was opened (sha256 mismatch); re-export the bundle")
        return data

    def describe(self) -> str:
        """Readable summary for `munit-rt info BUNDLE`."""
        m, src = self.manifest, self.manifest.get("source_checkpoint") or {}
        pre = self.preprocess
        iteration = f", iteration {src['iteration']}" if src.get("iteration") is not None else ""
        lines = [
            f"bundle      {self.path}",
            f"family      {self.family} (schema {m['schema_version']}, written by munit-rt "
            f"{m.get('munit_rt_version', '?')} on {m.get('created', '?')})",
            f"checkpoint  {src.get('name', '?')} ({src.get('format', '?')}{iteration}, "
            f"sha256 {str(src.get('sha256', '?'))[:12]})",
            f"            exported from {src.get('path', '?')}",
            *(f"{label:<11} {text}" for label, text in self.spec.describe(m)),
            f"preprocess  {_preprocess_text(pre, self.spec.fit)}",
            f"precisions  {', '.join(self.precisions)}",
            "",
            f"{'graph':<20} {'precision':<10} {'size':>10}  parity",
        ]
        for name, graph in self.graphs.items():
            for precision in [p for p in self.precisions if p in graph.files]:
                entry = graph.files[precision]
                lines.append(f"{name:<20} {precision:<10} {_human_bytes(entry.bytes):>10}  "
                             f"{_parity_text(graph.parity.get(precision))}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, family={self.family!r}, precisions={self.precisions})"

    # -- validation ----------------------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any]:
        manifest_path = self.path / MANIFEST_NAME
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{self._label}: no {MANIFEST_NAME}; is this a bundle written by "
                              "`munit-rt export`?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{self._label}: {MANIFEST_NAME} is not readable JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BundleError(f"{self._label}: {MANIFEST_NAME} must hold a JSON object")
        return data

    def _check_header(self) -> str:
        m = self.manifest
        if m.get("format", BUNDLE_FORMAT) != BUNDLE_FORMAT:
            raise BundleError(f"{self._label}: format {m.get('format')!r} is not a munit-rt bundle")
        version = m.get("schema_version")
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise BundleError(f"{self._label}: schema_version {version!r} is not supported (this munit-rt reads "
                              f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}); upgrade munit-rt or re-export")
        family = m.get("family")
        if family not in FAMILIES:
            raise BundleError(f"{self._label}: unknown model family {family!r} (known: {', '.join(FAMILIES)}); "
                              "written by a newer munit-rt?")
        spec = FAMILIES[family]
        for key in (*spec.required_keys, *COMMON_KEYS):
            if key not in m:
                raise BundleError(f"{self._label}: {MANIFEST_NAME} lacks the key '{key}' (required for "
                                  f"family '{family}')")
        required = spec.domains
        if required is not None and (not isinstance(m["domains"], dict) or sorted(m["domains"]) != sorted(required)):
            raise BundleError(f"{self._label}: domains {sorted(m['domains'])} do not match family '{family}' "
                              f"(expected {list(required)})")
        return family

    def _parse_graphs(self) -> dict[str, GraphSpec]:
        spec = FAMILIES[self.family]
        raw_graphs = self.manifest["graphs"]
        graphs: dict[str, GraphSpec] = {}
        try:
            required = spec.graphs(self.manifest)
        except ManifestProblem as exc:
            raise BundleError(f"{self._label}: {MANIFEST_NAME}: {exc}") from None
        for name, (input_names, output_names) in required.items():
            raw = raw_graphs.get(name)
            if not isinstance(raw, dict):
                raise BundleError(f"{self._label}: graph '{name}' is missing from {MANIFEST_NAME}")
            graph = self._parse_graph(name, raw)
            got_in, got_out = tuple(t.name for t in graph.inputs), tuple(t.name for t in graph.outputs)
            if sorted(got_in) != sorted(input_names) or sorted(got_out) != sorted(output_names):
                raise BundleError(f"{self._label}: graph '{name}' has I/O {got_in} -> {got_out}, "
                                  f"expected {input_names} -> {output_names}")
            missing = [p for p in self.precisions if p not in graph.files]
            if missing:
                raise BundleError(f"{self._label}: graph '{name}' lacks its {', '.join(missing)} file")
            graphs[name] = graph
        try:
            spec.check(self.manifest)
        except ManifestProblem as exc:
            raise BundleError(f"{self._label}: {MANIFEST_NAME}: {exc}") from None
        return graphs

    def _parse_graph(self, name: str, raw: dict[str, Any]) -> GraphSpec:
        try:
            def tensors(key: str) -> tuple[TensorSpec, ...]:
                return tuple(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in raw[key])

            files = {p: GraphFile(f["path"], f["sha256"], int(f.get("bytes", 0))) for p, f in raw["files"].items()}
            return GraphSpec(name, raw.get("role", ""), raw.get("domain"), tensors("inputs"), tensors("outputs"),
                             files, raw.get("parity", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{self._label}: graph '{name}' entry is malformed ({type(exc).__name__}: {exc})") \
                from None

    def _verify_files(self) -> None:
        if not isinstance(self.manifest["files"], dict):
            raise BundleError(f"{self._label}: 'files' in {MANIFEST_NAME} must map paths to sha256 digests")
        expected: dict[str, str] = dict(self.manifest["files"])
        graph_files = {entry.path for graph in self.graphs.values() for entry in graph.files.values()}
        for graph in self.graphs.values():
            for entry in graph.files.values():
                if expected.setdefault(entry.path, entry.sha256) != entry.sha256:
                    raise BundleError(f"{self._label}: {MANIFEST_NAME} gives two different sha256 for {entry.path}")
        root = self.path.resolve()
        for rel, sha in sorted(expected.items()):
            path = self._inside(root, rel)
            if not path.is_file():
                raise BundleError(f"{self._label}: file {rel} listed in {MANIFEST_NAME} is missing; re-export the bundle")
            data = path.read_bytes() if rel in graph_files else None  # graphs: hash and inspect the same bytes
            if (hashlib.sha256(data).hexdigest() if data is not None else _file_sha256(path)) != sha:
                raise BundleError(f"{self._label}: file {rel} does not match its sha256 in {MANIFEST_NAME} "
                                  "(modified or corrupt); re-export the bundle")
            if data is not None:
                self._check_self_contained(rel, data)

    def _check_self_contained(self, rel: str, data: bytes) -> None:
        """No graph may keep tensors in other files (ONNX external data): they could point outside the bundle."""
        from munit_rt.onnx_external import MalformedModel, NestingTooDeep, external_data_locations

        try:
            locations = external_data_locations(data)
        except NestingTooDeep as exc:
            raise BundleError(f"{self._label}: graph file {rel} is refused ({exc})") from None
        except MalformedModel:  # not protobuf at all: no runtime can parse it, so none opens anything for it;
            return  # the backend reports the parse error when the graph is used
        if locations:
            shown = ", ".join(repr(loc) for loc in sorted(set(locations))[:3])
            raise BundleError(f"{self._label}: graph file {rel} references external tensor data ({shown}); refused: "
                              "bundle graphs must be self-contained (external data is not supported)")

    def _inside(self, root: Path, rel: Any) -> Path:
        """The file for a manifest path, refusing anything that could leave the bundle."""
        pure = PurePosixPath(rel) if isinstance(rel, str) else None
        if (pure is None or not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel or ":" in rel
                or "\x00" in rel):
            raise BundleError(f"{self._label}: path {rel!r} in {MANIFEST_NAME} must be relative and stay inside "
                              "the bundle")
        resolved = (root / pure).resolve()
        if not resolved.is_relative_to(root):  # e.g. a symlink pointing outside
            raise BundleError(f"{self._label}: {rel} resolves outside the bundle ({resolved}); refused")
        return resolved


def _preprocess_text(pre: dict[str, Any], fit: str) -> str:
    """What the runtime does to an input before the graphs see it (munit_rt.images.read_image)."""
    resample = pre.get("resample", "bicubic")
    if pre.get("resize") == "square":
        crop = f"center crop {pre['crop_size']} px, then " if pre.get("crop_size") else ""
        return f"{crop}resize to {pre.get('size')}x{pre.get('size')} px ({resample})"
    fitted = (f"H and W resized to the nearest multiple of {pre.get('multiple')} ({resample}, upstream "
              "__make_power_2)" if fit == "round" else f"H and W center-cropped to a multiple of {pre.get('multiple')}")
    return f"shorter side -> {pre.get('size')} px ({resample}), {fitted}"


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _parity_text(parity: dict[str, Any] | None) -> str:
    """fp32 graphs are checked against PyTorch by max abs error, fp16 ones against fp32 by PSNR."""
    if not parity:
        return "not checked"
    parts = []
    if "min_psnr_db" in parity:
        parts.append(f"min PSNR {parity['min_psnr_db']:.1f} dB (bound {parity.get('psnr_bound_db', '?')})")
    if "max_abs_err" in parity:
        atol = f" (atol {parity['atol']:.0e})" if "atol" in parity else ""
        parts.append(f"max abs err {parity['max_abs_err']:.1e}{atol}")
    parts.append("ok" if parity.get("passed") else "FAILED")
    return ", ".join(parts[:-1]) + f" {parts[-1]}" if len(parts) > 1 else parts[0]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
