"""pix2pix's paired data, as upstream's `data/aligned_dataset.py` loads it: DATA/train holds one image per pair,
A on the left half and B on the right (scripts/make_pairs.py writes this layout); DATA/test, else DATA/val, gives
the sample grids (searched recursively).

Training items (upstream `resize_and_crop`): each half resized to load_size x load_size (bicubic), then the SAME
random crop_size crop and the same random flip for A and B, so the pair stays aligned. A half is grey when its
domain has 1 channel. With direction BtoA, A's half has output_nc channels and B's input_nc (the generator always
maps input_nc -> output_nc), as upstream's loader does.

The bundle's preprocessing (`preprocess`): the largest centred square of a photo, resized to crop_size x
crop_size (bicubic), H and W multiples of 2**num_downs. Upstream's test resizes the whole image to crop_size x
crop_size, its aspect ratio not kept; on upstream's square datasets (facades, edges2shoes, maps) both give the
same pixels, and on other photos cropping keeps shapes undistorted.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from munit_rt.preprocess import Preprocess, pil_filter
from munit_rt.training.data import check_batch_fits, check_images, data_root, find_images, load_image, to_tensor
from munit_rt.training.errors import DataError
from munit_rt.training.families.pix2pix.config import Pix2PixConfig

DISPLAY_SPLITS = ("test", "val")  # the first that exists gives the sample grids


def preprocess(config: Pix2PixConfig) -> Preprocess:
    """The bundle's description (see the module docstring), size crop_size; load_size is recorded too (not
    crop_size under its own name: with resize "square" that key is a centre crop before the resize)."""
    channels = max(config.input_nc, config.output_nc)
    return Preprocess(resize="square", size=config.crop_size, resample="bicubic", multiple=2**config.num_downs,
                      fit="crop", mean=(0.5,) * channels, std=(0.5,) * channels,
                      extra={"load_size": config.load_size})


def half_channels(config: Pix2PixConfig) -> dict[str, int]:
    """Channels of the A (left) and B (right) halves of a pair image."""
    source, target = config.input_nc, config.output_nc
    return {"A": source, "B": target} if config.direction == "AtoB" else {"A": target, "B": source}


class AlignedDataset(Dataset):
    """Item (index, epoch) -> (A, B), both [C, crop_size, crop_size] in [-1, 1]; the random crop and flip follow
    (seed, name, epoch, index), so a resumed run sees the same items whatever num_workers is."""

    def __init__(self, paths: list[Path], config: Pix2PixConfig, name: str):
        self.paths, self.config, self.name = paths, config, name
        self.channels = half_channels(config)
        self.resample = pil_filter(preprocess(config).resample)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        return self.load(index, random.Random(f"{self.config.seed}/{self.name}/{epoch}/{index}"))

    def load(self, index: int, rng: random.Random | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair of `index`: a random crop and flip (upstream `get_params`), or the centre (rng None)."""
        cfg = self.config
        pair = load_image(self.paths[index], 3)
        half = pair.width // 2
        halves = {"A": pair.crop((0, 0, half, pair.height)), "B": pair.crop((half, 0, pair.width, pair.height))}
        span = cfg.load_size - cfg.crop_size
        if rng is None:
            left = top = span // 2
            flip = False
        else:
            left, top = rng.randint(0, span), rng.randint(0, span)
            flip = not cfg.no_flip and rng.random() > 0.5
        out = []
        for side in ("A", "B"):
            img = halves[side].convert("L") if self.channels[side] == 1 else halves[side]
            img = img.resize((cfg.load_size, cfg.load_size), self.resample)
            img = img.crop((left, top, left + cfg.crop_size, top + cfg.crop_size))
            out.append(to_tensor(img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img))
        return out[0], out[1]

    def display(self, count: int) -> dict[str, torch.Tensor]:
        pairs = [self.load(index, None) for index in range(min(count, len(self)))]
        return {"A": torch.stack([a for a, _ in pairs]), "B": torch.stack([b for _, b in pairs])}


def open_training_data(config: Pix2PixConfig, data_dir, world_size: int = 1,
                       config_dir: Path | None = None) -> tuple[AlignedDataset, AlignedDataset]:
    """(train, display) datasets from DATA/train (display: DATA/test, else DATA/val, else train); `data_dir`
    (--data) replaces data_root, which counts from the current folder as upstream's (`config_dir` unused)."""
    root = data_root(data_dir, config.data_root, "with train/ holding A|B pair images")
    found = {}
    for split in ("train", *DISPLAY_SPLITS):
        folder = Path(root) / split
        if not folder.is_dir():
            if split == "train":
                raise DataError(f"{folder}: no such folder (expected DATA/train with A|B pair images side by side, "
                                "as scripts/make_pairs.py writes them)")
            continue
        found[split] = check_images(find_images(folder), folder)
    train = AlignedDataset(found["train"], config, "train")
    check_batch_fits(len(train), "training pairs", root, config.batch_size, world_size)
    shown = next((split for split in DISPLAY_SPLITS if split in found), None)
    return train, AlignedDataset(found[shown], config, shown) if shown else train
