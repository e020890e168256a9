"""Image files for every family's training data: finding and checking them up front, reading them as the upstream
loaders do, and writing sample grids. The resize of each family is its `Preprocess` (munit_rt.preprocess)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from munit_rt.training.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def find_images(folder: Path) -> list[Path]:
    """All images under `folder`, recursively, extensions case-insensitive, in a stable order."""
    found = []
    for root, _dirs, files in os.walk(folder, followlinks=True):
        found += [Path(root) / name for name in files if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def check_images_readable(paths: list[Path]) -> None:
    """Open every header (cheap: no pixel decoding) so a non-image fails before the run folder exists."""
    for path in paths:
        try:
            with Image.open(path) as img:
                img.size  # noqa: B018 - the header parse is the check
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: cannot read image ({_reason(exc)})") from None


def data_root(data_dir: str | Path | None, config_root: str | None, layout: str) -> str | Path:
    """Where the training data is: --data (`data_dir`), else the config's data_root, a relative path counting
    from the current folder as upstream's; neither is a DataError saying what the folder holds (`layout`)."""
    root = data_dir if data_dir is not None else config_root
    if root is None:
        raise DataError(f"no training data: pass --data DIR ({layout}) or set data_root")
    return root


def check_images(paths: list[Path], where: str | Path) -> list[Path]:
    """`paths` (found in, or listed by, `where`), each header read: none, or an unreadable one, is a DataError."""
    if not paths:
        raise DataError(f"{where}: no images ({', '.join(IMAGE_EXTENSIONS)}, searched recursively)")
    check_images_readable(paths)
    return paths


def check_batch_fits(count: int, what: str, where: str | Path, batch_size: int, world_size: int) -> None:
    """One step takes batch_size items in each of `world_size` processes: fewer `what` is a DataError."""
    if count < batch_size * world_size:
        raise DataError(f"{where}: {count} {what}, fewer than batch_size {batch_size}{per_step(world_size)}")


def load_image(path: Path, channels: int) -> Image.Image:
    """RGB, or grayscale ("L", ITU-R 601 luma) for a 1-channel domain."""
    try:
        with Image.open(path) as img:
            return img.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not an image, or a format Pillow cannot decode"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> [C, H, W] float in [-1, 1] (ToTensor + Normalize(0.5, 0.5))."""
    pixels = torch.from_numpy(np.array(img, dtype=np.uint8)).reshape(img.height, img.width, -1)
    return (pixels.permute(2, 0, 1).float().div(255) - 0.5) / 0.5


def per_step(world_size: int) -> str:
    """Error-message suffix: the images one step needs across processes."""
    return "" if world_size == 1 else f" x {world_size} processes"


def save_image_grid(rows: list[torch.Tensor], path: Path) -> None:
    """Rows of [N, C, H, W] images in [-1, 1] -> one PNG (gray expanded to RGB, no padding), atomically."""
    grid = torch.cat([torch.cat(list(row.detach().cpu().expand(-1, 3, -1, -1)), dim=2) for row in rows], dim=1)
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)
