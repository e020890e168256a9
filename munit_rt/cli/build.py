"""`munit-rt build`: TensorRT engines for a bundle, cached under BUNDLE/engines/."""
from __future__ import annotations

from pathlib import Path

import click

from munit_rt.cli.common import BundlePath, echo_text, friendly_errors

SIZE = click.IntRange(min=1)


@click.command("build")
@click.argument("bundle", type=BundlePath(exists=True, file_okay=False, path_type=Path))
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Which exported graphs to build from (the same default as `translate`).")
@click.option("--max-batch", type=SIZE, default=None, help="Largest batch the engines take  [default: 16]")
@click.option("--opt-batch", type=SIZE, default=None, help="Batch TensorRT tunes for  [default: min(8, max)]")
@click.option("--min-size", type=SIZE, default=None, metavar="PX",
              help="Smallest image height/width  [default: opt / 2]")
@click.option("--opt-size", type=SIZE, default=None, metavar="PX",
              help="Height/width TensorRT tunes for  [default: the bundle's preprocess size]")
@click.option("--max-size", type=SIZE, default=None, metavar="PX",
              help="Largest image height/width  [default: 2 * opt]")
@click.option("--workspace", "workspace_mib", type=SIZE, default=None, metavar="MiB",
              help="Builder workspace limit  [default: TensorRT's, the GPU's memory]")
@click.option("--graphs", multiple=True, metavar="NAME[,NAME]",
              help="Only these graphs (repeat or comma-separate)  [default: all]")
@click.option("--force", is_flag=True, help="Rebuild even when a current engine is cached.")
@friendly_errors
def command(bundle: Path, precision: str, max_batch: int | None, opt_batch: int | None,
            min_size: int | None, opt_size: int | None, max_size: int | None, workspace_mib: int | None,
            graphs: tuple[str, ...], force: bool) -> None:
    """Build one TensorRT engine per graph of BUNDLE (a folder, or an installed model's name such as default;
    needs munit-rt[tensorrt] and an NVIDIA GPU).

    \b
    Engines are strongly typed: fp16 engines come from the bundle's fp16 graphs, fp32 from fp32.
    One optimisation profile covers batch 1..--max-batch and H, W in --min-size..--max-size
    (multiples of the bundle's spatial multiple). Engines whose cache key (graph sha256, TensorRT
    version, GPU, compute capability, precision, profile) is unchanged are reused, not rebuilt.
    `munit-rt translate --backend tensorrt` builds missing engines on first use the same way.
    """
    from munit_rt.bundle import Bundle
    from munit_rt.tensorrt.builder import BuildOptions, prepare_engines
    from munit_rt.tensorrt.profiles import ProfileOptions

    opened = Bundle(bundle)
    names = tuple(name.strip() for item in graphs for name in item.split(",") if name.strip()) or None
    options = BuildOptions(precision=precision, workspace_mib=workspace_mib, graphs=names, force=force,
                           profile=ProfileOptions(max_batch=max_batch, opt_batch=opt_batch, min_size=min_size,
                                                  opt_size=opt_size, max_size=max_size))
    for record in prepare_engines(opened, options):
        echo_text(f"{record.graph:<20} {precision}  {'built ' if record.built else 'cached'}  {record.path}")
