"""Upstream junyanz/pytorch-CycleGAN-and-pix2pix files: plain generator state dicts, `latest_net_G_A.pth` (G_A:
A -> B) and `latest_net_G_B.pth` (G_B: B -> A), given alone or as a pair, told apart by `G_B` in the name. They
store no config: the caller's is used, else upstream's defaults (ngf 64, 9 blocks, instance norm)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from munit_rt.training.families.cyclegan.config import NAME
from munit_rt.training.families.cyclegan.model import infer_architecture
from munit_rt.training.family import Checkpoint, Detection
from munit_rt.training.summary import describe_generators
from munit_rt.training.weights import clean_state_dict, drop_stale_norm_buffers, has_conv_weight


def detect(obj: Any, path: Path) -> Detection | None:
    """A ResnetGenerator (ReflectionPad, then a 7x7 conv at model.1), or a refused NLayerDiscriminator (a 4x4
    conv first, at model.0)."""
    if not isinstance(obj, dict):
        return None
    state = clean_state_dict(obj)
    if has_conv_weight(state, "model.1.weight", 7):
        return Detection(NAME, key="G_B" if "G_B" in path.name else "G_A")
    if has_conv_weight(state, "model.0.weight", 4):
        return Detection(NAME, refusal="an upstream CycleGAN discriminator; pass the generator file "
                                       "(latest_net_G_A.pth / latest_net_G_B.pth)")
    return None


def describe_checkpoint(ckpt: Checkpoint, config_path: str | Path | None) -> str:
    """`munit-rt info`: the common generator description, and which directions the file holds."""
    held = ", ".join({"G_A": "G_A (A -> B)", "G_B": "G_B (B -> A)"}[key] for key in ckpt.state_dicts)
    return describe_generators(ckpt, config_path, infer=infer_architecture, extra_rows=[("directions", held)],
                               summary_keys=("input_nc", "output_nc", "ngf", "n_blocks", "norm", "use_dropout"))


def remap(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Upstream state dict -> ours, pure. Rules, in order:
    1. DDP / torch.compile prefixes stripped;
    2. upstream `__patch_instance_norm_state_dict`: files from PyTorch < 0.4 (and some later ones) hold
       `running_mean` / `running_var` / `num_batches_tracked` for InstanceNorm layers that track nothing;
       they are dropped.
    Everything else passes through unchanged, so a wrong file still fails the strict load."""
    return drop_stale_norm_buffers(clean_state_dict(state), model)
