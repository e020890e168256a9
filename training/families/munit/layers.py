"""MUNIT's building blocks (config strings pick the padding, norm and activation).

Attribute names (`conv`, `norm`, `activation`, `pad`, `fc`, `model`, `gamma`, `beta`) follow the
official NVlabs/MUNIT code because they are the state-dict keys of published checkpoints.

Unlike the official blocks, AdaIN parameters are passed explicitly through `forward` instead of being
assigned to module attributes, so one decoder serves a batch of different styles and traces to ONNX
as it is.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PAD_TYPES = ("reflect", "replicate", "zero")
NORMS = ("none", "bn", "in", "ln", "adain")
ACTIVATIONS = ("relu", "lrelu", "prelu", "selu", "tanh", "none")


def get_pad(pad_type: str, padding: int) -> nn.Module:
    table = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": nn.ZeroPad2d}
    if pad_type not in table:
        raise ValueError(f"unsupported pad_type {pad_type!r}; expected one of {PAD_TYPES}")
    return table[pad_type](padding)


def get_activation(name: str) -> nn.Module | None:
    table = {
        "relu": lambda: nn.ReLU(inplace=True),
        "lrelu": lambda: nn.LeakyReLU(0.2, inplace=True),
        "prelu": nn.PReLU,
        "selu": lambda: nn.SELU(inplace=True),
        "tanh": nn.Tanh,
        "none": lambda: None,
    }
    if name not in table:
        raise ValueError(f"unsupported activation {name!r}; expected one of {ACTIVATIONS}")
    return table[name]()


def get_norm(name: str, channels: int, dims: int = 2) -> nn.Module | None:
    """Normalisation layer by config string (dims=1 for linear blocks)."""
    if name == "bn":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if name == "in":
        # PyTorch >= 0.4 default: no affine, no running stats (what official checkpoints were trained with).
        return nn.InstanceNorm2d(channels) if dims == 2 else nn.InstanceNorm1d(channels)
    if name == "ln":
        return LayerNorm(channels)
    if name == "adain":
        return AdaptiveInstanceNorm2d(channels)
    if name == "none":
        return None
    raise ValueError(f"unsupported norm {name!r}; expected one of {NORMS}")


class AdaptiveInstanceNorm2d(nn.Module):
    """Instance normalisation (biased variance) followed by a per-sample, per-channel affine.

    `params` is [N, 2C]: the first C values are the shifts (official "mean", used as bias), the next C the
    scales (official "std", used as weight). The two buffers exist only because official checkpoints
    carry them; they are never used.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    @property
    def num_params(self) -> int:
        return 2 * self.num_features

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        c = self.num_features
        shift = params[:, :c].unsqueeze(-1).unsqueeze(-1)
        scale = params[:, c : 2 * c].unsqueeze(-1).unsqueeze(-1)
        return F.instance_norm(x, eps=self.eps) * scale + shift

    def extra_repr(self) -> str:
        return str(self.num_features)


