"""Upstream yunjey/stargan files: `NNNNNN-G.ckpt`, a plain generator state dict named by its iteration. It stores
no config: the caller's is used, else upstream's defaults (conv_dim 64, c_dim 5, repeat_num 6)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import nn

from munit_rt.training.families.stargan.config import NAME
from munit_rt.training.families.stargan.model import infer_architecture
from munit_rt.training.family import Checkpoint, Detection
from munit_rt.training.summary import describe_generators
from munit_rt.training.weights import clean_state_dict, fill_num_batches_tracked, has_conv_weight

_ITERATION_RE = re.compile(r"(\d+)-G\.ckpt$")  # yunjey names files by iteration


def detect(obj: Any, path: Path) -> Detection | None:
    """The Generator (a 7x7 conv on image + labels at main.0), or a refused Discriminator (its classifier
    head, conv2)."""
    if not isinstance(obj, dict):
        return None
    state = clean_state_dict(obj)
    if has_conv_weight(state, "main.0.weight", 7):
        return Detection(NAME, key="G")
    if has_conv_weight(state, "conv2.weight"):
        return Detection(NAME, refusal="an upstream StarGAN discriminator; pass the generator file (NNNNNN-G.ckpt)")
    return None


def upstream_iteration(path: Path) -> int | None:
    match = _ITERATION_RE.search(path.name)
    return int(match.group(1)) if match else None


def describe_checkpoint(ckpt: Checkpoint, config_path: str | Path | None) -> str:
    """`munit-rt info`: the common generator description with the label set."""
    return describe_generators(ckpt, config_path, infer=infer_architecture, summary_keys=(
        "image_size", "g_conv_dim", "g_repeat_num", "c_dim", "selected_attrs", "selected_attrs_2"))


def remap(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Upstream state dict -> ours, pure. Rules, in order:
    1. DDP / torch.compile prefixes stripped;
    2. files saved by PyTorch 0.4.0 have no `num_batches_tracked` (added in 0.4.1, and never used by instance
       norm): 0 is filled in where the model has the buffer, as PyTorch's own loader does for old files."""
    return fill_num_batches_tracked(clean_state_dict(state), model)
