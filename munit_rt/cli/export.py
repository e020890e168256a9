"""`munit-rt export`: write an ONNX bundle from a MUNIT, CycleGAN, StarGAN or pix2pix checkpoint (imports torch only
when it runs). An upstream CycleGAN pair is given as two CHECKPOINT arguments."""
from __future__ import annotations

from pathlib import Path

import click

from munit_rt.cli.common import echo_text, friendly_errors, require


@click.command("export")
@click.argument("checkpoints", metavar="CHECKPOINT [G_B_CHECKPOINT]", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML the checkpoint was trained with: needed for official NVlabs gen_*.pt files; for upstream "
                   "CycleGAN/StarGAN files, else their upstream defaults are assumed; for upstream pix2pix files, "
                   "else the architecture their shapes fix (direction AtoB, eval false).")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path),
              help="Bundle directory to write (missing parent folders are created).  [default: <checkpoint "
                   "stem>.bundle beside the checkpoint]")
@click.option("--opset", type=click.IntRange(min=17), default=None, help="ONNX opset.  [default: 18]")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "both"]), default="both", show_default=True,
              help="Graphs to write; FP16 graphs keep FP32 inputs/outputs and normalisation statistics.")
@click.option("--atol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Max abs error of each FP32 graph against PyTorch.")
@click.option("--min-psnr", type=float, default=40.0, show_default=True,
              help="Min PSNR (dB) of each FP16 graph's output against the FP32 graph's.")
@click.option("--upsample", type=click.Choice(["subpixel", "nearest"]), default="subpixel", show_default=True,
              help="MUNIT decoder upsampling as exported: subpixel = the same function as four 3x3 convolutions on "
                   "the low-resolution grid (1.6x fewer decoder FLOPs); nearest = Upsample + 5x5 Conv as trained.")
@click.option("--force", is_flag=True, help="Replace an existing bundle (swapped atomically).")
@click.option("--trust-checkpoint", is_flag=True,
              help="UNSAFE: allow pickled objects in the checkpoint, which run code from the file while it loads; "
                   "only for files you trust. Without it, only tensors and plain data are read (weights_only).")
@friendly_errors
def command(checkpoints: tuple[Path, ...], config_path: Path | None, out_dir: Path | None, opset: int | None,
            precision: str, atol: float, min_psnr: float, upsample: str, force: bool, trust_checkpoint: bool) -> None:
    """Export a generator checkpoint to an ONNX bundle.

    \b
    CHECKPOINT: MUNIT gen_XXXXXXXX.pt (munit-rt, or official NVlabs with --config), munit-rt
    cyclegan_/stargan_/pix2pix_XXXXXXXX.pt, upstream CycleGAN latest_net_G_A.pth or latest_net_G_B.pth, upstream
    StarGAN NNNNNN-G.ckpt, upstream pix2pix latest_net_G.pth (a U-Net; told from CycleGAN files by its keys).
    Give an upstream CycleGAN pair as two arguments (the file named *G_B* is G_B):
      munit-rt export latest_net_G_A.pth latest_net_G_B.pth --config cyclegan.yaml

    \b
    Graphs: MUNIT content_encoder_d, style_encoder_d, style_mlp_d, decoder_d for d in {a, b}; CycleGAN
    generator_a2b (G_A) and/or generator_b2a (G_B), the directions the checkpoint holds; StarGAN
    generator (image + label); pix2pix generator (in the config's test mode, eval). Every graph is
    checked against PyTorch in ONNX Runtime (FP16 graphs against FP32 by PSNR); the numbers and sha256
    hashes go into manifest.json. Nothing is written unless every check passes. Exit status: 0 written,
    2 bad input or a failed check.
    """
    if len(checkpoints) > 2:
        raise click.UsageError(f"got {len(checkpoints)} checkpoints; give one file, or an upstream CycleGAN pair "
                               "(latest_net_G_A.pth latest_net_G_B.pth)")
    for module in ("torch", "onnx", "onnxscript") + (("onnxconverter_common",) if precision != "fp32" else ()):
        require(module, "export")
    from munit_rt.export import export_bundle
    from munit_rt.export.writer import MANIFEST_NAME, format_summary

    source = checkpoints[0] if len(checkpoints) == 1 else list(checkpoints)
    bundle_dir = export_bundle(source, out_dir, config=config_path, precision=precision, opset=opset,
                               atol=atol, min_psnr=min_psnr, force=force, trust_checkpoint=trust_checkpoint,
                               upsample=upsample,
                               progress=lambda line: echo_text(line, err=True))
    import json

    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    echo_text(format_summary(manifest))
    echo_text(f"wrote {bundle_dir}")
