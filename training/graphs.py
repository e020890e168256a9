"""What every family's graph split shares: trace inputs and the parity cases export checks each graph on.

Tracing: example inputs at batch 2 (a size-1 trace can bake the batch into reshapes) and at a non-square size
that no parity case uses, so a size frozen by the exporter cannot hide. Parity: batch 1 and 3, at a square and a
non-square size, all multiples of the graph's spatial multiple; feeds are drawn from the numpy generator export
seeds per graph (export/parity.py), so the same graph always gets the same feeds.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from munit_rt.training.family import ParityCase, TensorSpec

EXPORT_BATCH = 2
BATCH_SIZES = (1, 3)
GENERATOR_MULTIPLE = 4  # CycleGAN's and StarGAN's generators halve H and W twice and double them back
GENERATOR_UNIT = 16  # their parity and trace sizes are multiples of this (32x32, 48x40; traced at 32x48)


def trace_size(unit: int) -> tuple[int, int]:
    """(H, W) the graphs are traced at: non-square, and no parity size."""
    return 2 * unit, 3 * unit


def parity_resolutions(unit: int, multiple: int) -> list[tuple[int, int]]:
    """A square and a non-square (H, W), both multiples of `multiple`."""
    return [(2 * unit, 2 * unit), (3 * unit, max(multiple, round(2.5 * unit / multiple) * multiple))]


def uniform(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def normal(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def generator_cases(inputs: tuple[TensorSpec, ...], rng: np.random.Generator,
                    other_feeds: Callable[[TensorSpec, int, np.random.Generator], np.ndarray] | None = None,
                    ) -> list[ParityCase]:
    """Cases of a whole-generator graph (`image` [N, C, H, W] in [-1, 1], then any other input from
    `other_feeds(tensor, batch, rng)`, e.g. StarGAN's labels) at the generator parity sizes."""
    cases = []
    for batch in BATCH_SIZES:
        for height, width in parity_resolutions(GENERATOR_UNIT, GENERATOR_MULTIPLE):
            feeds = {}
            for tensor in inputs:
                if tensor.name == "image":
                    feeds["image"] = uniform(rng, (batch, tensor.shape[1], height, width))
                elif other_feeds is not None:
                    feeds[tensor.name] = other_feeds(tensor, batch, rng)
                else:
                    raise ValueError(f"no parity feed for input '{tensor.name}'")
            cases.append(ParityCase(batch, feeds, height, width))
    return cases
