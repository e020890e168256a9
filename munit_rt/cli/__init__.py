"""`munit-rt` command line. Each command lives in its own module and imports heavy code lazily."""
from __future__ import annotations

import click

from munit_rt import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="munit-rt")
def cli() -> None:
    """Image-to-image translation GANs from PyTorch training to fast batch inference.

    \b
    Typical flow:
      munit-rt train --config CFG.yaml --data DIR -o RUN      train (needs munit-rt[train])
      munit-rt export RUN/checkpoints/gen_00010000.pt         write an ONNX bundle (needs munit-rt[export])
      munit-rt translate --model X.bundle --styles 8 DIR/     translate a folder (ONNX Runtime)
    """


def _register() -> None:
    import importlib

    for name in ("train", "info", "export", "translate", "quantize", "build", "export_triton"):
        try:
            module = importlib.import_module(f"munit_rt.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"munit_rt.cli.{name}":
                continue  # command not written yet
            raise
        cli.add_command(module.command)


_register()


def main() -> None:
    cli(prog_name="munit-rt")
