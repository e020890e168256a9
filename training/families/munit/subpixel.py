"""Export-time rewrite of MUNIT's decoder upsampling into an exactly equivalent, cheaper form.

Each `uk` stage is nearest x2 upsample -> pad 2 -> 5x5 conv. Every output pixel of phase (py, px) (its row and
column parity) sees only a 3x3 window of the low-resolution input, so the stage equals four 3x3 convolutions on
the low-resolution tensor, interleaved by DepthToSpace: 4 * 9 = 36 multiply-adds per output quad instead of
4 * 25 = 100, the same result up to float rounding (the 5 taps are summed into 3 before the multiply).

Zero and replicate padding commute with nearest upsampling, so padding the low-resolution input the same way is
exact everywhere. Reflect padding does not: the outermost output row and column on each side see a mirrored
neighbour (`x1 x0 x0 x0 x1`) that no low-resolution padding gives, so those four one-pixel lines are recomputed
with the original 5x5 kernel (about 1/H of the stage's work each) and put in place of the approximations.

The last stage and the 7x7 output conv after it stay on the low-resolution grid (PhaseOutputStage), which skips
the widest DepthToSpace and the slow 3-channel conv. The training modules are left untouched: `SubpixelDecoder`
is a new module sharing their parameters, and export checks it against the unmodified decoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from munit_rt.training.families.munit.layers import Conv2dBlock, norm_activation

# 1D tap merges: output phase p of a nearest-x2 upsample followed by a 5-tap filter reads low-res rows
# m-1, m, m+1 with these sums of the 5 taps (p=0: rows 2m-2..2m+2 are x[m-1] x[m-1] x[m] x[m] x[m+1]).
_PHASE_TAPS = (
    ((0, 1), (2, 3), (4,)),  # p = 0
    ((0,), (1, 2), (3, 4)),  # p = 1
)
_LOW_RES_PAD = {nn.ZeroPad2d: "constant", nn.ReplicationPad2d: "replicate", nn.ReflectionPad2d: "reflect"}


def phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """[Cout, Cin, 5, 5] kernel -> [4*Cout, Cin, 3, 3], channel c*4 + py*2 + px (DepthToSpace CRD order)."""
    merge = torch.zeros(2, 3, 5, dtype=weight.dtype)
    for phase, groups in enumerate(_PHASE_TAPS):
        for row, taps in enumerate(groups):
            merge[phase, row, list(taps)] = 1.0
    # K[py, px] = M[py] @ W @ M[px]^T for every (Cout, Cin) pair
    kernels = torch.einsum("yak,oikl,xbl->oyxiab", merge, weight, merge)
    return kernels.reshape(weight.shape[0] * 4, weight.shape[1], 3, 3)


class SubpixelUpsampleConv(nn.Module):
    """nn.Upsample(x2, nearest) followed by a 5x5, pad-2, stride-1 Conv2dBlock, on the low-resolution grid."""

    def __init__(self, block: Conv2dBlock):
        super().__init__()
        conv = block.conv
        self.mode = _LOW_RES_PAD[type(block.pad)]
        weight, bias = conv.weight.detach(), conv.bias.detach()
        self.register_buffer("weight", weight.clone())  # original kernel: reflect border strips
        self.register_buffer("bias", bias.clone())
        self.register_buffer("phase_weight", phase_weights(weight))
        self.register_buffer("phase_bias", bias.repeat_interleave(4))
        self.norm, self.activation = block.norm, block.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_shuffle(self.phases(x), 2)
        if self.mode == "reflect":
            left, right, top, bottom = self.border_lines(x)
            y = torch.cat([left, y[..., 1:-1], right], dim=3)  # columns first, then rows: both exact
            y = torch.cat([top, y[..., 1:-1, :], bottom], dim=2)
        return norm_activation(self, y)

    def phases(self, x: torch.Tensor) -> torch.Tensor:
        """[N, Cin, H, W] -> [N, 4*Cout, H, W], channel c*4 + py*2 + px; exact except reflect borders."""
        low = F.pad(x, (1, 1, 1, 1), mode="replicate" if self.mode == "reflect" else self.mode)
        return F.conv2d(low, self.phase_weight, self.phase_bias)

    def border_lines(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Exact outermost output columns [N, C, 2H, 1] (left, right) and rows [N, C, 1, 2W] (top, bottom)."""
        return (self._strip(3, x[..., 1:2], x[..., 0:1]), self._strip(3, x[..., -2:-1], x[..., -1:]),
                self._strip(2, x[..., 1:2, :], x[..., 0:1, :]), self._strip(2, x[..., -2:-1, :], x[..., -1:, :]))

    def _strip(self, dim: int, inner: torch.Tensor, outer: torch.Tensor) -> torch.Tensor:
        """One outermost output line: the 5 upsampled-and-reflected lines it reads are `x1 x0 x0 x0 x1`."""
        lines = torch.cat([inner, outer, outer, outer, inner], dim=dim)
        scale = (1.0, 2.0) if dim == 2 else (2.0, 1.0)
        lines = F.interpolate(lines, scale_factor=scale, mode="nearest")
        pad = (2, 2, 0, 0) if dim == 2 else (0, 0, 2, 2)
        return F.conv2d(F.pad(lines, pad, mode="reflect"), self.weight, self.bias)


