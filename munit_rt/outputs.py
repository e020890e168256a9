"""Where outputs go (layouts), how they are written (atomically), contact sheets and index.html.

Layouts, for an input `sub/cat.jpg` and S styles:
  nested    OUT/sub/cat/style_00.png ... style_{S-1}.png          (default; one folder per input)
  official  OUT_00/sub/cat.png ... OUT_{S-1}/sub/cat.png           (NVlabs test_batch.py: a sibling
                                                                    folder per style, f"{OUT}_{j:02d}")
With --grid, both layouts add OUT/sub/cat/grid.png (input, then the styles, one row) and OUT/index.html.
"""
from __future__ import annotations

import html
import io
import os
import urllib.parse
from pathlib import Path, PurePosixPath

import numpy as np

from munit_rt.errors import InputError

LAYOUTS = ("nested", "official")
FORMATS = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 95})}
GRID_NAME = "grid.png"
INDEX_NAME = "index.html"


def output_key(relpath: str) -> str:
    """An input's relative path without its extension: the name its outputs are filed under."""
    return str(PurePosixPath(relpath).with_suffix(""))


class OutputLayout:
    def __init__(self, root: Path, layout: str, num_styles: int, image_format: str = "png", grid: bool = False):
        if layout not in LAYOUTS:
            raise InputError(f"unknown layout {layout!r} (expected {' or '.join(LAYOUTS)})")
        if image_format not in FORMATS:
            raise InputError(f"unknown image format {image_format!r} (expected {' or '.join(FORMATS)})")
        self.root, self.layout, self.num_styles = Path(root), layout, num_styles
        self.image_format, self.grid = image_format, grid

    def style_paths(self, relpath: str) -> list[Path]:
        key, ext = output_key(relpath), self.image_format
        if self.layout == "nested":
            return [self.root / key / f"style_{j:02d}.{ext}" for j in range(self.num_styles)]
        return [self.style_root(j) / f"{key}.{ext}" for j in range(self.num_styles)]

    def style_root(self, index: int) -> Path:
        return self.root.with_name(f"{self.root.name}_{index:02d}")

    def grid_path(self, relpath: str) -> Path:
        return self.root / output_key(relpath) / GRID_NAME

    def all_paths(self, relpath: str) -> list[Path]:
        return self.style_paths(relpath) + ([self.grid_path(relpath)] if self.grid else [])

    def roots(self) -> list[Path]:
        """Every folder this run writes under (to keep them out of the inputs, and to check writability)."""
        roots = [self.root] if self.layout == "nested" or self.grid else []
        if self.layout == "official":
            roots += [self.style_root(j) for j in range(self.num_styles)]
        return roots

    def is_complete(self, relpath: str) -> bool:
        return all(path.is_file() for path in self.all_paths(relpath))


def prepare_roots(layout: OutputLayout) -> None:
    """Create the output folders and prove they are writable, before any work starts."""
    for root in layout.roots():
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise InputError(f"output folder {root} is not writable ({exc.strerror or exc})") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def encode_image(pixels_u8_hwc: np.ndarray, image_format: str = "png") -> bytes:
    from PIL import Image

    pil_format, options = FORMATS[image_format]
    pixels = pixels_u8_hwc[:, :, 0] if pixels_u8_hwc.shape[2] == 1 else pixels_u8_hwc
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def make_grid(input_u8_hwc: np.ndarray, outputs_u8_hwc: list[np.ndarray]) -> np.ndarray:
    """One row, no gaps: the input, then each style. Mixed channel counts are shown as RGB."""
    tiles = [input_u8_hwc, *outputs_u8_hwc]
    channels = max(t.shape[2] for t in tiles)
    return np.concatenate([np.repeat(t, channels, axis=2) if t.shape[2] < channels else t for t in tiles], axis=1)


def write_index(root: Path, relpaths: list[str], title: str = "munit-rt translate") -> Path:
    """OUT/index.html with every grid below OUT, linked by relative URL."""
    rows = []
    for relpath in relpaths:
        grid_rel = f"{output_key(relpath)}/{GRID_NAME}"
        if (root / grid_rel).is_file():
            href = html.escape(urllib.parse.quote(grid_rel), quote=True)
            rows.append(f'<figure><figcaption>{html.escape(relpath)}</figcaption>'
                        f'<a href="{href}"><img src="{href}" loading="lazy" alt="{html.escape(relpath, quote=True)}">'
                        "</a></figure>")
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}figure{margin:0 0 1em}img{max-width:100%}</style></head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n<p>{len(rows)} inputs: input first, then the styles.</p>\n"
            + "\n".join(rows) + "\n</body></html>\n")
    path = root / INDEX_NAME
    write_atomic(path, page.encode("utf-8"))
    return path
