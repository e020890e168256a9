"""StarGAN's graph split for export: the whole generator, image and target labels in.

    generator   image [N, 3, H, W], label [N, c_dim] -> output [N, 3, H, W]   (H, W multiples of 4)

The generator tiles the label over the image's H x W itself, so the traced graph reads H and W from the image's
shape (Shape -> Expand) instead of baking in the traced size. Parity labels are random 0/1 rows that differ
between the samples of a batch, so a label tiled onto the wrong sample or a frozen batch size shows up.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from munit_rt.training.family import Checkpoint, GraphSpec, TensorSpec
from munit_rt.training.families.stargan.config import StarGanConfig
from munit_rt.training.families.stargan.model import IMAGE_CHANNELS
from munit_rt.training.graphs import EXPORT_BATCH, GENERATOR_UNIT, generator_cases, trace_size

HAIR_COLOR_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")  # upstream create_labels' one-hot group


class StarGanGraph(nn.Module):
    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.generator(image, label)


def describe_graphs(gens: dict[str, nn.Module], config: StarGanConfig, **_options: Any) -> list[GraphSpec]:
    """The one graph (export options of other families ignored)."""
    rng = torch.Generator().manual_seed(0)  # example values only steer tracing; keep the global RNG untouched
    c_dim = config.c_dim
    label = (torch.rand(EXPORT_BATCH, c_dim, generator=rng) < 0.5).float()
    image = torch.randn(EXPORT_BATCH, IMAGE_CHANNELS, *trace_size(GENERATOR_UNIT), generator=rng)
    inputs = (TensorSpec("image", ("N", IMAGE_CHANNELS, "H", "W")), TensorSpec("label", ("N", c_dim)))
    return [GraphSpec("generator", "generator", None, StarGanGraph(gens["G"]), inputs,
                      (TensorSpec("output", ("N", IMAGE_CHANNELS, "H", "W")),), (image, label),
                      partial(generator_cases, inputs, other_feeds=_label_feed), image_output=True,
                      manifest_fields={"generator": "G"})]


def _label_feed(tensor: TensorSpec, batch: int, rng: np.random.Generator) -> np.ndarray:
    if tensor.name != "label":
        raise ValueError(f"no parity feed for input '{tensor.name}'")
    return distinct_binary_labels(rng, batch, tensor.shape[1])


def distinct_binary_labels(rng: np.random.Generator, batch: int, c_dim: int) -> np.ndarray:
    """[batch, c_dim] float32 0/1 rows, pairwise different where 2**c_dim allows."""
    labels = rng.integers(0, 2, (batch, c_dim)).astype(np.float32)
    k = min(c_dim, 16)  # the first k columns: distinct codes
    codes = np.resize(rng.choice(2**k, size=min(batch, 2**k), replace=False), batch)
    labels[:, :k] = (codes[:, None] >> np.arange(k)[None, :]) & 1
    return labels


def manifest_model(ckpt: Checkpoint, gens: dict[str, nn.Module], graphs: dict[str, dict]) -> dict[str, Any]:
    """StarGAN's manifest keys: the image channels and the label vector's layout."""
    return {"channels": IMAGE_CHANNELS, "labels": stargan_labels(ckpt.config)}


def stargan_labels(config: StarGanConfig) -> dict:
    """The manifest's `labels`: the label vector's layout: dataset 1's attributes, then (two datasets) dataset 2's
    and a 2-way mask."""
    first, second = list(config.selected_attrs), list(config.selected_attrs_2)
    layout = [{"name": "dataset_1", "offset": 0, "length": len(first), "attrs": first}]
    if second:
        layout += [{"name": "dataset_2", "offset": len(first), "length": len(second), "attrs": second},
                   {"name": "mask", "offset": config.cls_dim, "length": 2, "attrs": ["dataset_1", "dataset_2"]}]
    return {
        "c_dim": config.c_dim,
        "dtype": "float32",
        "values": [0.0, 1.0],
        "num_datasets": config.num_datasets,
        "selected_attrs": first,
        "selected_attrs_2": second,
        "layout": layout,
        "hair_color_attrs": [name for name in first if name in HAIR_COLOR_ATTRS],
        "hair_color_attrs_2": [name for name in second if name in HAIR_COLOR_ATTRS],
    }
