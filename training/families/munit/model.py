"""MUNIT (Huang, Liu, Belongie, Kautz, "Multimodal Unsupervised Image-to-Image Translation", ECCV 2018).

Architecture and parameter names as the official NVlabs/MUNIT `networks.py` (CC BY-NC-SA 4.0; written
anew here, not copied), so official `gen_*.pt` / `dis_*.pt` files load with `strict=True`:

    content encoder  c7s1-dim, n_downsample x d(2x), n_res x R          (instance norm)
    style encoder    c7s1-dim, d(2x), d(2x), 2 x d(same), GAP, 1x1 conv (no norm)
    MLP              style_dim -> mlp_dim -> mlp_dim -> number of AdaIN parameters
    decoder          n_res x AdaIN R, n_downsample x (up x2, c5s1 + LayerNorm), c7s1 + tanh
    discriminator    multi-scale PatchGAN, 3x3 stride-2 average pooling between scales

The decoder takes the AdaIN parameters as an argument: `decode(content, adain_params)`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from munit_rt.training.families.munit.config import DisConfig, GenConfig, MunitConfig
from munit_rt.training.families.munit.layers import MLP, AdaptiveInstanceNorm2d, Conv2dBlock, ResBlocks

STYLE_ENCODER_DOWNSAMPLES = 4  # fixed in the official AdaINGen


class StyleEncoder(nn.Module):
    def __init__(self, n_downsample: int, input_dim: int, dim: int, style_dim: int, norm: str, activ: str,
                 pad_type: str):
        super().__init__()
        layers = [Conv2dBlock(input_dim, dim, 7, 1, 3, norm=norm, activation=activ, pad_type=pad_type)]
        for _ in range(2):
            layers.append(Conv2dBlock(dim, 2 * dim, 4, 2, 1, norm=norm, activation=activ, pad_type=pad_type))
            dim *= 2
        for _ in range(n_downsample - 2):
            layers.append(Conv2dBlock(dim, dim, 4, 2, 1, norm=norm, activation=activ, pad_type=pad_type))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1, 1, 0)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> style codes [N, style_dim, 1, 1] (official shape)."""
        return self.model(x)


