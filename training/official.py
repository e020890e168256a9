"""Official-checkpoint import: key fixes as pure functions, then a strict load that names every problem."""
from __future__ import annotations

from typing import Any

from torch import nn

from training.errors import CheckpointError

# PyTorch 0.3 InstanceNorm2d tracked running statistics; 0.4 dropped them. Official MUNIT files trained
# on 0.3 carry these buffers for every instance-norm layer (the official `pytorch03_to_pytorch04` deletes
# them); they were never used at test time.
_STALE_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def clean_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """Strip wrappers that other tools add: DDP's `module.` and torch.compile's `_orig_mod.`."""
    out = {}
    for key, value in state.items():
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
