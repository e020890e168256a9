"""Official NVlabs/MUNIT files: which plain files are MUNIT generators, and the key fixes they need.

    gen_%08d.pt   {"a": state_dict, "b": state_dict}   (munit-rt adds its "munit_rt" block: training.checkpoint)
    dis_%08d.pt   {"a": ..., "b": ...} of discriminators: refused, with the generator file to pass instead

Official files store no config: the caller passes the official YAML.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import nn

from munit_rt.training.families.munit.config import NAME
from munit_rt.training.family import Detection
from munit_rt.training.weights import clean_state_dict, drop_stale_norm_buffers

_ITERATION_RE = re.compile(r"(?:gen|dis)_(\d{8})\.pt$")  # official snapshot names
_GENERATOR_PREFIXES = ("enc_style.", "enc_content.")


def detect(obj: Any, path: Path) -> Detection | None:
    """Files with a state dict per domain: generators (enc_style / enc_content weights), or refused."""
    if not (isinstance(obj, dict) and {"a", "b"} <= set(obj)):
        return None
    if isinstance(obj["a"], dict) and any(str(k).startswith(_GENERATOR_PREFIXES) for k in obj["a"]):
        return Detection(NAME)
    return Detection(NAME, refusal="not a MUNIT generator checkpoint (expected keys 'a' and 'b' with "
                                   "enc_style/enc_content weights, as in gen_XXXXXXXX.pt)")


def upstream_iteration(path: Path) -> int | None:
    match = _ITERATION_RE.search(path.name)
    return int(match.group(1)) if match else None


def remap(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Official state dict -> ours, pure. Rules, in order:
    1. DDP / torch.compile prefixes stripped (weights trained wrapped);
    2. the PyTorch-0.3 instance-norm buffers dropped where the model tracks none, as the official
       `pytorch03_to_pytorch04` converter does.
    Anything else passes through, so a wrong file still fails the strict load, by name."""
    return drop_stale_norm_buffers(clean_state_dict(state), model)
