"""Finding input images, reading them as the bundle's preprocessing says, and converting outputs to pixels.

Preprocessing (docs/bundle-format.md "preprocess"): EXIF orientation applied, alpha composited on white,
converted to the domain's channels, shorter side scaled to `size` (bicubic; the longer side truncated as
torchvision's `Resize(size)` does, which the official test script uses), then a center crop down to a
multiple of `multiple`, then x = (pixel/255 - mean) / std.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from munit_rt.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class InputImage:
    path: Path
    relpath: str  # POSIX path relative to the folder it was found in (a single file: its name)


@dataclass(frozen=True)
class Preprocess:
    size: int
    multiple: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_bundle(cls, preprocess: dict[str, Any], channels: int, size: int | None = None) -> Preprocess:
        multiple = int(preprocess.get("multiple", 1))
        size = int(size or preprocess["size"])
        if size < multiple:
            raise InputError(f"--size {size} is smaller than the model's spatial multiple {multiple}")
        if preprocess.get("resize", "shorter_side") != "shorter_side" or preprocess.get("resample", "bicubic") != "bicubic":
            raise InputError(f"preprocess {preprocess.get('resize')}/{preprocess.get('resample')} is not supported; "
                             "expected shorter_side/bicubic")
        mean = tuple(float(v) for v in preprocess.get("mean", [0.5] * 3))[:channels]
        std = tuple(float(v) for v in preprocess.get("std", [0.5] * 3))[:channels]
        return cls(size, multiple, channels, mean, std)


def find_images(inputs: list[Path], recursive: bool = False, exclude: list[Path] = ()) -> list[InputImage]:
    """Image files among `inputs` (files and folders), sorted per folder; `exclude`d folders never enter."""
    excluded = [p.resolve() for p in exclude]
    found: list[InputImage] = []
    for given in inputs:
        if given.is_file():
            found.append(InputImage(given, given.name))
            continue
        if not given.is_dir():
            raise InputError(f"input {given}: no such file or folder")
        candidates = given.rglob("*") if recursive else given.iterdir()
        for path in sorted(candidates):
            if (path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
                    and not path.name.startswith(".")  # our own temporary files, hidden files
                    and not any(path.resolve().is_relative_to(root) for root in excluded)):
                found.append(InputImage(path, path.relative_to(given).as_posix()))
    return found


def read_image(path: Path, prep: Preprocess) -> np.ndarray:
    """An image file -> preprocessed uint8 [H, W, C] (the pixels the model sees, before normalising)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        if image.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when that still covers the target size
            image.draft(None, _scaled_size(image.size, prep.size))
        image = ImageOps.exif_transpose(image)
        image = _to_channels(image, prep.channels)
        target = _scaled_size(image.size, prep.size)
        if image.size != target:
            image = image.resize(target, Image.Resampling.BICUBIC)
        pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return center_crop_to_multiple(pixels, prep.multiple)


def _scaled_size(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    w, h = size
    if w <= h:
        return shorter, max(shorter, int(shorter * h / w))
    return max(shorter, int(shorter * w / h)), shorter


def _to_channels(image, channels: int):
    from PIL import Image

    if image.mode.startswith("I;16"):  # 16-bit greyscale PNG/TIFF: keep the top 8 bits
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB" if channels == 3 else "L")


def center_crop_to_multiple(pixels: np.ndarray, multiple: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    new_h, new_w = max(multiple, h // multiple * multiple), max(multiple, w // multiple * multiple)
    top, left = (h - new_h) // 2, (w - new_w) // 2
    return pixels[top:top + new_h, left:left + new_w]


def normalize(pixels_u8_hwc: np.ndarray, prep: Preprocess) -> np.ndarray:
    """uint8 [H, W, C] -> float32 [C, H, W] in the model's range."""
    x = pixels_u8_hwc.astype(np.float32) / 255.0
    x = (x - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_pixels(output_chw: np.ndarray) -> np.ndarray:
    """Model output float [C, H, W] in [-1, 1] -> uint8 [H, W, C]: round(clip((y + 1) / 2) * 255), never rescaled."""
    y = np.clip((np.asarray(output_chw, np.float32) + 1.0) / 2.0, 0.0, 1.0) * 255.0
    return np.rint(y).astype(np.uint8).transpose(1, 2, 0)
