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

from munit_rt.export.errors import ExportError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
BUNDLE_FORMAT = "munit-rt-bundle"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_file(bundle_dir: Path, rel_path: str, data: bytes) -> dict:
    """Write one bundle file; returns its manifest record {path, sha256, bytes}."""
    target = bundle_dir / rel_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {"path": rel_path, "sha256": sha256_bytes(data), "bytes": len(data)}


def build_manifest(*, ckpt, adain_layout, content_channels: int, opset: int, precisions: list[str],
                   graphs: dict[str, dict]) -> dict:
    """The manifest of docs/bundle-format.md; `graphs` already holds each graph's I/O, files and parity."""
    from munit_rt import __version__

    config = ckpt.config
    gen = config.gen
    multiple = 2 ** gen.n_downsample
    channels = max(config.input_dim_a, config.input_dim_b)
    files = {record["path"]: record["sha256"] for graph in graphs.values() for record in graph["files"].values()}
    return {
        "schema_version": SCHEMA_VERSION,
        "format": BUNDLE_FORMAT,
        "munit_rt_version": __version__,
        "family": "munit",
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_checkpoint": {"name": ckpt.path.name, "path": str(ckpt.path.resolve()), "sha256": ckpt.sha256,
                              "format": ckpt.source_format, "iteration": ckpt.iteration},
        "config": config.to_dict(),
        "domains": {d: {"channels": config.input_dim(d)} for d in ("a", "b")},
        "preprocess": {"resize": "shorter_side", "size": config.new_size, "multiple": multiple,
                       "resample": "bicubic", "mean": [0.5] * channels, "std": [0.5] * channels,
                       "value_range": [-1.0, 1.0]},
        "style_dim": gen.style_dim,
        "content_channels": content_channels,
        "spatial_multiple": multiple,
        "adain": {"total": sum(2 * layer.channels for layer in adain_layout),
                  "layers": [{"name": layer.name, "channels": layer.channels, "shift_offset": layer.shift_offset,
                              "scale_offset": layer.scale_offset} for layer in adain_layout]},
        "opset": opset,
        "precisions": precisions,
        "graphs": graphs,
        "files": dict(sorted(files.items())),
    }


# ------------------------------------------------------------------------------ CycleGAN and StarGAN
HAIR_COLOR_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")  # upstream create_labels' one-hot group


def build_family_manifest(*, ckpt, opset: int, precisions: list[str], graphs: dict[str, dict]) -> dict:
    """The manifest of a CycleGAN or StarGAN bundle (docs/bundle-format.md): the MUNIT header keys, then the
    family's own (CycleGAN: domains, directions; StarGAN: channels, labels)."""
    from munit_rt import __version__

    from munit_rt.export.onnx_export import GENERATOR_MULTIPLE

    config = ckpt.config
    files = {record["path"]: record["sha256"] for graph in graphs.values() for record in graph["files"].values()}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "format": BUNDLE_FORMAT,
        "munit_rt_version": __version__,
        "family": ckpt.family,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source_checkpoint": source_record(ckpt),
        "config": config.to_dict(),
    }
    if ckpt.family == "cyclegan":
        channels = max(config.input_nc, config.output_nc)
        manifest["domains"] = {"a": {"channels": config.input_nc}, "b": {"channels": config.output_nc}}
        manifest["directions"] = {graph["direction"]: {"graph": name, "generator": graph["generator"],
                                                       "source_domain": graph["source_domain"],
                                                       "target_domain": graph["target_domain"]}
                                  for name, graph in graphs.items()}
        # upstream trains on crop_size crops of load_size resizes and tests at crop_size (bicubic); keep the
        # aspect ratio here, as the MUNIT preprocessing does
        manifest["preprocess"] = {"resize": "shorter_side", "size": config.crop_size,
                                  "multiple": GENERATOR_MULTIPLE, "resample": "bicubic",
                                  "mean": [0.5] * channels, "std": [0.5] * channels, "value_range": [-1.0, 1.0],
                                  "load_size": config.load_size, "crop_size": config.crop_size}
    else:
        from munit_rt.training.stargan import IMAGE_CHANNELS

        manifest["channels"] = IMAGE_CHANNELS
        # upstream and training/celeba.py: center crop crop_size x crop_size, resize to image_size (bilinear)
        manifest["preprocess"] = {"crop": "center", "crop_size": config.crop_size, "resize": "square",
                                  "size": config.image_size, "multiple": GENERATOR_MULTIPLE,
                                  "resample": "bilinear", "mean": [0.5] * IMAGE_CHANNELS,
                                  "std": [0.5] * IMAGE_CHANNELS, "value_range": [-1.0, 1.0]}
        manifest["labels"] = stargan_labels(config)
    manifest.update({
        "spatial_multiple": GENERATOR_MULTIPLE,
        "opset": opset,
        "precisions": precisions,
        "graphs": graphs,
        "files": dict(sorted(files.items())),
    })
    return manifest


