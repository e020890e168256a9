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

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "munit-rt-bundle"
SUPPORTED_SCHEMA_VERSIONS = (1,)


@dataclass(frozen=True)
class FamilySpec:
    """What a family's bundle must contain: graph roles (per domain) with their fixed I/O names."""

    roles: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # role -> (input names, output names)
    domains: tuple[str, ...] | None  # required domain names; None = any non-empty set


# New families (cyclegan, stargan) are one entry here plus their pipeline; the reader needs nothing else.
FAMILIES: dict[str, FamilySpec] = {
    "munit": FamilySpec(
        roles={
            "content_encoder": (("image",), ("content",)),
            "style_encoder": (("image",), ("style",)),
            "style_mlp": (("style",), ("adain_params",)),
            "decoder": (("content", "adain_params"), ("output",)),
        },
        domains=("a", "b"),
    ),
}


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
    def domains(self) -> dict[str, int]:
        return {name: int(spec["channels"]) for name, spec in self.manifest["domains"].items()}

    @property
    def style_dim(self) -> int:
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
            "domains     " + ", ".join(f"{d}: {c} channel{'s' if c != 1 else ''}" for d, c in self.domains.items()),
            f"style_dim   {self.style_dim}   content channels {m.get('content_channels', '?')}   "
            f"AdaIN parameters {self.adain.get('total', '?')} in {len(self.adain.get('layers', []))} layers",
            f"preprocess  shorter side -> {pre.get('size')} px ({pre.get('resample', 'bicubic')}), "
            f"H and W a multiple of {pre.get('multiple')}",
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
            raise BundleError(f"{self._label}: unknown model family {family!r} (known: {', '.join(FAMILIES)})")
        for key in ("domains", "preprocess", "style_dim", "precisions", "graphs", "files"):
            if key not in m:
                raise BundleError(f"{self._label}: {MANIFEST_NAME} lacks the key '{key}'")
        required = FAMILIES[family].domains
        if not m["domains"] or (required is not None and sorted(m["domains"]) != sorted(required)):
            raise BundleError(f"{self._label}: domains {sorted(m['domains'])} do not match family '{family}' "
                              f"(expected {list(required or [])})")
        return family

    def _parse_graphs(self) -> dict[str, GraphSpec]:
        spec = FAMILIES[self.family]
        raw_graphs = self.manifest["graphs"]
        graphs: dict[str, GraphSpec] = {}
        for role, (input_names, output_names) in spec.roles.items():
            for domain in self.manifest["domains"]:
                name = f"{role}_{domain}"
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
        return graphs

    def _parse_graph(self, name: str, raw: dict[str, Any]) -> GraphSpec:
        try:
            def tensors(key: str) -> tuple[TensorSpec, ...]:
                return tuple(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in raw[key])

            files = {p: GraphFile(f["path"], f["sha256"], int(f.get("bytes", 0))) for p, f in raw["files"].items()}
            return GraphSpec(name, raw.get("role", ""), raw.get("domain"), tensors("inputs"), tensors("outputs"),
                             files, raw.get("parity", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{self._label}: graph '{name}' entry is malformed ({type(exc).__name__}: {exc})") \
                from None

    def _verify_files(self) -> None:
        expected: dict[str, str] = dict(self.manifest["files"])
        for graph in self.graphs.values():
            for entry in graph.files.values():
                if expected.setdefault(entry.path, entry.sha256) != entry.sha256:
                    raise BundleError(f"{self._label}: {MANIFEST_NAME} gives two different sha256 for {entry.path}")
        root = self.path.resolve()
        for rel, sha in sorted(expected.items()):
            path = self._inside(root, rel)
            if not path.is_file():
                raise BundleError(f"{self._label}: file {rel} listed in {MANIFEST_NAME} is missing; re-export the bundle")
            if _file_sha256(path) != sha:
                raise BundleError(f"{self._label}: file {rel} does not match its sha256 in {MANIFEST_NAME} "
                                  "(modified or corrupt); re-export the bundle")

    def _inside(self, root: Path, rel: Any) -> Path:
        """The file for a manifest path, refusing anything that could leave the bundle."""
        pure = PurePosixPath(rel) if isinstance(rel, str) else None
        if pure is None or not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel or ":" in rel:
            raise BundleError(f"{self._label}: path {rel!r} in {MANIFEST_NAME} must be relative and stay inside "
                              "the bundle")
        resolved = (root / pure).resolve()
        if not resolved.is_relative_to(root):  # e.g. a symlink pointing outside
            raise BundleError(f"{self._label}: {rel} resolves outside the bundle ({resolved}); refused")
        return resolved


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
