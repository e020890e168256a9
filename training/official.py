"""Official-checkpoint import: key fixes as pure functions, then a strict load that names every problem."""
from __future__ import annotations

from typing import Any

from torch import nn

from munit_rt.training.errors import CheckpointError

# PyTorch 0.3 InstanceNorm2d tracked running statistics; 0.4 dropped them. Official MUNIT files trained
# on 0.3 carry these buffers for every instance-norm layer (the official `pytorch03_to_pytorch04` deletes
# them); they were never used at test time.
_STALE_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def clean_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """Strip wrappers that other tools add: DDP's `module.` and torch.compile's `_orig_mod.`."""
    out = {}
    for key, value in state.items():
        key = str(key)  # foreign files may use int keys; they then fail the strict load by name
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def remap_munit(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Return `state` with pre-0.4 instance-norm buffers dropped where the model has no such buffer."""
    state = clean_state_dict(state)
    instance_norms = {name for name, m in model.named_modules() if isinstance(m, nn.modules.instancenorm._InstanceNorm)
                      and not m.track_running_stats}
    expected = set(model.state_dict())
    out = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if key not in expected and leaf in _STALE_NORM_BUFFERS and module in instance_norms:
            continue
        out[key] = value
    return out


def load_state_dict_strict(model: nn.Module, state: dict[str, Any], source: str) -> None:
    """Strict load; missing/unexpected keys and shape mismatches become one readable line."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (first: {', '.join(unexpected[:3])})")
        raise CheckpointError(f"{source}: weights do not match the config: {'; '.join(parts)}")
    for key, tensor in expected.items():
        got = tuple(getattr(state[key], "shape", ()))
        if got != tuple(tensor.shape):
            raise CheckpointError(f"{source}: tensor '{key}' has shape {list(got)} but the config expects "
                                  f"{list(tensor.shape)}; pass the config the checkpoint was trained with")
    model.load_state_dict(state, strict=True)


# ------------------------------------------------------------------------------ CycleGAN and StarGAN
# Upstream files are plain generator state dicts; these key patterns tell them apart (after
# `clean_state_dict`). Discriminator files are recognised only to say so in the error.
_UPSTREAM_SIGNATURES = (
    # (name, key that must exist, its kernel size)
    ("cyclegan", "model.1.weight", 7),                  # junyanz ResnetGenerator: ReflectionPad, Conv 7x7
    ("cyclegan-discriminator", "model.0.weight", 4),    # junyanz NLayerDiscriminator: Conv 4x4 first
    ("stargan", "main.0.weight", 7),                    # yunjey Generator: Conv 7x7 on image + labels
    ("stargan-discriminator", "conv2.weight", None),    # yunjey Discriminator: classifier head conv2
)


def detect_upstream_family(state: dict[str, Any]) -> str | None:
    """'cyclegan' / 'stargan' for upstream generator files, '<family>-discriminator' for their
    discriminators, None for anything else."""
    state = clean_state_dict(state)
    for name, key, kernel in _UPSTREAM_SIGNATURES:
        tensor = state.get(key)
        if getattr(tensor, "dim", lambda: 0)() == 4 and (kernel is None or tensor.shape[-1] == kernel):
            return name
    return None


def remap_cyclegan(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Upstream `__patch_instance_norm_state_dict`: files from PyTorch < 0.4 (and some later ones) hold
    `running_mean` / `running_var` / `num_batches_tracked` for InstanceNorm layers that track nothing;
    drop them. Everything else passes through unchanged, so a wrong file still fails the strict load."""
    state = clean_state_dict(state)
    untracked = {name for name, m in model.named_modules()
                 if isinstance(m, nn.modules.instancenorm._InstanceNorm) and not m.track_running_stats}
    return {key: value for key, value in state.items()
            if not (key.rpartition(".")[0] in untracked and key.rpartition(".")[2] in _STALE_NORM_BUFFERS)}


def remap_stargan(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Files saved by PyTorch 0.4.0 have no `num_batches_tracked` (added in 0.4.1, and never used by
    instance norm); fill in 0 where the model has the buffer, as PyTorch's own loader does for old files."""
    import torch

    state = clean_state_dict(state)
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.track_running_stats:
            key = f"{name}.num_batches_tracked"
            if key not in state and f"{name}.running_mean" in state:
                state[key] = torch.tensor(0, dtype=torch.long)
    return state
