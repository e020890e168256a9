"""Upstream junyanz/pytorch-CycleGAN-and-pix2pix pix2pix files: `latest_net_G.pth` / `<epoch>_net_G.pth`, a plain
UnetGenerator state dict (the same file names as CycleGAN's test mode, so files are told apart by their keys: a
U-Net nests its blocks, `model.model.1.model.1.weight`; a ResnetGenerator's keys are `model.<i>...`).

Such a file stores no config, but its tensor shapes fix the architecture (input_nc, output_nc, ngf, norm, and
netG from the number of blocks), so it exports without one; the rest are upstream's defaults. Two things no
file tells: the training `direction` (AtoB assumed) and the test mode `eval` (false, upstream's default);
a config in upstream option names sets them (and must fit the weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from munit_rt.training.config_fields import build_config
from munit_rt.training.errors import CheckpointError, ConfigError
from munit_rt.training.families.pix2pix.config import GENERATOR_KEYS, NAME, NETG_DOWNS, Pix2PixConfig, check_config
from munit_rt.training.families.pix2pix.model import infer_architecture, looks_like_unet
from munit_rt.training.family import Checkpoint, Detection
from munit_rt.training.summary import describe_generators
from munit_rt.training.weights import (clean_state_dict, drop_stale_norm_buffers, fill_num_batches_tracked,
                                       has_conv_weight)

UNKNOWN_TO_FILES = "direction (AtoB assumed) and eval (false assumed) are not in the file: pass --config to set them"


def detect(obj: Any, path: Path) -> Detection | None:
    """A UnetGenerator, or a refused pix2pix discriminator: a PatchGAN (4x4 conv first, at model.0) on an (A, B)
    pair, so with input_nc + output_nc (2, 4 or 6) input channels. A PatchGAN of 3 channels is CycleGAN's."""
    if not isinstance(obj, dict):
        return None
    state = clean_state_dict(obj)
    if looks_like_unet(state):
        return Detection(NAME, key=GENERATOR_KEYS[0])
    if has_conv_weight(state, "model.0.weight", 4) and state["model.0.weight"].shape[1] in (2, 4, 6):
        return Detection(NAME, refusal="an upstream pix2pix discriminator (it judges (A, B) pairs); pass the "
                                       "generator file (latest_net_G.pth)")
    return None


def upstream_config(state_dicts: dict[str, dict[str, Any]]) -> tuple[Pix2PixConfig, str]:
    """The config the U-Net's shapes fix (upstream's defaults for everything else), checked like a YAML's."""
    state = clean_state_dict(state_dicts[GENERATOR_KEYS[0]])
    arch = infer_architecture(state)
    if arch.num_downs not in NETG_DOWNS.values():
        raise CheckpointError(f"a U-Net of {arch.num_downs} blocks, which is no upstream netG "
                              f"({', '.join(f'{k}: {v} blocks' for k, v in NETG_DOWNS.items())})")
    source = "the tensor shapes of the upstream file"
    try:
        config = build_config(Pix2PixConfig, {"netG": arch.netG, "input_nc": arch.input_nc,
                                              "output_nc": arch.output_nc, "ngf": arch.ngf, "norm": arch.norm},
                              source)
        check_config(config, source)
    except ConfigError as exc:
        raise CheckpointError(f"{exc}; pass the config it was trained with (--config)") from None
    return config, "inferred"


def describe_checkpoint(ckpt: Checkpoint, config_path: str | Path | None) -> str:
    """`munit-rt info`: the common generator description, the direction and the test mode."""
    config = ckpt.config
    rows = [("generator", f"G: {'A -> B' if config.direction == 'AtoB' else 'B -> A'} ({config.direction})")]
    if ckpt.source_format != "munit-rt" and config_path is None:
        rows.append(("  note", UNKNOWN_TO_FILES))

    def infer(state: dict) -> dict:
        arch = infer_architecture(clean_state_dict(state))
        return {"netG": arch.netG, "input_nc": arch.input_nc, "output_nc": arch.output_nc, "ngf": arch.ngf,
                "norm": arch.norm}

    return describe_generators(ckpt, config_path, infer=infer, extra_rows=rows, summary_keys=(
        "netG", "input_nc", "output_nc", "ngf", "norm", "no_dropout", "direction", "eval"))


def remap(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Upstream state dict -> ours, pure. Rules, in order:
    1. DDP / torch.compile prefixes stripped;
    2. upstream `__patch_instance_norm_state_dict`: files from PyTorch < 0.4 (and some later ones) hold
       `running_mean` / `running_var` / `num_batches_tracked` for InstanceNorm layers that track nothing;
       they are dropped;
    3. BatchNorm layers of files saved before PyTorch 0.4.1 have no `num_batches_tracked`: 0 is filled in, as
       PyTorch's own loader does for such files (upstream's pretrained pix2pix models are that old).
    Everything else passes through unchanged, so a wrong file still fails the strict load."""
    return fill_num_batches_tracked(drop_stale_norm_buffers(clean_state_dict(state), model), model)
