"""pix2pix: the U-Net generator and the 70x70 PatchGAN (Isola, Zhu, Zhou, Efros, "Image-to-Image Translation
with Conditional Adversarial Networks", CVPR 2017).

Architecture and parameter names as junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` (`UnetGenerator`,
`UnetSkipConnectionBlock`, `NLayerDiscriminator`; BSD licence), written anew here from the published
architecture, not copied, so upstream `latest_net_G.pth` / `<epoch>_net_G.pth` files load with `strict=True`.

The generator nests `num_downs` blocks (netG unet_256: 8, unet_128: 7). Each block halves H and W with a 4x4
stride-2 conv, runs the inner block, doubles them back with a 4x4 stride-2 transposed conv, and (except the
outermost) returns cat([its input, that result]) -- the skip connection. Keys follow upstream's nesting: block k
is `model` + `.model.1` (the outermost's submodule) + `.model.3` (each inner block's) repeated, e.g.

    outermost  model.model.  0 Conv(input_nc -> ngf)   1 block   2 ReLU  3 ConvT(2 ngf -> output_nc, bias)  4 Tanh
    inner      ....model.    0 LeakyReLU(0.2)  1 Conv  2 norm  3 block  4 ReLU  5 ConvT  6 norm  [7 Dropout(0.5)]
    innermost  ....model.    0 LeakyReLU(0.2)  1 Conv(8 ngf -> 8 ngf)  2 ReLU  3 ConvT  4 norm

Channels from the outside in: ngf, 2 ngf, 4 ngf, then 8 ngf for the remaining `num_downs - 4` blocks; the
`num_downs - 5` blocks between the 4 ngf block and the innermost one carry the dropout (unless no_dropout).
Convs have a bias only with norm "instance" (upstream's `use_bias` rule; not with "none" either), except the
outermost transposed conv, which always has one. H and W must be multiples of 2**num_downs (256 for unet_256),
so that the innermost conv still sees at least 2x2 and every skip concatenation lines up.

Test time (upstream test.py): without --eval the generator runs in training mode -- BatchNorm normalises with
the statistics of the images in front of it, and dropout is active. `inference_generator` gives the exportable
forms: eval true = running statistics; eval false = each image normalised by its own statistics (training-mode
BatchNorm applied to each image alone: an InstanceNormalization with the BatchNorm's weight and bias), so an
image's output never depends on which other images share its batch. Dropout is off in both (upstream's
outputs without --eval are random per run; ours are deterministic).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from munit_rt.training.families.pix2pix.config import GENERATOR_KEYS, NETG_DOWNS, Pix2PixConfig
from munit_rt.training.networks import NORMS, NLayerDiscriminator, conv_bias, get_norm_layer

MIN_DOWNS = 5  # the innermost block, three channel-reducing blocks and the outermost one


def spatial_multiple(num_downs: int) -> int:
    """H and W of a U-Net input must be multiples of this (each block halves them once)."""
    return 2 ** num_downs


# ------------------------------------------------------------------------------------------- networks

class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down, `submodule`, up; the output of every block but the outermost is
    cat([x, up(...)]) along channels. Attribute names and layer order are upstream's (see the module docstring)."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "batch", use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        norm_layer, bias = get_norm_layer(norm), conv_bias(norm)
        downconv = nn.Conv2d(input_nc or outer_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        # in place, as upstream: the LeakyReLU rewrites x before the skip concatenation reads it; harmless,
        # since the enclosing block's ReLU follows (relu(leaky_relu(x)) == relu(x))
        downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, norm_layer(inner_nc), submodule, uprelu, upconv, norm_layer(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """Image [N, input_nc, H, W] in [-1, 1] -> image [N, output_nc, H, W]; H, W multiples of 2**num_downs."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = False):
        super().__init__()
        if num_downs < MIN_DOWNS:
            raise ValueError(f"a U-Net needs num_downs >= {MIN_DOWNS}, got {num_downs}")
        # plain attributes, not state: export reads the graph's channels, multiple and norm from them
        self.input_nc, self.output_nc, self.num_downs, self.norm = input_nc, output_nc, num_downs, norm
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        for outer in (4, 2, 1):  # channels shrink 8 ngf -> ngf towards the outside
            block = UnetSkipConnectionBlock(ngf * outer, ngf * outer * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             norm=norm)

    @property
    def multiple(self) -> int:
        return spatial_multiple(self.num_downs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def unet_generator(netG: str = "unet_256", input_nc: int = 3, output_nc: int = 3, ngf: int = 64,  # noqa: N803
                   norm: str = "batch", no_dropout: bool = False) -> UnetGenerator:
    """Upstream `define_G` for the U-Nets, in its option names (pix2pix default: dropout on)."""
    if netG not in NETG_DOWNS:
        raise ValueError(f"unsupported netG {netG!r} for pix2pix; expected one of {', '.join(NETG_DOWNS)}")
    if norm not in NORMS:
        raise ValueError(f"unsupported norm {norm!r}; expected one of {', '.join(NORMS)}")
    return UnetGenerator(input_nc, output_nc, NETG_DOWNS[netG], ngf, norm, use_dropout=not no_dropout)


def patch_discriminator(input_nc: int = 3, output_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                        norm: str = "batch") -> NLayerDiscriminator:
    """Upstream netD 'basic' (n_layers 3: the 70x70 PatchGAN) judging the (A, B) pair concatenated along
    channels, so it sees input_nc + output_nc channels."""
    return NLayerDiscriminator(input_nc + output_nc, ndf, n_layers, norm)


def build_generator(config: Pix2PixConfig, key: str = "G") -> UnetGenerator:
    """The generator of a config: input_nc channels in (the source domain of `direction`), output_nc out."""
    if key not in GENERATOR_KEYS:
        raise ValueError(f"unknown pix2pix generator {key!r}; expected one of {GENERATOR_KEYS}")
    return unet_generator(config.netG, config.input_nc, config.output_nc, config.ngf, config.norm,
                          config.no_dropout)


def build_discriminator(config: Pix2PixConfig) -> NLayerDiscriminator:
    return patch_discriminator(config.input_nc, config.output_nc, config.ndf, config.d_layers, config.norm)


# ------------------------------------------------------------------------------------------ test time

class PerImageBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d (same parameters, buffers and keys) that normalises each image by its own statistics:
    what training-mode BatchNorm does to a batch of one image (mean and biased variance over H x W), then the
    BatchNorm's affine. The running statistics are never read or updated. Exports as InstanceNormalization."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, None, None, self.weight, self.bias, use_input_stats=True, eps=self.eps)


def inference_generator(generator: UnetGenerator, eval_mode: bool) -> UnetGenerator:
    """A copy of `generator` as upstream test.py runs it, without dropout noise (the original is untouched).

    eval_mode True (`--eval`): running statistics. False (upstream's default): each image's own statistics.
    Norms "instance" and "none" behave the same in both modes.
    """
    model = copy.deepcopy(generator).eval().requires_grad_(False)  # eval(): dropout off
    if not eval_mode:
        for parent in list(model.modules()):
            for name, child in parent.named_children():
                if type(child) is nn.BatchNorm2d:
                    per_image = PerImageBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                                    child.track_running_stats)
                    per_image.load_state_dict(child.state_dict())
                    setattr(parent, name, per_image.eval().requires_grad_(False))
    return model


