"""Bundle files on disk: graphs and manifest.json (docs/bundle-format.md), sha256 of every file, atomic publish.

A bundle is built in a staging directory beside the destination (same filesystem), then renamed into place,
so readers never see half a bundle; `--force` swaps an existing bundle out and deletes it only afterwards.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from munit_rt.bundle.schema import BUNDLE_FORMAT, MANIFEST_NAME, SCHEMA_VERSION  # the one definition of the format
from munit_rt.export.errors import ExportError
from munit_rt.io.outputs import make_folders
from munit_rt.training.family import Checkpoint, TrainingFamily


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_file(bundle_dir: Path, rel_path: str, data: bytes) -> dict:
    """Write one bundle file; returns its manifest record {path, sha256, bytes}."""
    target = bundle_dir / rel_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {"path": rel_path, "sha256": sha256_bytes(data), "bytes": len(data)}


def build_manifest(*, family: TrainingFamily, ckpt: Checkpoint, gens: dict, opset: int, precisions: list[str],
                   graphs: dict[str, dict]) -> dict:
    """The manifest of docs/bundle-format.md: the header every family shares, then the family's own keys
    (`manifest_model`); `graphs` already holds each graph's I/O, files and parity."""
    from munit_rt import __version__

    prep = family.preprocess(ckpt.config)
    files = {record["path"]: record["sha256"] for graph in graphs.values() for record in graph["files"].values()}
    source = {"name": ckpt.path.name, "path": str(ckpt.path.resolve()), "sha256": ckpt.sha256,
              "format": ckpt.source_format, "iteration": ckpt.iteration, **family.source_details(ckpt)}
    return {
        "schema_version": SCHEMA_VERSION,
        "format": BUNDLE_FORMAT,
        "munit_rt_version": __version__,
        "family": family.name,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_checkpoint": source,
        "config": ckpt.config.to_dict(),
        "preprocess": prep.to_dict(),
        "spatial_multiple": prep.multiple,
        **family.manifest_model(ckpt, gens, graphs),
        "opset": opset,
        "precisions": precisions,
        "graphs": graphs,
        "files": dict(sorted(files.items())),
    }


def validate_manifest(manifest: dict) -> None:
    """Export checks the manifest it built with the reader's own schema (munit_rt.bundle.schema, which runs the
    runtime family's checks of the family keys too) before anything is written: what export writes, the runtime
    reads. A failure is an export bug, never the user's."""
    from munit_rt.bundle.fields import ManifestError, load_json
    from munit_rt.bundle.schema import MAX_MANIFEST_BYTES, parse_manifest

    try:
        parse_manifest(load_json(json.dumps(manifest, allow_nan=False), MAX_MANIFEST_BYTES))
    except (ManifestError, TypeError, ValueError) as exc:
        raise ExportError(f"the manifest export built does not pass the bundle schema ({exc}); this is an export "
                          "bug, please report it") from None


def write_manifest(bundle_dir: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    (bundle_dir / MANIFEST_NAME).write_text(text, encoding="utf-8")


def verify_bundle(bundle_dir: str | Path) -> list[str]:
    """Problems with a written bundle (missing file, wrong sha256, path escaping the bundle); [] when sound."""
    bundle_dir = Path(bundle_dir)
    try:
        manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{MANIFEST_NAME}: unreadable ({exc})"]
    problems = []
    for rel_path, expected in manifest.get("files", {}).items():
        pure = PurePosixPath(rel_path)
        if pure.is_absolute() or ".." in pure.parts:
            problems.append(f"{rel_path}: path leaves the bundle")
            continue
        try:
            actual = sha256_bytes((bundle_dir / pure).read_bytes())
        except OSError:
            problems.append(f"{rel_path}: missing")
            continue
        if actual != expected:
            problems.append(f"{rel_path}: sha256 {actual[:12]}... does not match the manifest's {expected[:12]}...")
    for name, graph in manifest.get("graphs", {}).items():
        for precision, record in graph.get("files", {}).items():
            if manifest.get("files", {}).get(record.get("path")) != record.get("sha256"):
                problems.append(f"graph {name} ({precision}): file record disagrees with the 'files' map")
    return problems


def default_bundle_dir(ckpt_path: Path | list[Path] | tuple[Path, ...]) -> Path:
    """`<stem>.bundle` beside the checkpoint; for an upstream pair, beside the first file with the generator
    suffix dropped (latest_net_G_A.pth + latest_net_G_B.pth -> latest_net.bundle)."""
    if isinstance(ckpt_path, (list, tuple)):
        if len(ckpt_path) == 1:
            return default_bundle_dir(ckpt_path[0])
        first = Path(ckpt_path[0])
        stem = re.sub(r"[_.-]?G_[AB]$", "", first.stem) or "pair"
        return first.with_name(f"{stem}.bundle")
    return ckpt_path.with_name(f"{ckpt_path.stem}.bundle")


def check_destination(out_dir: Path, force: bool) -> None:
    """Refuse before any work: an existing output without --force, or a parent that is not a directory (missing
    parents are fine: make_parents creates them)."""
    if out_dir.exists() or out_dir.is_symlink():
        if not force:
            raise ExportError(f"{out_dir} already exists; pass --force to replace it")
        if not out_dir.is_dir():
            raise ExportError(f"{out_dir} exists and is not a bundle directory; refusing to replace it")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ExportError(f"cannot write {out_dir.name} into {out_dir.parent}: {parent} is not a directory")
            break


def make_parents(out_dir: Path) -> list[Path]:
    """Create the missing parent folders of `out_dir`; returns them, outermost first (removed again when the
    export fails: munit_rt.io.outputs.remove_folders)."""
    try:
        return make_folders(out_dir.parent)
    except OSError as exc:
        raise ExportError(f"cannot create {out_dir.parent}: {exc.strerror or exc}") from None


def make_staging_dir(out_dir: Path) -> Path:
    """Empty directory beside `out_dir` (same filesystem, so the final rename is atomic)."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as exc:
        raise ExportError(f"cannot write into {out_dir.parent}: {exc.strerror or exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would make the published bundle private
    return staging


def publish(staging: Path, out_dir: Path, force: bool) -> None:
    """Rename the finished staging directory to `out_dir`; with `force`, swap out and delete the old one."""
    if not (out_dir.exists() or out_dir.is_symlink()):
        _rename(staging, out_dir)
        return
    if not force:
        raise ExportError(f"{out_dir} already exists; pass --force to replace it")
    aside = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
    _rename(out_dir, aside)
    try:
        _rename(staging, out_dir)
    except ExportError:
        os.rename(aside, out_dir)  # put the previous bundle back
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink()


def _rename(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as exc:
        raise ExportError(f"cannot move the bundle into place at {dst}: {exc.strerror or exc}") from None


def format_summary(manifest: dict) -> str:
    """Closing table: graph, precision, size, and the parity figure that gated it."""
    rows = [("graph", "precision", "size", "parity")]
    for name, graph in manifest["graphs"].items():
        for precision, record in graph["files"].items():
            parity = graph["parity"][precision]
            check = (f"PSNR {parity['min_psnr_db']:.1f} dB" if precision == "fp16"
                     else f"max abs {parity['max_abs_err']:.2e}")
            rows.append((name, precision, _human_size(record["bytes"]), check))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _human_size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    if n_bytes < 1024**2:
        return f"{n_bytes / 1024:.1f} KB"
    return f"{n_bytes / 1024**2:.1f} MB"
