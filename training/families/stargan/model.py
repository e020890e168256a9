"""StarGAN (Choi, Choi, Kim, Ha, Kim, Choo, "StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation", CVPR 2018).

Architecture and parameter names as yunjey/stargan `model.py` (MIT licence; written anew here, not copied),
so upstream `200000-G.ckpt` files load with `strict=True`. The generator is one `nn.Sequential` named `main`:

    main.0  Conv 7x7 s1 p3 (3 + c_dim -> conv_dim, no bias)   main.1  InstanceNorm   main.2  ReLU
    main.3-5, main.6-8   Conv 4x4 s2 p1 (x2 channels, no bias) + InstanceNorm + ReLU
    main.9 .. main.(9 + repeat_num - 1)  ResidualBlock: keys `main.9.main.{0,1,3,4}.*`
    then 2 x (ConvTranspose 4x4 s2 p1, no bias + InstanceNorm + ReLU), Conv 7x7 s1 p3 (-> 3, no bias), Tanh

The label vector c [N, c_dim] is tiled over the image and concatenated as extra input channels.

Instance norms: upstream builds them with `affine=True, track_running_stats=True`, so its files hold
running statistics, but its test code never calls `eval()`: the published results were computed with
per-image statistics. `InputStatsInstanceNorm2d` keeps the buffers (strict loading, identical files) and
always normalises with the statistics of the image itself, so outputs match upstream in every mode.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from munit_rt.training.families.stargan.config import GENERATOR_KEYS, StarGanConfig

IMAGE_CHANNELS = 3  # upstream's generator and discriminator are RGB-only


class InputStatsInstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm2d that always uses per-image statistics.

    In training mode the running statistics are still updated, as upstream's train-mode layers do, so a
    file written here has the same contents upstream would write; they are never used for normalising.
    """

    def __init__(self, num_features: int):
        super().__init__(num_features, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.training and self.track_running_stats
        return F.instance_norm(x, self.running_mean if update else None, self.running_var if update else None,
                               self.weight, self.bias, use_input_stats=True,
                               momentum=self.momentum if update else 0.0, eps=self.eps)


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, stride=1, padding=1, bias=False), InputStatsInstanceNorm2d(dim), nn.ReLU(True),
            nn.Conv2d(dim, dim, 3, stride=1, padding=1, bias=False), InputStatsInstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


def tile_labels(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] images and [N, c_dim] labels -> [N, 3 + c_dim, H, W] (each label a constant plane)."""
    planes = labels.view(labels.size(0), labels.size(1), 1, 1).expand(-1, -1, images.size(2), images.size(3))
    return torch.cat([images, planes.to(images.dtype)], dim=1)


class Generator(nn.Module):
    """(image [N, 3, H, W] in [-1, 1], label [N, c_dim]) -> image [N, 3, H, W]; H, W multiples of 4."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6):
        super().__init__()
        self.c_dim = c_dim
        layers: list[nn.Module] = [nn.Conv2d(IMAGE_CHANNELS + c_dim, conv_dim, 7, stride=1, padding=3, bias=False),
                                   InputStatsInstanceNorm2d(conv_dim), nn.ReLU(True)]
        dim = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(dim, 2 * dim, 4, stride=2, padding=1, bias=False),
                       InputStatsInstanceNorm2d(2 * dim), nn.ReLU(True)]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, stride=2, padding=1, bias=False),
                       InputStatsInstanceNorm2d(dim // 2), nn.ReLU(True)]
            dim //= 2
        layers += [nn.Conv2d(dim, IMAGE_CHANNELS, 7, stride=1, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.main(tile_labels(x, c))


class Discriminator(nn.Module):
    """PatchGAN critic with an auxiliary classifier: x -> (source map [N, 1, h, w], class logits [N, c_dim])."""

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(IMAGE_CHANNELS, conv_dim, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, 2 * dim, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, 3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, c_dim, image_size // 2**repeat_num, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.conv1(h), self.conv2(h).view(x.size(0), -1)


# ------------------------------------------------------------------------------------------ builders

def build_generator(config: StarGanConfig, key: str = "G") -> Generator:
    if key not in GENERATOR_KEYS:
        raise ValueError(f"unknown StarGAN generator {key!r}; expected 'G'")
    return Generator(config.g_conv_dim, config.c_dim, config.g_repeat_num)


def build_discriminator(config: StarGanConfig) -> Discriminator:
    """The classifier covers every attribute of every dataset (no mask entries)."""
    return Discriminator(config.image_size, config.d_conv_dim, config.cls_dim, config.d_repeat_num)


def infer_architecture(state: dict) -> dict:
    """What an upstream-layout generator state dict reveals about its constructor arguments."""
    import re

    first = state["main.0.weight"]
    blocks = {int(m.group(1)) for key in state if (m := re.fullmatch(r"main\.(\d+)\.main\.0\.weight", key))}
    return {"conv_dim": first.shape[0], "c_dim": first.shape[1] - IMAGE_CHANNELS, "repeat_num": len(blocks)}
