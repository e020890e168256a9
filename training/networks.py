"""The parts of junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` (BSD licence; written anew here, not
copied) that more than one family trains with: one definition, imported by each family's package, owned by none.

    get_norm_layer(norm)      upstream's norm table: "instance" (no affine, no running stats), "batch" (affine,
                              tracked), "none"
    conv_bias(norm)           upstream's `use_bias` rule: convolutions carry a bias only with instance norm
    init_weights(net, ...)    upstream's `init_weights` (normal / xavier / kaiming / orthogonal, gain 0.02)
    NLayerDiscriminator       the PatchGAN (`netD basic` = n_layers 3: every output sees a 70x70 patch)
    gan_loss(pred, real, mode)  upstream's `GANLoss` for "lsgan" (MSE) and "vanilla" (BCE with logits)
    linear_decay_rule(n, d)   upstream's `lr_policy linear`: constant for n epochs, then linearly to 0 over d
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn import init

from munit_rt.training.family import Schedule

NORMS = ("instance", "batch", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
GAN_MODES = ("lsgan", "vanilla")


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Upstream `get_norm_layer`: 'instance' (no affine, no running stats), 'batch' (affine, tracked)."""
    if norm == "instance":
        return lambda channels: nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return lambda channels: nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unsupported norm {norm!r}; expected instance, batch or none")


def conv_bias(norm: str) -> bool:
    """Upstream sets `use_bias` only for instance norm (batch norm has its own shift; 'none' too, oddly)."""
    return norm == "instance"


class NLayerDiscriminator(nn.Module):
    """PatchGAN: n_layers stride-2 4x4 convs (channels x2 up to 8 ndf), one stride-1 conv, a 1-channel map.
    With n_layers 3 every output value sees a 70x70 patch. Keys as upstream: `model.0.weight`, ..."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * previous, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(module: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """Upstream `init_weights`: conv/linear weights by `init_type` (biases 0); batch-norm weights N(1, gain)."""

    def init_one(m: nn.Module) -> None:
        name = type(m).__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                init.orthogonal_(m.weight, gain=gain)
            else:
                raise ValueError(f"unsupported init_type {init_type!r}")
            if getattr(m, "bias", None) is not None:
                init.constant_(m.bias, 0.0)
        elif "BatchNorm2d" in name:
            init.normal_(m.weight, 1.0, gain)
            init.constant_(m.bias, 0.0)

    module.apply(init_one)


def gan_loss(prediction: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """Upstream `GANLoss`: LSGAN is MSE to 1 / 0; 'vanilla' is BCE with logits."""
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    return F.binary_cross_entropy_with_logits(prediction, target)


def linear_decay_rule(n_epochs: int, n_epochs_decay: int) -> Callable[[int], float]:
    """Upstream `lambda_rule` (epoch_count 1): the LR factor of 0-based epoch `epoch` for LambdaLR; epoch
    n_epochs + k trains with 1 - k / (n_epochs_decay + 1)."""
    return lambda epoch: 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def epoch_schedule(config: Any, train_size: int, name: str, world_size: int) -> Schedule:
    """Where upstream's linear policy ends: n_epochs + n_epochs_decay epochs of `train_size` items in steps of
    batch_size x world_size (the LR is 0 after them)."""
    from munit_rt.training.engine.batches import EpochBatchSampler

    per_epoch = len(EpochBatchSampler(train_size, config.batch_size, config.seed, name, 0, world_size))
    epochs = config.n_epochs + config.n_epochs_decay
    return Schedule(per_epoch * epochs, f"n_epochs {config.n_epochs} + n_epochs_decay {config.n_epochs_decay} = "
                    f"{epochs} epochs of {per_epoch} iterations", "raise n_epochs (constant LR) or n_epochs_decay "
                    "(the LR falling to 0) in the config")
