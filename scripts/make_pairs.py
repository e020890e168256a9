"""Turn a folder of photos into aligned edges|photo pairs for pix2pix (upstream's `aligned` dataset layout).

    python scripts/make_pairs.py ../shared/data/utkface/trainA -o runs/edges2faces --size 256

Each photo becomes one PNG of size 2*SIZE x SIZE: A on the left (the photo's edges, black lines on white), B on
the right (the photo: its largest centred square resized to SIZE x SIZE, bicubic, as munit-rt translate
prepares pix2pix inputs). They are written to OUT/train, OUT/val and OUT/test, split at random with --seed
(--val and --test are fractions), the layout upstream's `--dataset_mode aligned` and `munit-rt train` read;
train with --direction AtoB to draw photos from edges (edges2faces, like upstream's edges2shoes).

The edges are Canny-like and deterministic (numpy only): grey (ITU-R 601 luma), Gaussian blur (sigma 1),
Sobel gradient magnitude, non-maximum suppression along the gradient, then a double threshold with hysteresis.
The thresholds adapt to each photo (high: the --edge-percentile of the gradient magnitude; low: 0.4 x high),
so faces of any contrast give lines of similar density. Inputs munit-rt cannot read are skipped with the
reason; the source folder is only read (keep OUT outside the repository: runs/ is ignored by git).
With --halves, each split's A and B halves are written alone too, to OUT/<split>A and OUT/<split>B (edges to
translate with a trained model, and the photos to compare with).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from munit_rt.errors import InputError
from munit_rt.io.images import find_images, read_image
from munit_rt.preprocess import Preprocess

SPLITS = ("train", "val", "test")
LOW_RATIO = 0.4        # low threshold = LOW_RATIO x high (Canny's usual 1:2 to 1:3)
MIN_HIGH = 40.0        # Sobel magnitude (a 255 step gives 1020): flat photos get no noise lines
BLUR_SIGMA = 1.0


# --------------------------------------------------------------------------------------------- edges

def _filter_rows_cols(image: np.ndarray, kernel_rows: np.ndarray, kernel_cols: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation with edge-replicating borders (the kernels are odd-sized)."""
    r = len(kernel_rows) // 2
    padded = np.pad(image, r, mode="edge")
    h, w = image.shape
    rows = sum(k * padded[i:i + h, :] for i, k in enumerate(kernel_rows))          # along H
    return sum(k * rows[:, j:j + w] for j, k in enumerate(kernel_cols))            # along W


