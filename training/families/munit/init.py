"""Weight initialisation and learning-rate schedules, with the official NVlabs/MUNIT `utils.py` semantics."""
from __future__ import annotations

import math
from typing import Callable

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import StepLR

from munit_rt.training.families.munit.config import MunitConfig


def weights_init(init_type: str = "gaussian") -> Callable[[nn.Module], None]:
    """Return a function for `module.apply` that re-initialises conv and linear layers.

    As the official code: only modules whose class name *starts with* "Conv" or "Linear" and that own a
    `weight` (so nn.Conv2d / nn.Linear, not our Conv2dBlock / LinearBlock wrappers); biases are zeroed
    for every init type, 'default' included.
    """
    if init_type not in ("gaussian", "xavier", "kaiming", "orthogonal", "default"):
        raise ValueError(f"unsupported init {init_type!r}")

    def init_module(module: nn.Module) -> None:
        name = type(module).__name__
        if not (name.startswith(("Conv", "Linear")) and getattr(module, "weight", None) is not None):
            return
        weight = module.weight.data
        if init_type == "gaussian":
            nn.init.normal_(weight, 0.0, 0.02)
        elif init_type == "xavier":
            nn.init.xavier_normal_(weight, gain=math.sqrt(2))
        elif init_type == "kaiming":
            nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
        elif init_type == "orthogonal":
            nn.init.orthogonal_(weight, gain=math.sqrt(2))
        if getattr(module, "bias", None) is not None:
            nn.init.constant_(module.bias.data, 0.0)

    return init_module


def make_scheduler(optimizer: Optimizer, config: MunitConfig) -> StepLR | None:
    """'step': multiply the LR by `gamma` every `step_size` iterations; 'constant': no scheduler.

    Stepped once per iteration *after* the optimizer (PyTorch >= 1.1 order), so iteration i (0-based)
    trains with lr * gamma ** (i // step_size). The official code stepped first, one iteration earlier.
    """
    if config.lr_policy == "constant":
        return None
    return StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
