"""CycleGAN's unpaired data, as upstream's `data/unaligned_dataset.py` loads it: DATA/trainA, trainB (testA,
testB optional; searched recursively). Training items: resize to load_size x load_size with the preprocessing's
filter (bicubic), random crop_size crop, random flip; the bundle records the test-time description."""
from __future__ import annotations

import random
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from munit_rt.preprocess import Preprocess, pil_filter
from munit_rt.training.data import check_batch_fits, check_images, data_root, find_images, load_image, to_tensor
from munit_rt.training.errors import DataError
from munit_rt.training.families.cyclegan.config import CycleGanConfig
from munit_rt.training.graphs import GENERATOR_MULTIPLE


def preprocess(config: CycleGanConfig) -> Preprocess:
    """Upstream tests at crop_size with bicubic resizes; the aspect ratio is kept, as for MUNIT, and each side then
    resized to the nearest multiple of 4 (upstream `__make_power_2`). load_size and crop_size are recorded too."""
    channels = max(config.input_nc, config.output_nc)
    return Preprocess(resize="shorter_side", size=config.crop_size, resample="bicubic", multiple=GENERATOR_MULTIPLE,
                      fit="round", mean=(0.5,) * channels, std=(0.5,) * channels,
                      extra={"load_size": config.load_size, "crop_size": config.crop_size})


class UnalignedDataset(Dataset):
    """Item (index, epoch) -> (A[index % len A], a random B), each resized to load_size x load_size (bicubic, the
    preprocessing's filter), randomly cropped to crop_size and flipped; the randomness follows (seed, epoch, index)."""

    def __init__(self, paths_a: list[Path], paths_b: list[Path], config: CycleGanConfig, name: str):
        self.paths = {"A": paths_a, "B": paths_b}
        self.config, self.name = config, name
        self.channels = {"A": config.input_nc, "B": config.output_nc}
        self.resample = pil_filter(preprocess(config).resample)

    def __len__(self) -> int:
        return max(len(self.paths["A"]), len(self.paths["B"]))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        rng = random.Random(f"{self.config.seed}/{self.name}/{epoch}/{index}")
        index_b = rng.randrange(len(self.paths["B"]))
        return (self.load("A", index % len(self.paths["A"]), rng, self.config.flip),
                self.load("B", index_b, rng, self.config.flip))

    def load(self, domain: str, index: int, rng: random.Random | None, flip: bool) -> torch.Tensor:
        cfg = self.config
        img = load_image(self.paths[domain][index], self.channels[domain])
        img = img.resize((cfg.load_size, cfg.load_size), self.resample)
        if rng is None:  # fixed display crop: the centre
            top = left = (cfg.load_size - cfg.crop_size) // 2
        else:
            top, left = rng.randint(0, cfg.load_size - cfg.crop_size), rng.randint(0, cfg.load_size - cfg.crop_size)
        img = img.crop((left, top, left + cfg.crop_size, top + cfg.crop_size))
        if flip and rng is not None and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_tensor(img)

    def display(self, count: int) -> dict[str, torch.Tensor]:
        return {d: torch.stack([self.load(d, i, None, False) for i in range(min(count, len(self.paths[d])))])
                for d in ("A", "B")}


def open_training_data(config: CycleGanConfig, data_dir, world_size: int = 1,
                       config_dir: Path | None = None) -> tuple[UnalignedDataset, UnalignedDataset]:
    """(train, display) datasets from DATA/trainA, trainB (display: testA/testB when both exist); `data_dir`
    (--data) replaces data_root, which counts from the current folder as upstream's (`config_dir` unused)."""
    root = data_root(data_dir, config.data_root, "with trainA/ and trainB/")
    found = {}
    for split in ("train", "test"):
        for domain in ("A", "B"):
            folder = Path(root) / f"{split}{domain}"
            if not folder.is_dir():
                if split == "test":
                    continue
                raise DataError(f"{folder}: no such folder (expected the layout DATA/trainA, trainB, testA, testB)")
            found[f"{split}{domain}"] = check_images(find_images(folder), folder)
    train = UnalignedDataset(found["trainA"], found["trainB"], config, "train")
    check_batch_fits(len(train), "training images", root, config.batch_size, world_size)
    test = (UnalignedDataset(found["testA"], found["testB"], config, "test")
            if {"testA", "testB"} <= set(found) else train)
    return train, test
