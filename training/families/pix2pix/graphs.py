"""The export graph split of pix2pix: one graph, the whole U-Net as upstream test.py runs it.

    generator   image [N, input_nc, H, W] -> output [N, output_nc, H, W]      H, W multiples of 2**num_downs

(256 for unet_256, 128 for unet_128: each of the num_downs blocks halves H and W.) The bundle records the
test mode as upstream's option `eval`: true runs BatchNorm on its running statistics (test.py --eval); false,
upstream's default, normalises each image by its own statistics. Upstream's default also keeps dropout active;
the exported graph has no dropout in either mode (deterministic outputs), and the parity reference for eval
false is upstream's own training-mode BatchNorm run on each image alone (`TrainModeReference`), so the
InstanceNormalization rewrite is checked against the module it replaces, not against itself.

Parity cases: batch 1 and 3 at the smallest valid sizes, m x m and m x 2m (m the multiple); tracing at
2m x m (batch 2), which no case uses, so a size frozen into the graph cannot hide.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from munit_rt.training.families.pix2pix.config import GENERATOR_KEYS, Pix2PixConfig
from munit_rt.training.families.pix2pix.model import UnetGenerator, inference_generator, spatial_multiple
from munit_rt.training.family import Checkpoint, GraphSpec, ParityCase, TensorSpec
from munit_rt.training.graphs import BATCH_SIZES, EXPORT_BATCH

GRAPH = "generator"
GENERATOR_KEY = GENERATOR_KEYS[0]                        # upstream's latest_net_G.pth
DIRECTIONS = {"AtoB": ("a", "b"), "BtoA": ("b", "a")}    # upstream --direction -> (source, target) domain


class TrainModeReference(nn.Module):
    """Upstream test.py without --eval, dropout disabled, each image alone: the generator's own BatchNorm in
    training mode on a batch of one. Holds a copy whose BatchNorm momentum is 0, so its running statistics
    stay as loaded; `eval()` / `train()` never change that (export may call either on a reference)."""

    def __init__(self, generator: UnetGenerator):
        super().__init__()
        self.generator = copy.deepcopy(generator).requires_grad_(False)
        for module in self.generator.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        self.train()

    def train(self, mode: bool = True) -> TrainModeReference:
        super().train(mode)
        for module in self.generator.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.train()  # statistics of the batch in front of it: one image
            elif isinstance(module, nn.Dropout):
                module.eval()   # no dropout noise
        return self

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.generator(image[i:i + 1]) for i in range(image.shape[0])])


def parity_sizes(num_downs: int) -> list[tuple[int, int]]:
    """(H, W) of the parity cases: the smallest square and the smallest non-square size the U-Net takes."""
    m = spatial_multiple(num_downs)
    return [(m, m), (m, 2 * m)]


def trace_size(num_downs: int) -> tuple[int, int]:
    m = spatial_multiple(num_downs)
    return 2 * m, m


def parity_images(rng: np.random.Generator, batch: int, channels: int, height: int, width: int) -> np.ndarray:
    """Uniform noise in [-1, 1] with a contrast and brightness per image, so that the statistics of a batch and
    those of each image in it differ (a graph mixing images in its normalisation fails the eval false check)."""
    images = rng.uniform(-1.0, 1.0, (batch, channels, height, width))
    scale = rng.uniform(0.3, 1.0, (batch, 1, 1, 1))
    offset = rng.uniform(-0.5, 0.5, (batch, 1, 1, 1))
    return np.clip(images * scale + offset, -1.0, 1.0).astype(np.float32)


def generator_graph(generator: UnetGenerator, *, eval_mode: bool, direction: str = "AtoB") -> GraphSpec:
    """The generator graph of one U-Net; `eval_mode` is upstream's `eval`, `direction` its training --direction
    (recorded only: the generator maps its input_nc channels to output_nc either way)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
    input_nc, output_nc, num_downs = generator.input_nc, generator.output_nc, generator.num_downs

    def cases(rng: np.random.Generator) -> list[ParityCase]:
        return [ParityCase(batch, {"image": parity_images(rng, batch, input_nc, height, width)}, height, width)
                for batch in BATCH_SIZES for height, width in parity_sizes(num_downs)]

    example = torch.randn(EXPORT_BATCH, input_nc, *trace_size(num_downs), generator=torch.Generator().manual_seed(0))
    return GraphSpec(
        GRAPH, "generator", None, inference_generator(generator, eval_mode),
        (TensorSpec("image", ("N", input_nc, "H", "W")),), (TensorSpec("output", ("N", output_nc, "H", "W")),),
        (example,), cases, image_output=True,
        manifest_fields={"generator": GENERATOR_KEY, "direction": direction},
        reference=None if eval_mode else TrainModeReference(generator))


def describe_graphs(gens: dict[str, nn.Module], config: Pix2PixConfig, **_options: Any) -> list[GraphSpec]:
    """What `TrainingFamily.graphs` returns for a pix2pix checkpoint: {"G": UnetGenerator} -> one graph, in the
    config's test mode (`eval`) and direction (export options of other families ignored)."""
    if GENERATOR_KEY not in gens:
        raise ValueError(f"no pix2pix generator to export (expected {GENERATOR_KEY}, got {', '.join(gens) or 'none'})")
    return [generator_graph(gens[GENERATOR_KEY], eval_mode=config.eval, direction=config.direction)]


def manifest_keys(generator: UnetGenerator, *, eval_mode: bool, direction: str) -> dict:
    """The family's own manifest keys (read by munit_rt.families.pix2pix): domain channels (the source domain
    is the generator's input), the training direction, and how the generator was exported."""
    source, target = DIRECTIONS[direction]
    channels = {source: generator.input_nc, target: generator.output_nc}
    return {"domains": {domain: {"channels": channels[domain]} for domain in ("a", "b")},
            "direction": direction,
            "generator": {"graph": GRAPH, "netG": f"unet_{spatial_multiple(generator.num_downs)}",
                          "num_downs": generator.num_downs, "norm": generator.norm, "eval": eval_mode}}


def manifest_model(ckpt: Checkpoint, gens: dict[str, nn.Module], graphs: dict[str, dict]) -> dict[str, Any]:
    return manifest_keys(gens[GENERATOR_KEY], eval_mode=ckpt.config.eval, direction=ckpt.config.direction)
