"""`munit-rt export-triton`: a Triton Inference Server model repository from a bundle (no torch needed)."""
from __future__ import annotations

from pathlib import Path

import click

from munit_rt.cli.common import BundlePath, echo_text, friendly_errors


@click.command("export-triton")
@click.argument("bundle", type=BundlePath(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "repo", required=True, type=click.Path(path_type=Path),
              help="Model repository folder to write (serve it with tritonserver --model-repository=REPO).")
@click.option("--platform", type=click.Choice(["onnxruntime", "tensorrt"]), default="onnxruntime", show_default=True,
              help="onnxruntime: the bundle's ONNX graphs; tensorrt: the plans `munit-rt build` cached in the bundle.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Which exported graphs (or engines) to serve; inputs and outputs stay float32.")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="max_batch_size of every model.  [default: 16; tensorrt: the engines' largest common batch]")
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
              help="Instances of each model (instance_group count).")
@click.option("--kind", type=click.Choice(["auto", "gpu", "cpu"]), default=None,
              help="instance_group kind.  [default: gpu for tensorrt; auto for onnxruntime (GPU when Triton has "
                   "one, else CPU)]")
@click.option("--direction", type=click.Choice(["a2b", "b2a", "both"]), default="both", show_default=True,
              help="MUNIT: the ensembles (and graphs) to write; CycleGAN: the generators. StarGAN: keep 'both'.")
@click.option("--prefix", default=None, help="Model-name prefix.  [default: the bundle's family, e.g. munit]")
@click.option("--gpu", default=None, metavar="NAME",
              help="tensorrt: use the engines built on this GPU (part of its name, or its compute capability).")
@click.option("--trt-version", default=None, metavar="VERSION",
              help="tensorrt: use the engines built with this TensorRT version (the Triton server's).")
@click.option("--force", is_flag=True, help="Replace an existing repository folder.")
@friendly_errors
def command(bundle: Path, repo: Path, platform: str, precision: str, max_batch: int | None, instances: int,
            kind: str | None, direction: str, prefix: str | None, gpu: str | None, trt_version: str | None,
            force: bool) -> None:
    """Write a Triton model repository serving BUNDLE (a folder, or an installed model's name such as default).

    \b
    One model per graph (REPO/<model>/config.pbtxt and 1/model.onnx or 1/model.plan), each with dynamic
    batching. MUNIT bundles also get two ensembles per direction, which chain the graphs inside Triton:
      munit_a2b          image + style code        -> translated image (draw the code N(0, I) yourself)
      munit_a2b_guided   image + reference image   -> translated image in the reference's style
    CycleGAN (cyclegan_generator_a2b, _b2a) and StarGAN (stargan_generator: image + label) graphs are end to
    end already. Tensors are float32 NCHW in [-1, 1], as in the bundle; resizing and normalising stay with
    the client. The folder is written beside REPO and renamed into place.
    """
    from munit_rt.triton import export_triton

    result = export_triton(bundle, repo, platform=platform, precision=precision, max_batch=max_batch,
                           instances=instances, kind=kind, direction=direction, prefix=prefix, force=force,
                           gpu=gpu, trt_version=trt_version, progress=lambda line: echo_text(line, err=True))
    echo_text(result.describe())
