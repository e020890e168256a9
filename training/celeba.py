"""Attribute-labelled images in the CelebA `list_attr_celeba.txt` format, as yunjey/stargan's
`data_loader.py` reads them (MIT licence; written anew here, not copied).

    202599                                   line 1: image count (informational)
    5_o_Clock_Shadow Arched_Eyebrows ...     line 2: attribute names
    000001.jpg -1  1  1 -1 ...               then: a path relative to the image folder (subfolders
                                             allowed, e.g. UTKFace's `trainA/1_0_0_x.jpg`), one +-1 per name

Labels are the `selected_attrs` columns as floats, 1.0 where the file says 1 and 0.0 otherwise. The lines
are shuffled with `split_seed` (upstream: 1234; null keeps the file order) and the last `test_count`
are held out as the test split. Each image: horizontal flip (training only), center crop to
`crop_size`, resize to `image_size` (bilinear), [-1, 1].
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from munit_rt.training.data import check_images_readable
from munit_rt.training.errors import DataError
from munit_rt.training.loop import load_image, to_tensor


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


def center_crop_resize(img: Image.Image, crop_size: int, image_size: int, source: Path) -> Image.Image:
    """torchvision CenterCrop(crop_size) then Resize(image_size) (bilinear) for an image at least crop_size."""
    if img.width < crop_size or img.height < crop_size:
        raise DataError(f"{source}: {img.width}x{img.height} is smaller than crop_size {crop_size}")
    top, left = int(round((img.height - crop_size) / 2.0)), int(round((img.width - crop_size) / 2.0))
    img = img.crop((left, top, left + crop_size, top + crop_size))
    return img if crop_size == image_size else img.resize((image_size, image_size), Image.BILINEAR)


class AttributeDataset(Dataset):
    """Item (index, epoch) -> (image [3, S, S], labels [k]); the flip follows (seed, name, epoch, index)."""

    def __init__(self, image_dir: Path, entries: list[tuple[str, list[float]]], crop_size: int, image_size: int,
                 flip: bool, seed: int, name: str):
        self.paths = [image_dir / image for image, _ in entries]
        self.labels = torch.tensor([labels for _, labels in entries], dtype=torch.float32)
        self.crop_size, self.image_size, self.flip, self.seed, self.name = crop_size, image_size, flip, seed, name

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        flip = self.flip and random.Random(f"{self.seed}/{self.name}/{epoch}/{index}").random() < 0.5
        return self.load(index, flip), self.labels[index]

    def load(self, index: int, flip: bool = False) -> torch.Tensor:
        img = load_image(self.paths[index], 3)
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_tensor(center_crop_resize(img, self.crop_size, self.image_size, self.paths[index]))

    def display(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        count = min(count, len(self))
        return torch.stack([self.load(i) for i in range(count)]), self.labels[:count]


def open_attribute_dataset(image_dir: str | Path, attr_path: str | Path, selected: tuple[str, ...], *,
                           crop_size: int, image_size: int, test_count: int, split_seed: int | None, flip: bool,
                           seed: int, name: str) -> tuple[AttributeDataset, AttributeDataset]:
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
        image_dir, entries, crop_size, image_size, augment, seed, f"{name}/{split}")
    return make(train_entries, "train", flip), make(test_entries, "test", False)
