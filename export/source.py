"""The checkpoint an export starts from: `training.checkpoint.read_any_checkpoint`, with export's wording for
the two ways a single file can fail to be a generator of a known family.

`read_any_checkpoint` names what it found; export adds what it accepts. Only on failure, and only for a
single file, is the file looked at again (weights-only unless trusted) to choose the message:
  * no family at all (no munit-rt block, no MUNIT `a`/`b`, no upstream generator key) -> what export takes;
  * a munit-rt file of another family that cannot be read (weights missing, format, config) -> the family
    named, then the reason.
Every other error passes through unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

ACCEPTED = ("not a MUNIT generator checkpoint (gen_XXXXXXXX.pt), nor a CycleGAN or StarGAN generator (munit-rt "
            "cyclegan_/stargan_XXXXXXXX.pt, upstream latest_net_G_A.pth / latest_net_G_B.pth, NNNNNN-G.ckpt)")


def read_source(paths: list[Path], config: Any = None, trust: bool = False):
    """`read_any_checkpoint(paths)` (one file or a CycleGAN G_A/G_B pair) -> Checkpoint."""
    from training.checkpoint import read_any_checkpoint
    from training.errors import CheckpointError

    try:
        return read_any_checkpoint(paths[0] if len(paths) == 1 else list(paths), config=config, trust=trust)
    except (CheckpointError, AttributeError) as exc:  # AttributeError: a dict with non-string keys (see below)
        if len(paths) != 1:
            raise
        reworded = _reworded(paths[0], exc, trust)
        if reworded is None:
            raise
        raise CheckpointError(reworded) from None


def _reworded(path: Path, exc: Exception, trust: bool) -> str | None:
    from training.checkpoint import META_KEY, torch_load
    from training.errors import CheckpointError
    from training.official import detect_upstream_family

    try:
        obj = torch_load(path, trust=trust)
    except CheckpointError:
        return None  # unreadable: the original message already says so
    if not isinstance(obj, dict) or not all(isinstance(key, str) for key in obj):
        # read_any_checkpoint's upstream detection calls str methods on the keys: an AttributeError there
        return f"{path}: {ACCEPTED}"
    if isinstance(exc, AttributeError):
        return None  # not the non-string-key case: a real bug, keep its traceback
    meta = obj.get(META_KEY)
    if isinstance(meta, dict):
        family = meta.get("family")
        if family in (None, "munit"):
            return None
        reason = str(exc).removeprefix(f"{path}: ")
        return f"{path}: cannot export this munit-rt checkpoint of family '{family}': {reason}"
    if {"a", "b"} <= set(obj) or detect_upstream_family(obj) is not None:
        return None  # MUNIT-shaped or a known upstream file (e.g. a discriminator): already explained
    return f"{path}: {ACCEPTED}"
