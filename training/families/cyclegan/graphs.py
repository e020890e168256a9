"""CycleGAN's graph split for export: one graph per generator the checkpoint holds, the whole generator.

    generator_a2b / generator_b2a   image [N, C, H, W] -> output [N, C', H, W]   (G_A / G_B; H, W multiples of 4)
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from munit_rt.training.family import Checkpoint, GraphSpec, TensorSpec
from munit_rt.training.families.cyclegan.config import CycleGanConfig
from munit_rt.training.families.cyclegan.model import generator_channels
from munit_rt.training.graphs import EXPORT_BATCH, GENERATOR_UNIT, generator_cases, trace_size

DIRECTIONS = {"G_A": ("a2b", "a", "b"), "G_B": ("b2a", "b", "a")}  # key -> (direction, source, target)


class CycleGanGraph(nn.Module):
    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.generator(image)


def describe_graphs(gens: dict[str, nn.Module], config: CycleGanConfig, **_options: Any) -> list[GraphSpec]:
    """a2b first; only the generators the checkpoint holds (export options of other families ignored)."""
    rng = torch.Generator().manual_seed(0)  # example values only steer tracing; keep the global RNG untouched
    specs = []
    for key in DIRECTIONS:
        if key not in gens:
            continue
        direction, source, target = DIRECTIONS[key]
        channels_in, channels_out = generator_channels(config, key)
        inputs = (TensorSpec("image", ("N", channels_in, "H", "W")),)
        specs.append(GraphSpec(
            f"generator_{direction}", "generator", None, CycleGanGraph(gens[key]), inputs,
            (TensorSpec("output", ("N", channels_out, "H", "W")),),
            (torch.randn(EXPORT_BATCH, channels_in, *trace_size(GENERATOR_UNIT), generator=rng),),
            partial(generator_cases, inputs), image_output=True,
            manifest_fields={"direction": direction, "source_domain": source, "target_domain": target,
                             "generator": key}))
    if not specs:
        raise ValueError(f"no CycleGAN generator to export (expected G_A and/or G_B, got {', '.join(gens)})")
    return specs


def manifest_model(ckpt: Checkpoint, gens: dict[str, nn.Module], graphs: dict[str, dict]) -> dict[str, Any]:
    """CycleGAN's manifest keys: the domains' channels, and which graph and generator translate each way."""
    config = ckpt.config
    return {"domains": {"a": {"channels": config.input_nc}, "b": {"channels": config.output_nc}},
            "directions": {graph["direction"]: {"graph": name, "generator": graph["generator"],
                                                "source_domain": graph["source_domain"],
                                                "target_domain": graph["target_domain"]}
                           for name, graph in graphs.items()}}
