"""The one preprocessing description of a model, and the image transforms it names.

A family builds its `Preprocess` from its training config (munit_rt.training.families); export records it in
the bundle manifest ("preprocess"); training data loading and `translate` apply it with the functions here.
This module is the shared leaf of the package: Pillow and numpy only, importing nothing else of munit_rt, so
the torch-side training code and the torch-free runtime both use it (docs: README "Architecture").

    resize "shorter_side"  shorter side to `size` (the longer one truncated, as torchvision's Resize(int)),
                           then H and W to a multiple of `multiple`: by center crop (fit "crop": MUNIT) or by
                           resizing each side to the nearest multiple (fit "round": upstream CycleGAN's
                           __make_power_2)
    resize "square"        center crop `crop_size` x `crop_size` (an image smaller than that: its largest centred
                           square), then resize to `size` x `size` (StarGAN, as upstream's CelebA loader)
    resample               the Pillow filter of every resize: "bilinear" (torchvision's Resize default, which
                           the official MUNIT and StarGAN loaders use) or "bicubic" (upstream CycleGAN)
    mean, std              x = (pixel / 255 - mean) / std per channel; outputs go back through to_pixels
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

RESIZE_MODES = ("shorter_side", "square")
RESAMPLE_FILTERS = ("bilinear", "bicubic")
FIT_MODES = ("crop", "round")


@dataclass(frozen=True)
class Preprocess:
    resize: str = "shorter_side"
    size: int = 256
    resample: str = "bilinear"
    multiple: int = 1
    fit: str = "crop"
    crop_size: int | None = None  # square: the center crop before the resize (None: none)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # recorded for reference only

    def __post_init__(self) -> None:
        problems = [f"{key} {value!r} (expected one of {', '.join(choices)})" for key, value, choices in
                    (("resize", self.resize, RESIZE_MODES), ("resample", self.resample, RESAMPLE_FILTERS),
                     ("fit", self.fit, FIT_MODES)) if value not in choices]
        if self.size < 1 or self.multiple < 1 or (self.crop_size is not None and self.crop_size < 1):
            problems.append("size, multiple and crop_size must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    def with_size(self, size: int | None) -> Preprocess:
        """The same description with another output size (`translate --size`); None keeps this one."""
        from dataclasses import replace

        return self if size is None or size == self.size else replace(self, size=int(size))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"resize": self.resize, "size": self.size, "resample": self.resample,
                                "multiple": self.multiple, "fit": self.fit}
        if self.crop_size is not None:
            data.update(crop="center", crop_size=self.crop_size)
        data.update(mean=list(self.mean), std=list(self.std), value_range=[-1.0, 1.0], **self.extra)
        return data


# ------------------------------------------------------------------------------------------- resizing

def pil_filter(resample: str):
    from PIL import Image

    return {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[resample]


def scaled_size(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    """(w, h) with the shorter side `shorter` and the longer one int(shorter * long / short), never below it."""
    w, h = size
    if w <= h:
        return shorter, max(shorter, int(shorter * h / w))
    return max(shorter, int(shorter * w / h)), shorter


def resize_shorter_side(image, size: int, resample: str):
    """torchvision `Resize(int)` on a PIL image with the named filter."""
    target = scaled_size(image.size, size)
    return image if image.size == target else image.resize(target, pil_filter(resample))


def round_to_multiple(size: int, multiple: int) -> int:
    """Upstream CycleGAN's `__make_power_2`: int(round(size / multiple) * multiple), Python's half-to-even round
    (10 -> 8, 14 -> 16 for 4), never below one multiple."""
    return max(multiple, int(round(size / multiple) * multiple))


def center_crop_square(image, crop_size: int | None):
    """The centred `crop_size` square (torchvision CenterCrop's rounding); smaller images: their largest one."""
    w, h = image.size
    crop = min(crop_size or min(w, h), w, h)
    if (crop, crop) == (w, h):
        return image
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def resize(image, prep: Preprocess):
    """The deterministic resize step of `prep` on a PIL image (no crop to the multiple yet: `fit_to_multiple`)."""
    if prep.resize == "square":
        image = center_crop_square(image, prep.crop_size)
        return image if image.size == (prep.size, prep.size) else \
            image.resize((prep.size, prep.size), pil_filter(prep.resample))
    image = resize_shorter_side(image, prep.size, prep.resample)
    if prep.fit == "round":
        target = (round_to_multiple(image.width, prep.multiple), round_to_multiple(image.height, prep.multiple))
        if image.size != target:
            image = image.resize(target, pil_filter(prep.resample))
    return image


def fit_to_multiple(pixels: np.ndarray, multiple: int) -> np.ndarray:
    """uint8 [H, W, C] center-cropped so H and W are multiples of `multiple` (at least one multiple)."""
    h, w = pixels.shape[:2]
    new_h, new_w = max(multiple, h // multiple * multiple), max(multiple, w // multiple * multiple)
    top, left = (h - new_h) // 2, (w - new_w) // 2
    return pixels[top:top + new_h, left:left + new_w]


# ------------------------------------------------------------------------------------------- values

def normalize(pixels_u8_hwc: np.ndarray, prep: Preprocess) -> np.ndarray:
    """uint8 [H, W, C] -> float32 [C, H, W] in the model's range."""
    channels = pixels_u8_hwc.shape[2]
    x = pixels_u8_hwc.astype(np.float32) / 255.0
    x = (x - np.asarray(prep.mean[:channels], np.float32)) / np.asarray(prep.std[:channels], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_pixels(output_chw: np.ndarray) -> np.ndarray:
    """Model output float [C, H, W] in [-1, 1] -> uint8 [H, W, C]: round(clip((y + 1) / 2) * 255), never rescaled."""
    y = np.clip((np.asarray(output_chw, np.float32) + 1.0) / 2.0, 0.0, 1.0) * 255.0
    return np.rint(y).astype(np.uint8).transpose(1, 2, 0)