# --------------------------------------------------------------------------------- upstream state dicts

@dataclass(frozen=True)
class UnetArchitecture:
    """What a U-Net state dict reveals about its constructor arguments (dropout leaves no weights)."""

    input_nc: int
    output_nc: int
    ngf: int
    num_downs: int
    norm: str

    @property
    def netG(self) -> str:  # noqa: N802 - upstream's option name
        return f"unet_{spatial_multiple(self.num_downs)}"  # unet_128 / unet_256, upstream's naming rule


def looks_like_unet(state: dict) -> bool:
    """Is `state` an upstream UnetGenerator state dict? (A ResnetGenerator's keys are `model.<i>.…`.)"""
    return "model.model.0.weight" in state and "model.model.1.model.1.weight" in state


def block_prefixes(state: dict) -> list[str]:
    """The key prefix of each block, outermost first: model, model.model.1, model.model.1.model.3, ..."""
    prefixes, inner = ["model"], "model.model.1"
    while f"{inner}.model.1.weight" in state:  # every non-outermost block has its downconv at index 1
        prefixes.append(inner)
        inner += ".model.3"
    return prefixes


def infer_architecture(state: dict) -> UnetArchitecture:
    """ngf and input_nc from the first conv, output_nc from the last transposed conv, num_downs from the
    number of nested blocks, norm from the keys of the second block (batch: affine weights; instance: conv
    biases and no norm weights, or an old file's stale InstanceNorm buffers; none: neither)."""
    if not looks_like_unet(state):
        raise ValueError("not an upstream U-Net generator state dict (no model.model.0.weight / "
                         "model.model.1.model.1.weight)")
    first, last = state["model.model.0.weight"], state["model.model.3.weight"]
    second = "model.model.1.model"
    if f"{second}.2.weight" in state:
        norm = "batch"
    elif f"{second}.2.running_mean" in state or f"{second}.1.bias" in state:
        norm = "instance"
    else:
        norm = "none"
    return UnetArchitecture(input_nc=int(first.shape[1]), output_nc=int(last.shape[1]), ngf=int(first.shape[0]),
                            num_downs=len(block_prefixes(state)), norm=norm)
