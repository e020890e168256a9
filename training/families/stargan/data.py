"""Attribute-labelled images in the CelebA `list_attr_celeba.txt` format, as yunjey/stargan's
`data_loader.py` reads them (MIT licence; written anew here, not copied).

    202599                                   line 1: image count (informational)
    5_o_Clock_Shadow Arched_Eyebrows ...     line 2: attribute names
    000001.jpg -1  1  1 -1 ...               then: a path relative to the image folder (subfolders
                                             allowed, e.g. UTKFace's `trainA/1_0_0_x.jpg`), one +-1 per name

Labels are the `selected_attrs` columns as floats, 1.0 where the file says 1 and 0.0 otherwise. The lines
are shuffled with `split_seed` (upstream: 1234; null keeps the file order) and the last `test_count`
are held out as the test split. Each image: horizontal flip (training only), then the family's preprocessing
(center crop to `crop_size`, resize to `image_size`, bilinear: the description the bundle records), [-1, 1].
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from munit_rt.preprocess import Preprocess, resize
from munit_rt.training.data import check_batch_fits, check_images_readable, load_image, to_tensor
from munit_rt.training.errors import ConfigError, DataError
from munit_rt.training.families.stargan.config import StarGanConfig
from munit_rt.training.families.stargan.model import IMAGE_CHANNELS
from munit_rt.training.graphs import GENERATOR_MULTIPLE


@dataclass(frozen=True)
class AttributeFile:
    path: Path
    names: tuple[str, ...]
    entries: tuple[tuple[str, tuple[int, ...]], ...]  # (relative image path, +-1 per attribute)


def read_attribute_file(path: str | Path) -> AttributeFile:
    """Parse a CelebA-format attribute file; a malformed line is a `DataError` naming its number."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read attribute file ({exc.strerror or exc})") from None
    if len(lines) < 2:
        raise DataError(f"{path}: an attribute file needs a count line and a line of attribute names")
    names = tuple(lines[1].split())
    entries = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise DataError(f"{path}: line {number} has {len(fields) - 1} values for {len(names)} attributes")
        try:
            values = tuple(int(v) for v in fields[1:])
        except ValueError:
            raise DataError(f"{path}: line {number}: attribute values must be 1 or -1") from None
        entries.append((fields[0], values))
    if not entries:
        raise DataError(f"{path}: no image lines")
    return AttributeFile(path, names, tuple(entries))


def select_labels(attributes: AttributeFile, selected: tuple[str, ...]) -> list[tuple[str, list[float]]]:
    """(image, [0/1 per selected attribute]); an unknown name is a `DataError` listing the file's names."""
    unknown = [name for name in selected if name not in attributes.names]
    if unknown:
        raise DataError(f"{attributes.path}: unknown attribute '{unknown[0]}' in selected_attrs (the file has: "
                        f"{', '.join(attributes.names)})")
    columns = [attributes.names.index(name) for name in selected]
    return [(image, [1.0 if values[c] == 1 else 0.0 for c in columns]) for image, values in attributes.entries]


def split_entries(entries: list, test_count: int, split_seed: int | None) -> tuple[list, list]:
    """(train, test): shuffle with `split_seed` (None: file order), then hold out the last `test_count`."""
    entries = list(entries)
    if split_seed is not None:
        random.Random(split_seed).shuffle(entries)
    if test_count >= len(entries):
        raise DataError(f"test_count {test_count} leaves no training images out of {len(entries)}")
    cut = len(entries) - test_count
    return entries[:cut], entries[cut:]


def preprocess(config: StarGanConfig) -> Preprocess:
    """Upstream and the loader here: center crop crop_size x crop_size, then resize to image_size (bilinear)."""
    return Preprocess(resize="square", size=config.image_size, resample="bilinear", multiple=GENERATOR_MULTIPLE,
                      crop_size=config.crop_size, mean=(0.5,) * IMAGE_CHANNELS, std=(0.5,) * IMAGE_CHANNELS)


