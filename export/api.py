"""`export_bundle`: a generator checkpoint of any registered family -> a self-describing bundle directory.

Per graph of the family's split (TrainingFamily.graphs): trace to ONNX (trace.py), check it against PyTorch in
ONNX Runtime (parity.py), optionally convert to FP16 and check that against the FP32 graph (fp16.py), then write
files, manifest and hashes into a staging directory that is renamed into place (writer.py). Heavy imports happen
inside `export_bundle`; nothing here names a family.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Sequence

from munit_rt.export.errors import ExportError

PRECISIONS = {"fp32": ("fp32",), "fp16": ("fp16",), "both": ("fp32", "fp16")}
DEFAULT_PRECISION = "both"  # FP16 conversion and its check add ~5% to an export


def export_bundle(ckpt_path: str | Path | Sequence[str | Path], out_dir: str | Path | None = None, config=None,
                  precision: str = DEFAULT_PRECISION, opset: int | None = None, atol: float = 1e-4,
                  min_psnr: float = 40.0, force: bool = False, progress: Callable[[str], None] | None = None,
                  trust_checkpoint: bool = False, upsample: str = "subpixel") -> Path:
    """Export a generator checkpoint of any family to a bundle directory and return its path.

    Args:
        ckpt_path: one checkpoint file, or a list of two for an upstream CycleGAN pair (G_A and G_B, told
            apart by `G_B` in the file name). Accepted: MUNIT `gen_XXXXXXXX.pt` (munit-rt, config inside, or
            official NVlabs, needs `config`); munit-rt `cyclegan_/stargan_/pix2pix_XXXXXXXX.pt` (config
            inside); upstream junyanz `latest_net_G_A.pth` / `latest_net_G_B.pth` / `latest_net_G.pth` and
            yunjey `NNNNNN-G.ckpt` (plain state dicts: `config`, else the family's upstream defaults, or for a
            pix2pix U-Net the architecture its shapes fix).
        out_dir: bundle directory; default `<ckpt stem>.bundle` beside the (first) checkpoint, for a pair
            without the `_G_A` suffix (`latest_net.bundle`).
        config: YAML path or config object (MunitConfig, CycleGanConfig, StarGanConfig, Pix2PixConfig) for files
            that store none; for munit-rt files it must agree with the stored one on what the weights fix, and
            is then used (e.g. for pix2pix's test mode `eval`).
        precision: "fp32", "fp16" or "both" (FP16 graphs keep FP32 inputs and outputs).
        opset: ONNX opset (default 18, at least 17).
        atol: max abs error allowed between each FP32 graph and PyTorch.
        min_psnr: min PSNR (dB) of each FP16 graph's output against the FP32 graph's.
        force: replace an existing `out_dir` (atomically swapped, then deleted).
        progress: called with one line of text per step.
        trust_checkpoint: allow pickled objects in the checkpoint (runs code; only for files you trust).
        upsample: MUNIT decoders' upsample stages as "subpixel" (default: four 3x3 convolutions on the
            low-resolution grid, equal to the original up to rounding and 1.6x faster per decode) or "nearest"
            (the training module's Upsample + 5x5 Conv as written). Both are checked against PyTorch.

    Raises ExportError (or training's CheckpointError/ConfigError) with a one-line message; on any failure
    nothing is left behind.
    """
    from munit_rt.export.trace import DEFAULT_OPSET
    from munit_rt.export.writer import check_destination, default_bundle_dir, make_parents, make_staging_dir, publish
    from munit_rt.io.outputs import remove_folders

    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    opset = DEFAULT_OPSET if opset is None else _checked_opset(opset)
    if atol < 0:
        raise ExportError(f"atol must be >= 0, got {atol}")
    paths = _checked_paths(ckpt_path)
    out_dir = Path(out_dir) if out_dir is not None else default_bundle_dir(paths)
    check_destination(out_dir, force)
    created = make_parents(out_dir)  # like translate's -o: missing parent folders are made (and removed on failure)
    try:
        staging = make_staging_dir(out_dir)
    except BaseException:
        remove_folders(created)
        raise
    try:
        _write_bundle(staging, paths, config, PRECISIONS[precision], opset, atol, min_psnr,
                      progress or (lambda line: None), trust_checkpoint, upsample)
        publish(staging, out_dir, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        remove_folders(created)
        raise
    return out_dir


def _checked_paths(ckpt_path) -> list[Path]:
    paths = [Path(p) for p in ckpt_path] if isinstance(ckpt_path, (list, tuple)) else [Path(ckpt_path)]
    if not 1 <= len(paths) <= 2:
        raise ExportError(f"expected one checkpoint file or an upstream CycleGAN G_A/G_B pair, got {len(paths)} "
                          "files")
    for path in paths:
        if not path.is_file():
            raise ExportError(f"{path}: no such checkpoint file")
    if len(paths) == 2 and paths[0].resolve() == paths[1].resolve():
        raise ExportError(f"{paths[0]}: the same file given twice; a CycleGAN pair is G_A and G_B")
    return paths


def _checked_opset(opset: int) -> int:
    import onnx

    from munit_rt.export.trace import MAX_OPSET, MIN_OPSET

    newest = min(MAX_OPSET, onnx.defs.onnx_opset_version())
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset must be between {MIN_OPSET} and {newest}, got {opset}")
    return opset


def _write_bundle(staging: Path, paths: list[Path], config, precisions: tuple[str, ...], opset: int, atol: float,
                  min_psnr: float, say: Callable[[str], None], trust_checkpoint: bool, upsample: str) -> dict:
    from munit_rt.export.fp16 import convert_to_fp16
    from munit_rt.export.parity import check_fp16, check_fp32, parity_cases
    from munit_rt.export.trace import export_graph, validate_graph
    from munit_rt.export.writer import build_manifest, validate_manifest, write_file, write_manifest
    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.registry import get_family, load_generators

    ckpt = read_checkpoint(paths[0] if len(paths) == 1 else list(paths), config=config, trust=trust_checkpoint)
    family = get_family(ckpt.family)
    gens = load_generators(ckpt)
    try:
        specs = family.graphs(gens, ckpt.config, upsample=upsample)
    except ValueError as exc:  # an export option this family refuses, or nothing to export
        raise ExportError(str(exc)) from None
    say(f"exporting {len(specs)} {family.name} graphs ({' + '.join(precisions)}, opset {opset}) from "
        f"{' + '.join(map(str, paths))}")
    graphs = {}
    for index, spec in enumerate(specs, 1):
        spec.module.eval()
        spec.reference_module.eval()
        fp32_model = export_graph(spec, opset)
        fp32_bytes = fp32_model.SerializeToString()
        fp32_report = check_fp32(spec, fp32_bytes, parity_cases(spec), atol)
        if not fp32_report.passed:
            raise ExportError(fp32_report.describe_failure(spec.name))
        entry = {"role": spec.role, **({"domain": spec.domain} if spec.domain is not None else {}),
                 **spec.manifest_fields, "inputs": [t.to_dict() for t in spec.inputs],
                 "outputs": [t.to_dict() for t in spec.outputs], "files": {},
                 "parity": {"fp32": fp32_report.to_dict()}}
        line = f"[{index}/{len(specs)}] {spec.name}: fp32 max abs err {entry['parity']['fp32']['max_abs_err']:.1e}"
        if "fp32" in precisions:
            entry["files"]["fp32"] = write_file(staging, f"fp32/{spec.name}.onnx", fp32_bytes)
        if "fp16" in precisions:
            fp16_model = convert_to_fp16(fp32_model)
            validate_graph(fp16_model, f"{spec.name} (fp16)")
            fp16_bytes = fp16_model.SerializeToString()
            fp16_report = check_fp16(spec, fp16_bytes, fp32_report, min_psnr)
            if not fp16_report.passed:
                raise ExportError(fp16_report.describe_failure(spec.name))
            entry["parity"]["fp16"] = fp16_report.to_dict()
            entry["files"]["fp16"] = write_file(staging, f"fp16/{spec.name}.onnx", fp16_bytes)
            line += f", fp16 PSNR {entry['parity']['fp16']['min_psnr_db']:.1f} dB"
        graphs[spec.name] = entry
        say(line)
    manifest = build_manifest(family=family, ckpt=ckpt, gens=gens, opset=opset, precisions=list(precisions),
                              graphs=graphs)
    validate_manifest(manifest)  # the one place the manifest is checked before it is written (see writer.py)
    write_manifest(staging, manifest)
    return manifest
