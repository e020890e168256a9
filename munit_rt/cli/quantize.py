"""`munit-rt quantize`: the command line of munit_rt.export.quantize.quantize_bundle (no torch involved)."""
from __future__ import annotations

from pathlib import Path

import click

from munit_rt.cli.common import BundlePath, echo_text, friendly_errors


@click.command("quantize")
@click.argument("bundle", type=BundlePath(exists=True, file_okay=False, path_type=Path))
@click.option("--calibrate", "calibrate", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              metavar="DIR", help="Images like the ones you will translate (searched recursively); a random fifth "
                                  "(at most 32) is held out to measure the quality, the rest (at most 256) calibrates.")
@click.option("--min-psnr", type=float, default=40.0, show_default=True,
              help="Refuse (writing nothing) when the int8 job's outputs are below this PSNR against fp32's.")
@click.option("--holdout", type=click.IntRange(min=1), metavar="N",
              help="Held-out images for the quality check [default: a fifth of the images, 1 to 32].")
@click.option("-o", "--output", type=click.Path(path_type=Path), metavar="DIR",
              help="Write a quantized copy of BUNDLE here (a new or empty folder) and leave BUNDLE unchanged.")
@friendly_errors
def command(bundle: Path, calibrate: Path, min_psnr: float, holdout: int | None, output: Path | None) -> None:
    """Write int8 graphs into BUNDLE (or a copy, --output), calibrated on real images, with their measured quality.

    \b
    The family's own translate job (default options, every direction) runs in fp32 on the
    calibration images while the feeds of each graph are recorded; ONNX Runtime's static
    quantizer then quantizes the Conv nodes of the graphs that do a real share of the job's
    FLOPs (QDQ: per-channel int8 weights, uint8 activations; the first and last Conv of each
    graph stay fp32; other graphs keep their fp32 file as their int8 file). The whole job's
    outputs at int8 (and bf16, where this CPU runs it natively) are compared with fp32's on the
    held-out images (PSNR, 99.9th-percentile uint8 level difference) and recorded in the
    manifest: `munit-rt info` and the `translate` summary show them. Below --min-psnr nothing
    is written (exit 2). Run: munit-rt translate --backend openvino --precision int8 ...
    Quantizing again replaces the int8 graphs.
    """
    from munit_rt.export.quantize import quantize_bundle

    result = quantize_bundle(bundle, calibrate, min_psnr=min_psnr, holdout=holdout,
                             notify=lambda line: echo_text(line, err=True), output=output)
    quantized = [name for name, choice in result.choices.items() if choice.quantize]
    echo_text(f"wrote int8 graphs into {result.bundle} in {result.seconds:.1f} s: {len(quantized)} quantized "
              f"({', '.join(quantized) or 'none'}), {len(result.choices) - len(quantized)} fp32 files; "
              + (f"a copy of {bundle}, {len(result.written)} files" if result.bundle.resolve() != bundle.resolve() else
                 f"files written: {', '.join(result.written) or 'none (unchanged)'}"))