def gaussian_kernel(sigma: float) -> np.ndarray:
    x = np.arange(-int(np.ceil(2 * sigma)), int(np.ceil(2 * sigma)) + 1, dtype=np.float64)
    kernel = np.exp(-x**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def non_maximum_suppression(magnitude: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Magnitude where it is a maximum along the gradient direction (quantised to 0, 45, 90, 135 degrees)."""
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    sector = (np.floor((angle + 22.5) / 45.0).astype(int)) % 4
    padded = np.pad(magnitude, 1)
    h, w = magnitude.shape

    def shifted(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    # (dy, dx) of the neighbour along the gradient; y grows downwards, so 45 degrees points down-right
    offsets = [((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, 0), (-1, 0)), ((1, -1), (-1, 1))]
    keep = np.zeros_like(magnitude, dtype=bool)
    for index, (ahead, behind) in enumerate(offsets):
        local = (magnitude >= shifted(*ahead)) & (magnitude >= shifted(*behind))
        keep |= (sector == index) & local
    return np.where(keep, magnitude, 0.0)


def hysteresis(thin: np.ndarray, low: float, high: float) -> np.ndarray:
    """Pixels >= high, plus those >= low connected to them through 8-neighbours >= low."""
    weak = thin >= low
    edges = thin >= high
    while True:
        padded = np.pad(edges, 1)
        h, w = edges.shape
        grown = np.zeros_like(edges)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        grown &= weak
        if (grown == edges).all():
            return edges
        edges = grown


def edge_map(photo_u8_hwc: np.ndarray, percentile: float = 90.0) -> np.ndarray:
    """uint8 [H, W, 3] photo -> uint8 [H, W, 3] edges: 0 on edges, 255 elsewhere."""
    rgb = photo_u8_hwc.astype(np.float64)
    grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    gauss = gaussian_kernel(BLUR_SIGMA)
    smooth = _filter_rows_cols(grey, gauss, gauss)
    gx = _filter_rows_cols(smooth, np.array([1.0, 2.0, 1.0]), np.array([-1.0, 0.0, 1.0]))
    gy = _filter_rows_cols(smooth, np.array([-1.0, 0.0, 1.0]), np.array([1.0, 2.0, 1.0]))
    magnitude = np.hypot(gx, gy)
    thin = non_maximum_suppression(magnitude, gx, gy)
    high = max(float(np.percentile(magnitude, percentile)), MIN_HIGH)
    edges = hysteresis(thin, LOW_RATIO * high, high)
    lines = np.where(edges, 0, 255).astype(np.uint8)
    return np.repeat(lines[..., None], 3, axis=2)


def make_pair(photo_u8_hwc: np.ndarray, percentile: float = 90.0) -> np.ndarray:
    """A|B side by side: uint8 [H, 2W, 3], edges left, photo right (upstream's aligned layout)."""
    return np.concatenate([edge_map(photo_u8_hwc, percentile), photo_u8_hwc], axis=1)


# ---------------------------------------------------------------------------------------------- split

def split_of(count: int, val: float, test: float, seed: int) -> list[str]:
    """The split of each of `count` photos (in order): a seeded shuffle, test first, then val, then train."""
    order = np.random.default_rng(seed).permutation(count)
    n_test, n_val = int(round(count * test)), int(round(count * val))
    splits = [""] * count
    for rank, index in enumerate(order):
        splits[index] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return splits


def make_pairs(source: Path, out: Path, size: int = 256, val: float = 0.05, test: float = 0.05, seed: int = 0,
               percentile: float = 90.0, halves: bool = False) -> dict[str, int]:
    """Write the pairs of every photo under `source` (and with `halves` each half alone); returns the number
    written per split."""
    photos = find_images([source])
    prep = Preprocess(resize="square", size=size, resample="bicubic")
    counts = dict.fromkeys(SPLITS, 0)
    written: set[str] = set()
    for photo, split in zip(photos, split_of(len(photos), val, test, seed)):
        name = Path(photo.relpath).with_suffix(".png").name
        if name in written:
            print(f"skipped {photo.relpath}: another photo already wrote {name}", file=sys.stderr)
            continue
        try:
            pixels = read_image(photo.path, prep, 3)
        except InputError as exc:
            print(f"skipped {photo.relpath}: {exc}", file=sys.stderr)
            continue
        pair = make_pair(pixels, percentile)
        images = {split: pair}
        if halves:
            images.update({f"{split}A": pair[:, :size], f"{split}B": pair[:, size:]})
        for folder, image in images.items():
            (out / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(out / folder / name)
        written.add(name)
        counts[split] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder of photos (read only)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="writes OUT/train, OUT/val, OUT/test")
    parser.add_argument("--size", type=int, default=256, help="side of A and of B in pixels (default 256)")
    parser.add_argument("--val", type=float, default=0.05, help="fraction of photos for val (default 0.05)")
    parser.add_argument("--test", type=float, default=0.05, help="fraction of photos for test (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--edge-percentile", type=float, default=90.0,
                        help="high threshold: this percentile of the gradient magnitude (default 90)")
    parser.add_argument("--halves", action="store_true",
                        help="also write the A and B halves alone, to OUT/<split>A and OUT/<split>B")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"{args.source}: not a folder")
    if args.size < 2 or not (0 <= args.val and 0 <= args.test and args.val + args.test <= 1):
        parser.error("--size must be >= 2; --val and --test fractions >= 0 that add up to at most 1")
    counts = make_pairs(args.source, args.out, args.size, args.val, args.test, args.seed, args.edge_percentile,
                        args.halves)
    print(", ".join(f"{split}: {n}" for split, n in counts.items()) + f" pairs in {args.out}")
    return 0 if sum(counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
