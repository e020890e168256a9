"""Unpaired image data for MUNIT, as the official NVlabs/MUNIT `data.py`/`utils.py` load it.

Layout: DATA/trainA, trainB, testA, testB (searched recursively), or the official list-file variant
(`data_folder_train_a` + `data_list_train_a`, a text file of paths relative to the folder); relative
`data_root` / `data_folder_*` paths count from the current directory, as in the official code. Each image
goes through: random horizontal flip (training only) -> shorter side resized to `new_size` (bilinear, as
torchvision `Resize`) -> random crop -> [-1, 1] tensor; grayscale for 1-channel domains.

Reproducibility: the shuffle of every epoch and the crop/flip of every sample are derived from
(seed, domain, epoch, index), not from a running RNG, so a resumed run sees exactly the batches an
uninterrupted run would, whatever `num_workers` is.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from munit_rt.training.config import MunitConfig
from munit_rt.training.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DOMAINS = ("a", "b")


def find_images(folder: Path) -> list[Path]:
    """All images under `folder`, recursively, extensions case-insensitive, in a stable order."""
    found = []
    for root, _dirs, files in os.walk(folder, followlinks=True):
        found += [Path(root) / name for name in files if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def read_image_list(folder: Path, list_file: Path) -> list[Path]:
    """Official `ImageFilelist`: one path per line, relative to `folder`."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{list_file}: cannot read image list ({exc.strerror or exc})") from None
    return [folder / line.strip() for line in lines if line.strip()]


def check_images_readable(paths: list[Path]) -> None:
    """Open every header (cheap: no pixel decoding) so a non-image fails before the run folder exists."""
    for path in paths:
        try:
            with Image.open(path) as img:
                img.size  # noqa: B018 - the header parse is the check
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: cannot read image ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image, or a format Pillow cannot decode"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def resize_shorter_side(img: Image.Image, size: int) -> Image.Image:
    """torchvision `Resize(int)`: shorter side to `size`, longer side int(size * long / short), bilinear."""
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    return img if (new_w, new_h) == (w, h) else img.resize((new_w, new_h), Image.BILINEAR)


class ImageDataset(Dataset):
    """One domain's images. Items are addressed by (index, epoch) so augmentation is reproducible."""

    def __init__(self, paths: list[Path], channels: int, new_size: int, crop_hw: tuple[int, int],
                 flip: bool, seed: int, name: str):
        self.paths = paths
        self.channels = channels
        self.new_size = new_size
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
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: cannot read image ({_reason(exc)})") from None
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = resize_shorter_side(img, self.new_size)
        crop_h, crop_w = self.crop_hw
        if img.height < crop_h or img.width < crop_w:
            raise DataError(f"{path}: {img.width}x{img.height} after resizing to new_size {self.new_size}, "
                            f"smaller than the {crop_w}x{crop_h} crop")
        top, left = rng.randint(0, img.height - crop_h), rng.randint(0, img.width - crop_w)
        img = img.crop((left, top, left + crop_w, top + crop_h))
        pixels = torch.from_numpy(np.array(img, dtype=np.uint8)).reshape(crop_h, crop_w, -1)
        return (pixels.permute(2, 0, 1).float().div(255) - 0.5) / 0.5  # ToTensor + Normalize(0.5, 0.5)

    def display_batch(self, count: int) -> torch.Tensor:
        """The first `count` images with a fixed crop, for sample grids that stay comparable over time."""
        count = min(count, len(self))
        return torch.stack([self.load(i, random.Random(f"{self.seed}/{self.name}/display/{i}"))
                            for i in range(count)])


class EpochBatchSampler(Sampler):
    """Shuffled batches (drop_last) of one epoch, from a permutation derived from (seed, domain, epoch).

    `set_position(epoch, skip)` starts an epoch after `skip` batches, which is how a run resumes.
    Distributed (training/distributed.py): every rank derives the same order; step k covers the
    batch_size * world_size indices after k such steps and rank `rank` takes its slice of batch_size, so the
    ranks' batches are disjoint and together are the single-process batch of batch_size * world_size.
    """

    def __init__(self, size: int, batch_size: int, seed: int, name: str, rank: int = 0, world_size: int = 1):
        self.size, self.batch_size, self.seed, self.name = size, batch_size, seed, name
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.size // (self.batch_size * self.world_size)

    def __iter__(self):
        order = list(range(self.size))
        random.Random(f"{self.seed}/{self.name}/shuffle/{self.epoch}").shuffle(order)
        step = self.batch_size * self.world_size
        for start in range(self.skip * step + self.rank * self.batch_size, len(self) * step, step):
            yield [(index, self.epoch) for index in order[start : start + self.batch_size]]


class PairedBatches:
    """`zip(loader_a, loader_b)` epoch after epoch, like the official loop, resumable at any batch."""

    def __init__(self, loaders: dict[str, DataLoader]):
        self.loaders = loaders
        self.epoch, self.batches_done = 0, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])

    def __iter__(self):
        while True:
            for loader in self.loaders.values():
                loader.batch_sampler.set_position(self.epoch, self.batches_done)
            try:
                for batch_a, batch_b in zip(self.loaders["a"], self.loaders["b"]):
                    self.batches_done += 1
                    yield batch_a, batch_b
            except DataError as exc:
                # a worker's error comes back wrapped in its traceback; keep the original line
                raise DataError(str(exc).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None
            self.epoch, self.batches_done = self.epoch + 1, 0


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


def open_training_data(config: MunitConfig, data_dir: str | Path | None, world_size: int = 1) -> TrainingData:
    """Find and check every domain's images; any problem is a one-line `DataError` naming the folder.
    `world_size` processes each take batch_size images per step, so a domain needs that many at least."""
    crop_hw = (config.crop_image_height, config.crop_image_width)
    train, test = {}, {}
    for domain in DOMAINS:
        for split, flip in (("train", True), ("test", False)):
            paths, where = _domain_paths(config, data_dir, split, domain)
            if paths is None:  # testA/testB are optional
                continue
            if not paths:
                raise DataError(f"{where}: no images ({', '.join(IMAGE_EXTENSIONS)}, searched recursively)")
            check_images_readable(paths)
            dataset = ImageDataset(paths, config.input_dim(domain), config.new_size, crop_hw, flip,
                                   config.seed, f"{split}{domain.upper()}")
            (train if split == "train" else test)[domain] = dataset
        if len(train[domain]) < config.batch_size * world_size:
            raise DataError(f"{_domain_paths(config, data_dir, 'train', domain)[1]}: {len(train[domain])} "
                            f"images, fewer than batch_size {config.batch_size}{per_step(world_size)}")
        test.setdefault(domain, train[domain])
    return TrainingData(train=train, test=test)


def per_step(world_size: int) -> str:
    """Error-message suffix: the images one step needs across processes."""
    return "" if world_size == 1 else f" x {world_size} processes"


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


def save_image_grid(rows: list[torch.Tensor], path: Path) -> None:
    """Rows of [N, C, H, W] images in [-1, 1] -> one PNG (gray expanded to RGB, no padding), atomically."""
    grid = torch.cat([torch.cat(list(row.detach().cpu().expand(-1, 3, -1, -1)), dim=2) for row in rows], dim=1)
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)
