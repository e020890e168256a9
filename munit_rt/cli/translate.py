"""`munit-rt translate`: the command line of munit_rt.pipeline.translate_paths (no torch involved)."""
from __future__ import annotations

from pathlib import Path

import click

from munit_rt.cli.common import EXIT_OK, EXIT_SOME_INPUTS_FAILED, friendly_errors

_Path = click.Path(path_type=Path)
_ExistingFile = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("translate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path),
                metavar="INPUT_DIR_OR_FILES...")
@click.option("--model", "-m", type=_Path, envvar="MUNIT_RT_MODEL", show_envvar=True,
              help="Bundle written by `munit-rt export` [default: $MUNIT_RT_MODEL, then the installed model].")
@click.option("--styles", "-s", type=click.IntRange(min=1), help="Random styles per input [default: 8].")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Random styles depend on seed + input path only.")
@click.option("--synchronized", is_flag=True, help="Same random styles for every input (official test_batch.py).")
@click.option("--style-image", "style_images", multiple=True, type=_ExistingFile,
              help="Reference image whose style to use (repeatable; one style each).")
@click.option("--style-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of reference images, one style each.")
@click.option("--style-codes", type=_ExistingFile, help="Style codes as a float .npy of shape [S, style_dim].")
@click.option("--interpolate", type=click.IntRange(min=0), default=0, metavar="K",
              help="Insert K interpolated styles between consecutive styles.")
@click.option("--slerp", is_flag=True, help="Interpolate on the sphere instead of linearly.")
@click.option("--size", type=click.IntRange(min=1), help="Shorter side in pixels [default: the bundle's].")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=8, show_default=True,
              help="(image, style) pairs per decoder call.")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "torch", "tensorrt"]), default="auto",
              show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
@click.option("--layout", type=click.Choice(["nested", "official"]), default="nested", show_default=True,
              help="nested: OUT/<input>/style_00.png; official: OUT_00/<input>.png, OUT_01/...")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
@click.option("--grid", is_flag=True, help="Also write OUT/<input>/grid.png (input + styles) and OUT/index.html.")
@click.option("--recursive", "-r", is_flag=True, help="Search input folders recursively.")
@click.option("--resume/--overwrite", default=True, show_default=True,
              help="Skip inputs whose outputs all exist, or redo everything.")
@click.option("--output", "-o", type=_Path, default=Path("translated"), show_default=True, help="Output folder.")
@friendly_errors
def command(inputs, model, styles, style_images, output, **options) -> None:
    """Translate images with a MUNIT bundle, S styles per input.

    \b
    Exit codes:
      0  every input translated (or already done)
      1  some inputs failed (each is listed); the others were written
      2  usage or setup error: bad option or model, no images found, unwritable output
    """
    from munit_rt.pipeline import TranslateOptions, translate_paths

    report = translate_paths(TranslateOptions(inputs=list(inputs), model=model, styles=styles,
                                              style_images=tuple(style_images), output=output, **options))
    click.echo(report.summary(), err=True)
    raise SystemExit(EXIT_OK if report.ok else EXIT_SOME_INPUTS_FAILED)