def output_weights(weight: torch.Tensor) -> torch.Tensor:
    """Kernel [O, C, k, k] (k = 2p+1) of a stride-1 conv on a full-resolution map -> the same conv on the map's
    phase stack: [4*O, 4*C, 2P+1, 2P+1] with P = (p+1)//2, in channel c*4 + py*2 + px, out o*4 + qy*2 + qx."""
    p = weight.shape[-1] // 2
    big = (p + 1) // 2
    # select[q, phase, d, k] = 1 where the low-res tap d of input phase `phase` is full-res tap k for output q
    select = torch.zeros(2, 2, 2 * big + 1, 2 * p + 1, dtype=weight.dtype)
    for q in range(2):
        for phase in range(2):
            for d in range(-big, big + 1):
                offset = 2 * d + phase - q
                if -p <= offset <= p:
                    select[q, phase, d + big, offset + p] = 1.0
    kernels = torch.einsum("yadk,xbel,ockl->oyxcabde", select, select, weight)
    o, c = weight.shape[:2]
    return kernels.reshape(o * 4, c * 4, 2 * big + 1, 2 * big + 1)


class PhaseOutputStage(nn.Module):
    """The last upsample stage and the output conv, never leaving the low-resolution grid.

    The upsample conv's phase stack [N, 4C, H, W] *is* its full-resolution output with pixels regrouped
    (DepthToSpace only moves them), and channel-wise normalisation and activations do not care how pixels
    are grouped; so the output conv runs on the phase stack too (`output_weights`), padded phase by phase as
    the full-resolution map would be, and only its small [N, 4*O, H, W] result is interleaved. That skips the
    DepthToSpace of the widest tensor and turns a 3-channel 7x7 conv (slow on CPUs: channels are computed in
    blocks of 8) into a 12-channel one.
    """

    def __init__(self, upsample_block: Conv2dBlock, output_block: Conv2dBlock):
        super().__init__()
        self.up = SubpixelUpsampleConv(upsample_block)
        conv = output_block.conv
        self.mode = _LOW_RES_PAD[type(output_block.pad)]
        self.pad = conv.kernel_size[0] // 2
        self.register_buffer("output_weight", output_weights(conv.weight.detach()))
        self.register_buffer("output_bias", conv.bias.detach().repeat_interleave(4))
        self.norm, self.activation = output_block.norm, output_block.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        stack = self.up.phases(x)
        stack = stack.reshape(n, -1, 2, 2, h, w)  # [N, C, py, px, H, W]
        if self.up.mode == "reflect":
            stack = self._fix_borders(stack, *self.up.border_lines(x))
        channels = stack.shape[1]
        # [N, C, 4H, W] groups each channel's pixels together, as norms over (H, W) or (C, H, W) need
        stack = norm_activation(self.up, stack.reshape(n, channels, 4 * h, w)).reshape(n, channels, 2, 2, h, w)
        stack = self._pad_phases(stack).reshape(n, channels * 4, h + 2 * ((self.pad + 1) // 2), -1)
        y = F.pixel_shuffle(F.conv2d(stack, self.output_weight, self.output_bias), 2)
        return norm_activation(self, y)

    @staticmethod
    def _fix_borders(stack, left, right, top, bottom) -> torch.Tensor:
        """Put the exact outermost full-resolution lines into the phase stack (full-res column 0 is phase
        px=0 of low column 0, the last column phase px=1 of the last low column; rows likewise)."""
        n, c, _, _, h, w = stack.shape

        def as_phases(line: torch.Tensor, dim: int) -> torch.Tensor:  # [N, C, 2H, 1] -> [N, C, 2, H, 1]
            return line.reshape(n, c, h, 2, 1).permute(0, 1, 3, 2, 4) if dim == 5 else \
                line.reshape(n, c, 1, w, 2).permute(0, 1, 4, 2, 3)

        first = torch.stack([as_phases(left, 5), stack[:, :, :, 1, :, :1]], dim=3)
        last = torch.stack([stack[:, :, :, 0, :, -1:], as_phases(right, 5)], dim=3)
        stack = torch.cat([first, stack[..., 1:-1], last], dim=5)
        first = torch.stack([as_phases(top, 4), stack[:, :, 1, :, :1, :]], dim=2)
        last = torch.stack([stack[:, :, 0, :, -1:, :], as_phases(bottom, 4)], dim=2)
        return torch.cat([first, stack[..., 1:-1, :], last], dim=4)

    def _pad_phases(self, stack: torch.Tensor) -> torch.Tensor:
        """The full-resolution map padded by p (reflect/replicate/zero), as a phase stack padded by P."""
        big = (self.pad + 1) // 2
        if self.mode == "constant":
            return F.pad(stack, (big, big, big, big))
        for phase_dim, dim in ((2, 4), (3, 5)):  # rows, then columns (corners come out padded both ways)
            before = [self._pad_line(stack, phase_dim, dim, 2 * r) for r in range(-big, 0)]
            after = [self._pad_line(stack, phase_dim, dim, 2 * r, from_end=True) for r in range(big)]
            stack = torch.cat([*before, stack, *after], dim=dim)
        return stack

    def _pad_line(self, stack: torch.Tensor, phase_dim: int, dim: int, first: int, from_end: bool = False):
        """Padding line holding full-res lines `first`, `first + 1` (counted past the end when from_end)."""
        phases = []
        for offset in (first, first + 1):
            # lines beyond the pad width get zero weight in output_weights: any real line will do
            offset = max(offset, -self.pad) if not from_end else min(offset, self.pad - 1)
            source = _pad_source(offset, self.mode, from_end)  # full-res index, negative = from the end
            index, phase = source // 2, source % 2
            line = stack.narrow(phase_dim, phase, 1)
            line = line[(slice(None),) * dim + (slice(index, index + 1 if index != -1 else None),)]
            phases.append(line)
        return torch.cat(phases, dim=phase_dim)


def _pad_source(offset: int, mode: str, from_end: bool) -> int:
    """Full-res line a padding line copies: before the start, offset -1, -2, ...; past the end 0, 1, ...
    (returned as a negative index from the end)."""
    if mode == "reflect":
        return -2 - offset if from_end else -offset
    return -1 if from_end else 0  # replicate


def is_upsample_stage(upsample: nn.Module, block: nn.Module) -> bool:
    return (isinstance(upsample, nn.Upsample) and upsample.mode == "nearest" and upsample.scale_factor in (2, 2.0)
            and _is_plain_conv(block) and block.conv.kernel_size == (5, 5)
            and tuple(block.pad.padding) == (2, 2, 2, 2))


def is_output_conv(block: nn.Module) -> bool:
    """A stride-1 odd square conv padded by half its size: can run on a phase stack (PhaseOutputStage)."""
    if not _is_plain_conv(block):
        return False
    k = block.conv.kernel_size
    return k[0] == k[1] and k[0] % 2 == 1 and tuple(block.pad.padding) == (k[0] // 2,) * 4


def _is_plain_conv(block: nn.Module) -> bool:
    conv = getattr(block, "conv", None)
    return (isinstance(block, Conv2dBlock) and type(block.pad) in _LOW_RES_PAD and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is not None)


class SubpixelDecoder(nn.Module):
    """A MUNIT Decoder with its upsample stages (and the output conv after the last) rewritten; same I/O."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        layers = list(decoder.model)
        self.res = layers[0]
        rewritten, index = [], 1
        while index < len(layers):
            if index + 1 < len(layers) and is_upsample_stage(layers[index], layers[index + 1]):
                if index + 3 == len(layers) and is_output_conv(layers[index + 2]):
                    rewritten.append(PhaseOutputStage(layers[index + 1], layers[index + 2]))
                    index += 3
                    continue
                rewritten.append(SubpixelUpsampleConv(layers[index + 1]))
                index += 2
            else:
                rewritten.append(layers[index])
                index += 1
        self.rest = nn.Sequential(*rewritten)

    def forward(self, content: torch.Tensor, adain_params: torch.Tensor) -> torch.Tensor:
        return self.rest(self.res(content, adain_params))
