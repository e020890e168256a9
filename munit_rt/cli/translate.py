"""`munit-rt translate`: the command line of munit_rt.translate.run.translate_paths (no torch involved)."""
from __future__ import annotations

from pathlib import Path

import click

from munit_rt.cli.common import (EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_INPUTS_FAILED, command_line, echo_text,
                                 friendly_errors)

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
@click.option("--attrs", metavar="A,B=0,...",
              help="StarGAN: target attributes, one output per input (listed: 1, or =0/=1; others from "
                   "--from-attrs, else 0; one hair colour at most).")
@click.option("--sweep", is_flag=True,
              help="StarGAN: one output per attribute, upstream's rule (default without --attrs).")
@click.option("--from-attrs", metavar="A,B,...",
              help="StarGAN: the inputs' own attributes, the base for --attrs and --sweep [default: none].")
@click.option("--size", type=click.IntRange(min=1),
              help="Shorter side in pixels (StarGAN: the square side) [default: the bundle's].")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=8, show_default=True,
              help="(image, style) pairs per decoder call.")
@click.option("--checkpoint", type=_ExistingFile,
              help="--backend torch: the checkpoint the bundle was exported from [default: the manifest's path].")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "openvino", "torch", "tensorrt"]),
              default="auto", show_default=True,
              help="auto: TensorRT on a GPU, else ONNX Runtime; openvino (pip install 'munit-rt[openvino]') only "
                   "when named.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "int8"]), default="fp32", show_default=True,
              help="fp16: the bundle's fp16 graphs (OpenVINO: f16 on CPUs with native fp16); bf16: --backend "
                   "openvino on CPUs with AVX512_BF16/AMX; int8: the graphs of `munit-rt quantize` (fastest on "
                   "--backend openvino). The summary names what ran and the bundle's recorded quality for it.")
@click.option("--layout", type=click.Choice(["nested", "official"]), default="nested", show_default=True,
              help="nested: OUT/<input>/style_00.png (CycleGAN, StarGAN --attrs: OUT/<input>.png; StarGAN sweep: "
                   "OUT/<input>/<attribute>.png); official: OUT_00/<input>.png, OUT_01/...")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
@click.option("--grid", is_flag=True, help="Also write OUT/<input>/grid.png (input + outputs) and OUT/index.html.")
@click.option("--recursive", "-r", is_flag=True, help="Search input folders recursively.")
@click.option("--resume/--overwrite", default=True, show_default=True,
              help="Skip inputs whose outputs all exist, or redo everything.")
@click.option("--output", "-o", type=_Path, default=Path("translated"), show_default=True, help="Output folder.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: the same run on Ray actors, on a local Ray instance or --address's cluster "
                   "(pip install 'munit-rt[ray]'; the bundle, inputs and output on a shared file system).")
@click.option("--address", metavar="ADDR", help="--engine ray: the Ray cluster to join (e.g. auto, HOST:6379) "
                                                "[default: start a local Ray instance].")
@click.option("--workers", type=click.IntRange(min=1),
              help="--engine ray: inference workers, each holding one model [default: one per --gpus-per-worker "
                   "GPUs of the cluster, else one per node].")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0, min_open=True), metavar="G",
              help="--engine ray: GPUs each worker reserves (fractions share a GPU) [default: none, CPU].")
@friendly_errors
def command(inputs, model, styles, style_images, output, **options) -> None:
    """Translate images with a MUNIT, CycleGAN or StarGAN bundle (the manifest's family).

    \b
    MUNIT     S styles per input (random, --style-image/--style-dir, --style-codes)
    CycleGAN  one output per input through the --direction's generator
    StarGAN   --attrs: one output with those attributes; --sweep (default): one per
              attribute, a hair colour set alone, any other attribute flipped
    Options another family uses are ignored with a note.

    \b
    Exit codes:
      0    every input translated (or already done)
      1    some inputs failed: each is listed with its reason, the others were written
      2    usage or setup error: bad option, model or bundle, no images found, output not
           writable; or the disk filled up (or turned read-only) mid-run: the run stops,
           finished outputs are kept, the same command resumes
      130  interrupted (Ctrl-C, SIGTERM): only complete files are left; rerun to resume

    \b
    Inputs are decoded by content (JPEG, PNG, BMP, WebP, GIF, TIFF): EXIF orientation
    applied, alpha composited on white, 16-bit scaled to 8-bit, CMYK/palette/grey converted
    to the domain's channels (RGB to 1 channel: ITU-R 601 luma), animations: first frame.
    Skipped with a reason: empty, truncated or non-image files, decompression bombs (over
    PIL.Image.MAX_IMAGE_PIXELS), images thinner than 1:10. Outputs are written under a
    temporary name and renamed, so files are always whole.

    \b
    Environment: MUNIT_RT_WINOGRAD=auto|on|off (default auto): on the CPU, ONNX Runtime
    runs wide 3x3 convolutions (harmonic mean of in/out channels >= 200, e.g. 256 -> 256)
    as Winograd F(4x4, 3x3), the same result up to float rounding (~1e-5); `on` rewrites
    every 3x3 conv, `off` runs the graphs as exported.
    """
    import signal
    import warnings

    from PIL import Image

    from munit_rt.translate.options import TranslateOptions
    from munit_rt.translate.run import Interrupted, translate_paths

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # such images are refused anyway

    def interrupt(signum, frame):  # `kill PID` stops like Ctrl-C: running writes finish, nothing half-written
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding application's worker): leave signals alone
        previous = None
    try:
        report = translate_paths(TranslateOptions(inputs=list(inputs), model=model, styles=styles,
                                                  style_images=tuple(style_images), output=output,
                                                  explicit=_explicit_options(), **options),
                                 notify=lambda line: echo_text(line, err=True))
    except Interrupted as stop:  # every file written is complete: say so, and how to go on
        click.echo(stop.report.summary(), err=True)
        echo_text(f"Interrupted: {stop.report.translated} inputs translated in this run, their files complete; "
                  f"to go on, run: {command_line({'resume': True})}", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    click.echo(report.summary(), err=True)
    raise SystemExit(EXIT_OK if report.ok else EXIT_SOME_INPUTS_FAILED)


def _explicit_options() -> frozenset[str]:
    """The options given on the command line (or by environment variable), not left at their defaults."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return frozenset(name for name in ctx.params if ctx.get_parameter_source(name) in given)
