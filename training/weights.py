"""State dicts of every family: the wrapper prefixes other tools add, the pre-0.4 instance-norm buffers, and a
strict load that names every problem in one line. The families' `remap` functions are built from these rules."""
from __future__ import annotations

from typing import Any

from torch import nn

from munit_rt.training.errors import CheckpointError

# DDP's `module.` and torch.compile's `_orig_mod.`: the weights under them are the bare module's
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# PyTorch 0.3 InstanceNorm2d tracked running statistics; 0.4 dropped them. Upstream files trained on 0.3 carry
# these buffers for every instance-norm layer (NVlabs' `pytorch03_to_pytorch04` and junyanz's
# `__patch_instance_norm_state_dict` delete them); they were never used at test time.
STALE_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def clean_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """Strip the wrapper prefixes; keys become strings (foreign files may use ints: they then fail by name)."""
    out = {}
    for key, value in state.items():
        key = str(key)
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def drop_stale_norm_buffers(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """`state` without the running statistics of instance norms that track none in `model`."""
    untracked = {name for name, m in model.named_modules()
                 if isinstance(m, nn.modules.instancenorm._InstanceNorm) and not m.track_running_stats}
    return {key: value for key, value in state.items()
            if not (key.rpartition(".")[0] in untracked and key.rpartition(".")[2] in STALE_NORM_BUFFERS)}


def fill_num_batches_tracked(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """`state` with `num_batches_tracked` 0 for the norms of `model` that track running statistics where the file
    has their running_mean but no counter: files saved by PyTorch <= 0.4.0 (the counter came in 0.4.1; PyTorch's
    own loader fills it for them the same way). Nothing at test time reads it."""
    import torch

    filled = dict(state)
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            if f"{name}.num_batches_tracked" not in filled and f"{name}.running_mean" in filled:
                filled[f"{name}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return filled


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


def has_conv_weight(state: dict[str, Any], key: str, kernel: int | None = None) -> bool:
    """Whether `state` holds a 4-D conv weight under `key` (with a `kernel` x `kernel` kernel): how upstream
    files without names or configs are told apart."""
    tensor = state.get(key)
    return getattr(tensor, "dim", lambda: 0)() == 4 and (kernel is None or tensor.shape[-1] == kernel)