def stargan_labels(config) -> dict:
    """The label vector's layout: dataset 1's attributes, then (two datasets) dataset 2's and a 2-way mask."""
    first, second = list(config.selected_attrs), list(config.selected_attrs_2)
    layout = [{"name": "dataset_1", "offset": 0, "length": len(first), "attrs": first}]
    if second:
        layout += [{"name": "dataset_2", "offset": len(first), "length": len(second), "attrs": second},
                   {"name": "mask", "offset": config.cls_dim, "length": 2, "attrs": ["dataset_1", "dataset_2"]}]
    return {
        "c_dim": config.c_dim,
        "dtype": "float32",
        "values": [0.0, 1.0],
        "num_datasets": config.num_datasets,
        "selected_attrs": first,
        "selected_attrs_2": second,
        "layout": layout,
        "hair_color_attrs": [name for name in first if name in HAIR_COLOR_ATTRS],
        "hair_color_attrs_2": [name for name in second if name in HAIR_COLOR_ATTRS],
    }


def source_record(ckpt) -> dict:
    """`source_checkpoint` of a CycleGAN/StarGAN bundle: the MUNIT keys (first file's name and path; sha256
    as `read_any_checkpoint` gives it), where the config came from, and every file with its own sha256."""
    from munit_rt.training.checkpoint import file_sha256

    by_file: dict[str, list[str]] = {}
    for key in ckpt.state_dicts:
        by_file.setdefault(ckpt.meta.get("files", {}).get(key, str(ckpt.path)), []).append(key)
    files = []
    for path_text, keys in by_file.items():
        path = Path(path_text)
        digest = ckpt.sha256 if len(by_file) == 1 else file_sha256(path)
        files.append({"name": path.name, "path": str(path.resolve()), "sha256": digest, "generators": keys})
    config_source = "stored" if ckpt.source_format == "munit-rt" else ckpt.meta.get("config_source", "given")
    return {"name": ckpt.path.name, "path": str(ckpt.path.resolve()), "sha256": ckpt.sha256,
            "format": ckpt.source_format, "iteration": ckpt.iteration, "config_source": config_source,
            "files": files}


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
    """`<stem>.bundle` beside the checkpoint; for an upstream CycleGAN pair, beside the first file with the
    `_G_A` / `_G_B` suffix dropped (latest_net_G_A.pth + latest_net_G_B.pth -> latest_net.bundle)."""
    if isinstance(ckpt_path, (list, tuple)):
        if len(ckpt_path) == 1:
            return default_bundle_dir(ckpt_path[0])
        first = Path(ckpt_path[0])
        stem = re.sub(r"[_.-]?G_[AB]$", "", first.stem) or "cyclegan"
        return first.with_name(f"{stem}.bundle")
    return ckpt_path.with_name(f"{ckpt_path.stem}.bundle")


def check_destination(out_dir: Path, force: bool) -> None:
    """Refuse before any work: an existing output without --force, or a missing parent directory."""
    if out_dir.exists() or out_dir.is_symlink():
        if not force:
            raise ExportError(f"{out_dir} already exists; pass --force to replace it")
        if not out_dir.is_dir():
            raise ExportError(f"{out_dir} exists and is not a bundle directory; refusing to replace it")
    parent = out_dir.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ExportError(f"cannot write {out_dir.name} into {parent}: it {what}")


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
