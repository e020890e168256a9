"""`munit-rt info`: what a checkpoint or bundle holds. torch is imported only for checkpoints."""
from __future__ import annotations

from pathlib import Path

import click

from munit_rt.cli.common import BundlePath, UserError, echo_text, friendly_errors


@click.command("info")
@click.argument("path", type=BundlePath(exists=True), metavar="CKPT_OR_BUNDLE")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="YAML for official checkpoints (they store no config); checks the weights against it.")
@click.option("--trust-checkpoint", is_flag=True,
              help="UNSAFE: allow pickled objects in the checkpoint, which run code from the file while it loads; "
                   "only for files you trust. Without it, only tensors and plain data are read (weights_only).")
@friendly_errors
def command(path, config_path, trust_checkpoint):
    """Describe a checkpoint or a bundle folder (with manifest.json), or an installed model by name (default).

    Checkpoints: MUNIT gen_XXXXXXXX.pt, munit-rt cyclegan_/stargan_/pix2pix_XXXXXXXX.pt, upstream CycleGAN
    latest_net_G_A.pth, StarGAN NNNNNN-G.ckpt and pix2pix latest_net_G.pth.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise UserError(f"{path}: a folder without manifest.json is not a bundle; pass a gen_*.pt file "
                            "or a bundle folder")
        from munit_rt.bundle import Bundle

        echo_text(Bundle(path).describe())
        return
    from munit_rt.cli.common import require

    require("torch", "train")
    echo_text(describe_checkpoint(path, config_path, trust=trust_checkpoint))


def describe_checkpoint(path: Path, config_path: str | Path | None = None, trust: bool = False) -> str:
    """The family's description of a checkpoint file (munit-rt or upstream)."""
    from munit_rt.training.checkpoint import read_checkpoint
    from munit_rt.training.registry import get_family

    ckpt = read_checkpoint(path, config=config_path, trust=trust)
    return get_family(ckpt.family).describe_checkpoint(ckpt, config_path)
