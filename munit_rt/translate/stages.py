"""The stages of translating one input, shared by the local and the Ray engine: read + preprocess, infer
(the family's plan over a batch), write its outputs atomically."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from munit_rt.io.outputs import OutputLayout, encode_image, make_grid, write_atomic
from munit_rt.io.images import Decoded, decode_input
from munit_rt.preprocess import Preprocess, normalize, to_pixels


def read_input(path: Path, prep: Preprocess, channels: int) -> tuple[Decoded, np.ndarray, float]:
    """(the decoded input: pixels the model sees as uint8 [H, W, C], file size, notes; the model's float input
    [C, H, W]; seconds)."""
    started = time.perf_counter()
    decoded = decode_input(path, prep, channels)
    return decoded, normalize(decoded.pixels, prep), time.perf_counter() - started


def write_outputs(layout: OutputLayout, relpath: str, input_pixels: np.ndarray, outputs: np.ndarray) \
        -> tuple[int, float]:
    """All files of one input: its S outputs (and the contact sheet). Returns (files written, seconds)."""
    started = time.perf_counter()
    pixels = [to_pixels(y) for y in outputs]
    for path, image in zip(layout.style_paths(relpath), pixels):
        write_atomic(path, encode_image(image, layout.image_format))
    if layout.grid:
        write_atomic(layout.grid_path(relpath), encode_image(make_grid(input_pixels, pixels), "png"))
    return len(pixels) + int(layout.grid), time.perf_counter() - started