class AttributeDataset(Dataset):
    """Item (index, epoch) -> (image [3, S, S], labels [k]); the flip follows (seed, name, epoch, index)."""

    def __init__(self, image_dir: Path, entries: list[tuple[str, list[float]]], prep: Preprocess, flip: bool,
                 seed: int, name: str):
        self.paths = [image_dir / image for image, _ in entries]
        self.labels = torch.tensor([labels for _, labels in entries], dtype=torch.float32)
        self.prep, self.flip, self.seed, self.name = prep, flip, seed, name

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        flip = self.flip and random.Random(f"{self.seed}/{self.name}/{epoch}/{index}").random() < 0.5
        return self.load(index, flip), self.labels[index]

    def load(self, index: int, flip: bool = False) -> torch.Tensor:
        img = load_image(self.paths[index], IMAGE_CHANNELS)
        if img.width < self.prep.crop_size or img.height < self.prep.crop_size:  # upstream crops, never pads
            raise DataError(f"{self.paths[index]}: {img.width}x{img.height} is smaller than crop_size "
                            f"{self.prep.crop_size}")
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_tensor(resize(img, self.prep))

    def display(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        count = min(count, len(self))
        return torch.stack([self.load(i) for i in range(count)]), self.labels[:count]


def open_attribute_dataset(image_dir: str | Path, attr_path: str | Path, selected: tuple[str, ...], *,
                           prep: Preprocess, test_count: int, split_seed: int | None, flip: bool, seed: int,
                           name: str) -> tuple[AttributeDataset, AttributeDataset]:
    """(train, test) for one attribute file; every training image's header is checked up front."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: no such image folder")
    train_entries, test_entries = split_entries(select_labels(read_attribute_file(attr_path), selected),
                                                test_count, split_seed)
    missing = [image for image, _ in train_entries + test_entries if not (image_dir / image).is_file()]
    if missing:
        raise DataError(f"{image_dir / missing[0]}: listed in {attr_path} but not found "
                        f"({len(missing)} missing)")
    check_images_readable([image_dir / image for image, _ in train_entries])
    make = lambda entries, split, augment: AttributeDataset(  # noqa: E731
        image_dir, entries, prep, augment, seed, f"{name}/{split}")
    return make(train_entries, "train", flip), make(test_entries, "test", False)


@dataclass(frozen=True)
class DataPaths:
    """Where a config's relative data paths count from: the current folder, the config file's folder
    (`config_dir`; None for a config object) and, for attribute files, their dataset's image folder."""

    config_dir: Path | None

    def folder(self, given: str | None) -> Path | None:
        """An image folder: as given (absolute, or from the current folder), else from the config's folder."""
        if given is None:
            return None
        path = Path(given)
        if path.is_absolute() or path.is_dir() or self.config_dir is None:
            return path
        beside_config = self.config_dir / path
        return beside_config if beside_config.is_dir() else path

    def attribute_file(self, given: str, image_dir: Path, key: str) -> Path:
        """An attribute file: from its image folder, else the config's folder, else the current folder."""
        path = Path(given)
        if path.is_absolute():
            return path
        bases = [image_dir, *([self.config_dir] if self.config_dir is not None else []), Path(".")]
        for base in bases:
            if (base / path).is_file():
                return base / path
        places = ", ".join(f"{base}/" if str(base) != "." else "the current folder" for base in bases)
        raise DataError(f"{key} {given}: no such attribute file (a relative path is looked for in {places})")


def open_training_data(config: StarGanConfig, data_dir, world_size: int = 1,
                       config_dir: Path | None = None) -> list[tuple[AttributeDataset, AttributeDataset]]:
    """(train, test) per attribute file. `data_dir` (--data) replaces the first dataset's image_dir (and the
    second's when image_dir_2 is unset). Relative paths of the config (DataPaths): image folders count
    from the current folder, else from the config file's folder; attribute files from their image folder, else
    the config file's folder, else the current folder. So `--data DIR` with `attr_path: list_attr.txt` finds
    DIR/list_attr.txt from any working folder."""
    paths = DataPaths(config_dir)
    first = Path(data_dir) if data_dir is not None else paths.folder(config.image_dir)
    specs = [(first, config.attr_path, config.selected_attrs)]
    if config.num_datasets == 2:
        specs.append((paths.folder(config.image_dir_2) or first, config.attr_path_2, config.selected_attrs_2))
    datasets = []
    for number, (image_dir, attr_path, selected) in enumerate(specs, start=1):
        suffix = "" if number == 1 else "_2"
        if image_dir is None or attr_path is None:
            raise ConfigError(f"StarGAN dataset {number}: set image_dir{suffix} (or pass --data) and "
                              f"attr_path{suffix} in the config")
        attr_path = paths.attribute_file(attr_path, image_dir, f"attr_path{suffix}")
        train_set, test_set = open_attribute_dataset(
            image_dir, attr_path, selected, prep=preprocess(config), test_count=config.test_count,
            split_seed=config.split_seed, flip=config.flip, seed=config.seed, name=f"dataset{number}")
        check_batch_fits(len(train_set), "training images", attr_path, config.batch_size, world_size)
        datasets.append((train_set, test_set))
    return datasets
