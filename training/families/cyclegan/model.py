"""CycleGAN (Zhu, Park, Isola, Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017).

Architecture and parameter names as junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` (BSD
licence; written anew here, not copied), so upstream `latest_net_G_A.pth` files load with `strict=True`.
Every layer sits in one `nn.Sequential` named `model`, in upstream's order (9 blocks, ngf 64):

    model.0   ReflectionPad2d(3)      model.1  Conv 7x7 (ngf)   model.2  norm   model.3  ReLU
    model.4-6 Conv 3x3 s2 (2 ngf) + norm + ReLU     model.7-9  Conv 3x3 s2 (4 ngf) + norm + ReLU
    model.10 .. model.(10 + n_blocks - 1)  ResnetBlock, keys `model.10.conv_block.{1,5}.weight`
    then ConvTranspose 3x3 s2 (2 ngf) + norm + ReLU, ConvTranspose (ngf) + norm + ReLU,
    ReflectionPad2d(3), Conv 7x7 (output_nc), Tanh    (9 blocks: model.19, model.22, model.26)

Norm "instance" is InstanceNorm2d without affine or running statistics, so convolutions carry a bias;
with "batch" they do not (upstream's `use_bias` rule). The generator keeps the size of inputs that are
multiples of 4; upstream's test-time preprocessing ('none') resizes other sizes to the nearest multiple
of 4 with bicubic resampling (`round_to_multiple`).
"""
from __future__ import annotations

import torch
from torch import nn

from munit_rt.training.families.cyclegan.config import GENERATOR_KEYS, CycleGanConfig
from munit_rt.training.networks import NLayerDiscriminator, conv_bias, get_norm_layer

N_DOWNSAMPLING = 2  # fixed in upstream's ResnetGenerator


def round_to_multiple(size: int, base: int = 4) -> int:
    """Upstream `__make_power_2`: `int(round(size / base) * base)`, with Python's half-to-even `round`
    (10 -> 8, 14 -> 16, 18 -> 16). Sizes that would round to 0 are refused."""
    rounded = int(round(size / base) * base)
    if rounded <= 0:
        raise ValueError(f"size {size} rounds to {rounded}; images must be at least {base // 2 + 1} pixels")
    return rounded


class ResnetBlock(nn.Module):
    """x + conv_block(x); conv_block = pad, conv3x3, norm, ReLU, [Dropout(0.5)], pad, conv3x3, norm."""

    def __init__(self, dim: int, norm: str, use_dropout: bool):
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Image [N, input_nc, H, W] in [-1, 1] -> image [N, output_nc, H, W] (H, W multiples of 4)."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "instance",
                 use_dropout: bool = False, n_blocks: int = 9):
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), norm_layer(ngf),
                                   nn.ReLU(True)]
        for i in range(N_DOWNSAMPLING):
            channels = ngf * 2**i
            layers += [nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=bias),
                       norm_layer(2 * channels), nn.ReLU(True)]
        channels = ngf * 2**N_DOWNSAMPLING
        layers += [ResnetBlock(channels, norm, use_dropout) for _ in range(n_blocks)]
        for _ in range(N_DOWNSAMPLING):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       norm_layer(channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ------------------------------------------------------------------------------------------ builders

def generator_channels(config: CycleGanConfig, key: str) -> tuple[int, int]:
    """(input, output) channels of G_A (A -> B) or G_B (B -> A)."""
    return (config.input_nc, config.output_nc) if key == "G_A" else (config.output_nc, config.input_nc)


def build_generator(config: CycleGanConfig, key: str = "G_A") -> ResnetGenerator:
    if key not in GENERATOR_KEYS:
        raise ValueError(f"unknown CycleGAN generator {key!r}; expected one of {GENERATOR_KEYS}")
    channels_in, channels_out = generator_channels(config, key)
    return ResnetGenerator(channels_in, channels_out, config.ngf, config.norm, config.use_dropout,
                           config.n_blocks)


def build_discriminator(config: CycleGanConfig, key: str = "D_A") -> NLayerDiscriminator:
    """D_A judges domain B (the output of G_A), D_B judges domain A, as upstream."""
    channels = config.output_nc if key == "D_A" else config.input_nc
    return NLayerDiscriminator(channels, config.ndf, config.n_layers_D, config.norm)


def infer_architecture(state: dict) -> dict:
    """What an upstream-layout generator state dict reveals about its constructor arguments."""
    import re

    top = {int(m.group(1)): key for key in state if (m := re.fullmatch(r"model\.(\d+)\.weight", key))}
    blocks = {int(m.group(1)) for key in state if (m := re.fullmatch(r"model\.(\d+)\.conv_block\.1\.weight", key))}
    first, last = state["model.1.weight"], state[top[max(top)]]
    norm = "batch" if "model.2.running_mean" in state and "model.2.weight" in state else (
        "instance" if "model.1.bias" in state else "none")
    return {"input_nc": first.shape[1], "output_nc": last.shape[0], "ngf": first.shape[0], "n_blocks": len(blocks),
            "norm": norm, "use_dropout": any(key.endswith("conv_block.6.weight") for key in state)}
