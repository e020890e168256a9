"""Unpaired image data for MUNIT, as the official NVlabs/MUNIT `data.py`/`utils.py` load it.

Layout: DATA/trainA, trainB, testA, testB (searched recursively), or the official list-file variant
(`data_folder_train_a` + `data_list_train_a`, a text file of paths relative to the folder); relative
`data_root` / `data_folder_*` paths count from the current directory, as in the official code. Each image
goes through: random horizontal flip (training only) -> the family's preprocessing resize (shorter side to
`new_size`, bilinear, as torchvision `Resize`; the same description the bundle records) -> random crop ->
[-1, 1] tensor; grayscale for 1-channel domains.

Reproducibility: the shuffle of every epoch and the crop/flip of every sample are derived from
(seed, domain, epoch, index), not from a running RNG, so a resumed run sees exactly the batches an
uninterrupted run would, whatever `num_workers` is.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from munit_rt.preprocess import Preprocess, resize_shorter_side
from munit_rt.training.data import check_batch_fits, check_images, find_images, load_image, to_tensor
from munit_rt.training.engine.batches import EpochBatchSampler, PairedBatches
from munit_rt.training.errors import ConfigError, DataError
from munit_rt.training.families.munit.config import MunitConfig

DOMAINS = ("a", "b")


def read_image_list(folder: Path, list_file: Path) -> list[Path]:
    """Official `ImageFilelist`: one path per line, relative to `folder`."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{list_file}: cannot read image list ({exc.strerror or exc})") from None
    return [folder / line.strip() for line in lines if line.strip()]


class ImageDataset(Dataset):
    """One domain's images. Items are addressed by (index, epoch) so augmentation is reproducible."""

    def __init__(self, paths: list[Path], channels: int, prep: Preprocess, crop_hw: tuple[int, int],
                 flip: bool, seed: int, name: str):
        self.paths = paths
        self.channels = channels
        self.prep = prep
        self.crop_hw = crop_hw
        self.flip = flip
        self.seed = seed
        self.name = name

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        index, epoch = key
        return self.load(index, random.Random(f"{self.seed}/{self.name}/{epoch}/{index}"))

    def load(self, index: int, rng: random.Random) -> torch.Tensor:
        path = self.paths[index]
        img = load_image(path, self.channels)
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = resize_shorter_side(img, self.prep.size, self.prep.resample)
        crop_h, crop_w = self.crop_hw
        if img.height < crop_h or img.width < crop_w:
            raise DataError(f"{path}: {img.width}x{img.height} after resizing to new_size {self.prep.size}, "
                            f"smaller than the {crop_w}x{crop_h} crop")
        top, left = rng.randint(0, img.height - crop_h), rng.randint(0, img.width - crop_w)
        return to_tensor(img.crop((left, top, left + crop_w, top + crop_h)))

    def display_batch(self, count: int) -> torch.Tensor:
        """The first `count` images with a fixed crop, for sample grids that stay comparable over time."""
        count = min(count, len(self))
        return torch.stack([self.load(i, random.Random(f"{self.seed}/{self.name}/display/{i}"))
                            for i in range(count)])


@dataclass
class TrainingData:
    train: dict[str, ImageDataset]
    test: dict[str, ImageDataset]  # the training images where no test split exists

    def batches(self, config: MunitConfig, pin_memory: bool = False, rank: int = 0,
                world_size: int = 1) -> PairedBatches:
        loaders = {}
        for domain, dataset in self.train.items():
            sampler = EpochBatchSampler(len(dataset), config.batch_size, config.seed, dataset.name, rank, world_size)
            # the generator only seeds worker processes; it keeps the DataLoader off the global RNG
            generator = torch.Generator().manual_seed(config.seed)
            loaders[domain] = DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                                         pin_memory=pin_memory, generator=generator)
        return PairedBatches(loaders)

    def display(self, count: int) -> dict[str, dict[str, torch.Tensor]]:
        """split -> domain -> the fixed sample-grid images (official: the first display_size of each split)."""
        return {split: {d: ds.display_batch(count) for d, ds in datasets.items()}
                for split, datasets in (("train", self.train), ("test", self.test))}


def preprocess(config: MunitConfig) -> Preprocess:
    """What the official loaders and `test.py` do: the shorter side to new_size with torchvision Resize's
    bilinear filter; at test time H and W are then center-cropped to a multiple of 2**n_downsample."""
    channels = max(config.input_dim_a, config.input_dim_b)
    return Preprocess(resize="shorter_side", size=config.new_size, resample="bilinear",
                      multiple=2**config.gen.n_downsample, fit="crop", mean=(0.5,) * channels, std=(0.5,) * channels)


def open_training_data(config: MunitConfig, data_dir: str | Path | None, world_size: int = 1,
                       config_dir: Path | None = None) -> TrainingData:
    """Find and check every domain's images; any problem is a one-line `DataError` naming the folder.
    `world_size` processes each take batch_size images per step, so a domain needs that many at least.
    `data_dir` (--data) replaces data_root and the list files; paths count from the current folder as in the
    official code (`config_dir` is not used)."""
    prep = preprocess(config)
    crop_hw = (config.crop_image_height, config.crop_image_width)
    train, test = {}, {}
    for domain in DOMAINS:
        for split, flip in (("train", True), ("test", False)):
            paths, where = _domain_paths(config, data_dir, split, domain)
            if paths is None:  # testA/testB are optional
                continue
            dataset = ImageDataset(check_images(paths, where), config.input_dim(domain), prep, crop_hw, flip,
                                   config.seed, f"{split}{domain.upper()}")
            (train if split == "train" else test)[domain] = dataset
        check_batch_fits(len(train[domain]), "images", _domain_paths(config, data_dir, "train", domain)[1],
                         config.batch_size, world_size)
        test.setdefault(domain, train[domain])
    return TrainingData(train=train, test=test)


def _domain_paths(config: MunitConfig, data_dir, split: str, domain: str) -> tuple[list[Path] | None, str]:
    root = data_dir if data_dir is not None else config.data_root
    if root is not None:
        folder = Path(root) / f"{split}{domain.upper()}"
        if not folder.is_dir():
            if split == "test":
                return None, str(folder)
            raise DataError(f"{folder}: no such folder (expected the layout DATA/trainA, trainB, testA, testB)")
        return find_images(folder), str(folder)
    folder = getattr(config, f"data_folder_{split}_{domain}")
    list_file = getattr(config, f"data_list_{split}_{domain}")
    if folder is None or list_file is None:
        if split == "test":
            return None, ""
        raise ConfigError(f"no training data for domain {domain}: pass --data DIR, or set data_root, or "
                          f"data_folder_train_{domain} with data_list_train_{domain} in the config")
    return read_image_list(Path(folder), Path(list_file)), str(list_file)