class ContentEncoder(nn.Module):
    def __init__(self, n_downsample: int, n_res: int, input_dim: int, dim: int, norm: str, activ: str,
                 pad_type: str):
        super().__init__()
        layers = [Conv2dBlock(input_dim, dim, 7, 1, 3, norm=norm, activation=activ, pad_type=pad_type)]
        for _ in range(n_downsample):
            layers.append(Conv2dBlock(dim, 2 * dim, 4, 2, 1, norm=norm, activation=activ, pad_type=pad_type))
            dim *= 2
        layers.append(ResBlocks(n_res, dim, norm=norm, activation=activ, pad_type=pad_type))
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, n_upsample: int, n_res: int, dim: int, output_dim: int, res_norm: str = "adain",
                 activ: str = "relu", pad_type: str = "zero"):
        super().__init__()
        layers: list[nn.Module] = [ResBlocks(n_res, dim, res_norm, activ, pad_type=pad_type)]
        for _ in range(n_upsample):
            layers += [
                nn.Upsample(scale_factor=2),
                Conv2dBlock(dim, dim // 2, 5, 1, 2, norm="ln", activation=activ, pad_type=pad_type),
            ]
            dim //= 2
        layers.append(Conv2dBlock(dim, output_dim, 7, 1, 3, norm="none", activation="tanh", pad_type=pad_type))
        self.model = nn.Sequential(*layers)

    @property
    def num_adain_params(self) -> int:
        return self.model[0].num_adain_params

    def forward(self, content: torch.Tensor, adain_params: torch.Tensor) -> torch.Tensor:
        x = self.model[0](content, adain_params)
        for layer in self.model[1:]:
            x = layer(x)
        return x


class AdaINGen(nn.Module):
    """One MUNIT domain: style encoder, content encoder, MLP and AdaIN decoder."""

    def __init__(self, input_dim: int, params: GenConfig):
        super().__init__()
        self.enc_style = StyleEncoder(STYLE_ENCODER_DOWNSAMPLES, input_dim, params.dim, params.style_dim,
                                      norm="none", activ=params.activ, pad_type=params.pad_type)
        self.enc_content = ContentEncoder(params.n_downsample, params.n_res, input_dim, params.dim, "in",
                                          params.activ, pad_type=params.pad_type)
        self.dec = Decoder(params.n_downsample, params.n_res, self.enc_content.output_dim, input_dim,
                           res_norm="adain", activ=params.activ, pad_type=params.pad_type)
        self.mlp = MLP(params.style_dim, self.dec.num_adain_params, params.mlp_dim, 3, norm="none",
                       activ=params.activ)
        self.style_dim = params.style_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        content, style = self.encode(images)
        return self.decode(content, style)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc_content(images), self.enc_style(images)

    def style_to_adain(self, style: torch.Tensor) -> torch.Tensor:
        return self.mlp(style)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.dec(content, self.mlp(style))

    def adain_layout(self) -> list[dict]:
        """AdaIN layers in module order, as the official `assign_adain_params` consumes the vector: where each
        layer's parameters sit in it, as the manifest's `adain.layers` records them (name, channels, shift_offset,
        scale_offset; the runtime reads them as munit_rt.families.munit.AdainLayer)."""
        layout, offset = [], 0
        for name, module in self.dec.named_modules():
            if isinstance(module, AdaptiveInstanceNorm2d):
                c = module.num_features
                layout.append({"name": f"dec.{name}", "channels": c, "shift_offset": offset,
                               "scale_offset": offset + c})
                offset += 2 * c
        return layout


def build_generator(config: MunitConfig, key: str) -> AdaINGen:
    """The generator of domain `key` ("a" or "b")."""
    return AdaINGen(config.input_dim(key), config.gen)


class MsImageDis(nn.Module):
    """Multi-scale discriminator with LSGAN / NSGAN losses."""

    def __init__(self, input_dim: int, params: DisConfig):
        super().__init__()
        self.params = params
        self.input_dim = input_dim
        self.downsample = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
        self.cnns = nn.ModuleList([self._make_net() for _ in range(params.num_scales)])

    def _make_net(self) -> nn.Sequential:
        p, dim = self.params, self.params.dim
        layers = [Conv2dBlock(self.input_dim, dim, 4, 2, 1, norm="none", activation=p.activ, pad_type=p.pad_type)]
        for _ in range(p.n_layer - 1):
            layers.append(Conv2dBlock(dim, dim * 2, 4, 2, 1, norm=p.norm, activation=p.activ, pad_type=p.pad_type))
            dim *= 2
        layers.append(nn.Conv2d(dim, 1, 1, 1, 0))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for model in self.cnns:
            outputs.append(model(x))
            x = self.downsample(x)
        return outputs

    def calc_dis_loss(self, input_fake: torch.Tensor, input_real: torch.Tensor) -> torch.Tensor:
        loss = input_fake.new_zeros(())
        for out0, out1 in zip(self.forward(input_fake), self.forward(input_real)):
            if self.params.gan_type == "lsgan":
                loss = loss + torch.mean(out0**2) + torch.mean((out1 - 1) ** 2)
            else:  # nsgan
                loss = loss + torch.mean(
                    F.binary_cross_entropy_with_logits(out0, torch.zeros_like(out0))
                    + F.binary_cross_entropy_with_logits(out1, torch.ones_like(out1))
                )
        return loss

    def calc_gen_loss(self, input_fake: torch.Tensor) -> torch.Tensor:
        loss = input_fake.new_zeros(())
        for out0 in self.forward(input_fake):
            if self.params.gan_type == "lsgan":
                loss = loss + torch.mean((out0 - 1) ** 2)
            else:
                loss = loss + torch.mean(F.binary_cross_entropy_with_logits(out0, torch.ones_like(out0)))
        return loss
