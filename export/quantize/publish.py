"""Writing int8 graphs into a bundle, atomically: new files under new names, then the manifest, then clean-up.

A staged copy of the bundle with the new manifest (`stage`) is what the quality is measured on, through the same
reader as any bundle, before anything in the bundle changes. `publish` then writes each new int8 file under a
content-addressed name (int8/<graph>-<sha256[:12]>.onnx: never one the current manifest names) and replaces
manifest.json by rename, the one step that switches the bundle over; a failure before it removes the new files
and leaves the bundle as it was. Files of the previous int8 graphs that the new manifest no longer names are
removed last.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from munit_rt.bundle.fields import ManifestError, load_json
from munit_rt.bundle.schema import MANIFEST_NAME, MAX_MANIFEST_BYTES, parse_manifest
from munit_rt.errors import BundleError, MunitRtError
from munit_rt.text import printable

PRECISION = "int8"


def int8_manifest(raw: dict[str, Any], int8: dict[str, bytes | None], quality: dict[str, dict]) \
        -> tuple[dict[str, Any], dict[str, bytes]]:
    """(the new manifest, {relative path: bytes} of the new files). `int8`: graph -> QDQ bytes, or None to name
    the graph's fp32 file; `quality`: precision -> record (replacing earlier records of those precisions)."""
    manifest = copy.deepcopy(raw)
    old = {entry["files"][PRECISION]["path"] for entry in manifest["graphs"].values() if PRECISION in entry["files"]}
    new_files: dict[str, bytes] = {}
    for name, entry in manifest["graphs"].items():
        data = int8.get(name)
        if data is None:
            record = dict(entry["files"]["fp32"])
        else:
            sha = hashlib.sha256(data).hexdigest()
            record = {"path": f"{PRECISION}/{name}-{sha[:12]}.onnx", "sha256": sha, "bytes": len(data)}
            new_files[record["path"]] = data
        entry["files"][PRECISION] = record
        entry.get("parity", {}).pop(PRECISION, None)
    if PRECISION not in manifest["precisions"]:
        manifest["precisions"].append(PRECISION)
    named = {record["path"]: record["sha256"] for entry in manifest["graphs"].values()
             for record in entry["files"].values()}
    files = {path: sha for path, sha in manifest["files"].items() if path not in old or path in named}
    files.update(named)
    manifest["files"] = dict(sorted(files.items()))
    manifest["quality"] = {**manifest.get("quality", {}), **quality}
    check_manifest(manifest)
    return manifest, new_files


def check_manifest(manifest: dict[str, Any]) -> None:
    """The reader's own schema on what is about to be written (a failure is a bug of this module)."""
    try:
        parse_manifest(load_json(json.dumps(manifest, allow_nan=False), MAX_MANIFEST_BYTES))
    except (ManifestError, TypeError, ValueError) as exc:
        raise MunitRtError(f"the manifest munit-rt quantize built does not pass the bundle schema ({exc}); this is "
                           "a bug, please report it") from None


def stage(bundle_path: Path, manifest: dict[str, Any], new_files: dict[str, bytes], folder: Path) -> Path:
    """A copy of the bundle with `manifest` and `new_files` in `folder` (for measuring before publishing)."""
    for rel in manifest["files"]:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in new_files:
            target.write_bytes(new_files[rel])
        else:
            shutil.copyfile(bundle_path / rel, target)
    write_json(folder / MANIFEST_NAME, manifest)
    return folder


def publish(bundle_path: Path, old: dict[str, Any], manifest: dict[str, Any], new_files: dict[str, bytes]) -> list[str]:
    """Switch the bundle to `manifest`; returns the files written. On failure the bundle is left as it was."""
    written: list[Path] = []
    try:
        for rel, data in new_files.items():
            target = bundle_path / rel
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            _write_synced(temporary, data)
            written.append(temporary)
            os.replace(temporary, target)
            written[-1] = target
        write_json(bundle_path / MANIFEST_NAME, manifest)  # the switch: by rename
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise BundleError(f"bundle {printable(str(bundle_path), control=True)}: cannot write the int8 graphs "
                          f"({exc.strerror or exc}); the bundle is unchanged") from None
    still = set(manifest["files"])
    for rel in {e["files"][PRECISION]["path"] for e in old["graphs"].values() if PRECISION in e["files"]} - still:
        (bundle_path / rel).unlink(missing_ok=True)  # the previous int8 graphs, now unreferenced
    return [str(p.relative_to(bundle_path)) for p in written]


def publish_copy(bundle_path: Path, manifest: dict[str, Any], new_files: dict[str, bytes], output: Path) -> list[str]:
    """A new bundle at `output` (absent or an empty folder): staged beside it, then renamed into place, so it is
    complete or absent."""
    staging = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        stage(bundle_path, manifest, new_files, staging)
        os.replace(staging, output)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"--output {printable(str(output), control=True)}: cannot write the quantized bundle "
                          f"({exc.strerror or exc}); nothing written") from None
    return sorted(manifest["files"]) + [MANIFEST_NAME]


def write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_synced(temporary, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8"))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