class LayerNorm(nn.Module):
    """Official MUNIT LayerNorm: per sample over C*H*W, *unbiased* std, (x - mean) / (std + eps).

    Written per sample for any batch size; the official code's batch-1 branch computes the same
    numbers but freezes under tracing.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.affine = affine
        if affine:
            self.gamma = nn.Parameter(torch.empty(num_features).uniform_())
            self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        mean = flat.mean(1)
        centered = flat - mean.unsqueeze(1)
        # unbiased variance spelled out so every exporter sees the same arithmetic
        var = (centered * centered).sum(1) / (flat.shape[1] - 1)
        std = var.sqrt()
        stat_shape = [-1] + [1] * (x.dim() - 1)
        x = (x - mean.view(stat_shape)) / (std.view(stat_shape) + self.eps)
        if self.affine:
            affine_shape = [1, -1] + [1] * (x.dim() - 2)
            x = x * self.gamma.view(affine_shape) + self.beta.view(affine_shape)
        return x


def half_with_fp32_layernorms(module: nn.Module) -> nn.Module:
    """`module` in FP16 for the PyTorch backend, its LayerNorms kept FP32 as in the exported FP16 graphs
    (export/fp16.py): their sum of squares over C*H*W overflows FP16 at ordinary activation sizes. Inputs are
    cast to FP32 on the way in and the output back to FP16."""
    module = module.half()
    for layer in module.modules():
        if isinstance(layer, LayerNorm):
            layer.float()
            layer.register_forward_pre_hook(lambda _, args: tuple(a.float() for a in args))
            layer.register_forward_hook(lambda _, args, out: out.half())
    return module


def norm_activation(block: nn.Module, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
    """What follows a block's conv or linear layer, in the official order: its norm (AdaIN with `adain_params`),
    then its activation, each where the block has one (None)."""
    if isinstance(block.norm, AdaptiveInstanceNorm2d):
        x = block.norm(x, adain_params)
    elif block.norm is not None:
        x = block.norm(x)
    return block.activation(x) if block.activation is not None else x


class Conv2dBlock(nn.Module):
    """pad -> conv -> norm -> activation (official order and names)."""

    def __init__(self, input_dim: int, output_dim: int, kernel_size: int, stride: int, padding: int = 0,
                 norm: str = "none", activation: str = "relu", pad_type: str = "zero"):
        super().__init__()
        self.pad = get_pad(pad_type, padding)
        self.norm = get_norm(norm, output_dim)
        self.activation = get_activation(activation)
        self.conv = nn.Conv2d(input_dim, output_dim, kernel_size, stride, bias=True)

    @property
    def num_adain_params(self) -> int:
        return self.norm.num_params if isinstance(self.norm, AdaptiveInstanceNorm2d) else 0

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        return norm_activation(self, self.conv(self.pad(x)), adain_params)


class LinearBlock(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, norm: str = "none", activation: str = "relu"):
        super().__init__()
        self.fc = nn.Linear(input_dim, output_dim, bias=True)
        self.norm = get_norm(norm, output_dim, dims=1)
        self.activation = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return norm_activation(self, self.fc(x))


class ResBlock(nn.Module):
    """Two 3x3 conv blocks and an identity shortcut; the second block has no activation."""

    def __init__(self, dim: int, norm: str = "in", activation: str = "relu", pad_type: str = "zero"):
        super().__init__()
        self.model = nn.Sequential(
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation=activation, pad_type=pad_type),
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation="none", pad_type=pad_type),
        )

    @property
    def num_adain_params(self) -> int:
        return sum(block.num_adain_params for block in self.model)

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        out = x
        offset = 0
        for block in self.model:
            n = block.num_adain_params
            out = block(out, adain_params[:, offset : offset + n] if n else None)
            offset += n
        return out + x


class ResBlocks(nn.Module):
    def __init__(self, num_blocks: int, dim: int, norm: str = "in", activation: str = "relu",
                 pad_type: str = "zero"):
        super().__init__()
        self.model = nn.Sequential(
            *[ResBlock(dim, norm=norm, activation=activation, pad_type=pad_type) for _ in range(num_blocks)]
        )

    @property
    def num_adain_params(self) -> int:
        return sum(block.num_adain_params for block in self.model)

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        offset = 0
        for block in self.model:
            n = block.num_adain_params
            x = block(x, adain_params[:, offset : offset + n] if n else None)
            offset += n
        return x


class MLP(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, dim: int, n_blk: int, norm: str = "none",
                 activ: str = "relu"):
        super().__init__()
        blocks = [LinearBlock(input_dim, dim, norm=norm, activation=activ)]
        blocks += [LinearBlock(dim, dim, norm=norm, activation=activ) for _ in range(n_blk - 2)]
        blocks += [LinearBlock(dim, output_dim, norm="none", activation="none")]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], -1))
