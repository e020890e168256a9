"""Finding input images, reading them as the bundle's preprocessing says (munit_rt.preprocess), and the
checks that refuse what cannot be read whole.

Input handling (each input is translated after the conversion below, or refused with a one-line reason):
  * decoded by content, not by extension (a PNG named .jpg is a PNG), among JPEG/MPO, PNG, BMP, WebP, GIF
    and TIFF only: Pillow's other formats (EPS runs Ghostscript, ...) are never opened;
  * converted: CMYK -> RGB; 16-bit greyscale (I;16, and I from 16-bit PNGs) -> 8-bit by round(v / 257) (0 -> 0, 65535 -> 255, no
    clipping); alpha (RGBA, LA, PA, and palette/RGB/L images with a transparent colour) composited on white;
    greyscale into a 3-channel domain replicated to RGB, RGB into a 1-channel domain as ITU-R 601 luma
    (Pillow's convert('L')); EXIF orientation applied; animated GIF/WebP: the first frame;
  * refused: empty files, non-images, truncated data (Pillow's default, LOAD_TRUNCATED_IMAGES is never set,
    and the two cases Pillow would pad: munit_rt/io/complete.py), 32-bit float and integer TIFFs (no defined
    value range), more pixels than Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, checked from the header,
    before decoding), and images so thin that scaling the shorter side to `size` would make the longer side
    more than MAX_ASPECT_RATIO x `size` (1x1 is fine: it is scaled up);
  * large JPEGs are decoded at 1/2, 1/4 or 1/8 scale (draft mode) whenever that still covers the target size.
"""
from __future__ import annotations

import errno
import math
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from munit_rt.errors import InputError
from munit_rt.io.complete import Incomplete, check_whole
from munit_rt.preprocess import Preprocess, fit_to_multiple, resize, scaled_size
from munit_rt.text import printable

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
# What Image.open may decode, whatever the extension says ("JPEG" opens MPO too: the JPEGs many cameras write).
DECODE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF")
MAX_ASPECT_RATIO = 10  # longer side <= 10 x shorter side (after scaling: <= 10 x --size)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_PLUGINS_LOCK = threading.Lock()
_current = threading.local()  # the notes of the input this thread decodes
_plugins_loaded = False


def _load_plugins() -> None:
    """Pillow registers WebP/TIFF on first use; do it once, not from several reader threads at the same time."""
    global _plugins_loaded
    if not _plugins_loaded:
        with _PLUGINS_LOCK:
            if not _plugins_loaded:
                from PIL import Image

                Image.init()
                _plugins_loaded = True


@dataclass(frozen=True)
class InputImage:
    path: Path
    relpath: str  # POSIX path relative to the folder it was found in (a single file: its name)


def list_images(inputs: list[Path], recursive: bool = False, exclude: Iterable[Path] = ()) \
        -> tuple[list[InputImage], list[tuple[str, str]]]:
    """Image files among `inputs` (files and folders), sorted by relative path per folder, and (relative path,
    reason) for everything that could not be listed: a folder that cannot be read (permissions, a path too long
    for the file system, a symbolic-link loop) is reported, never dropped silently.

    Files are picked by extension (case-insensitive); names starting with '.' (hidden files, our own
    temporary files) are skipped. Folders in `exclude` (the run's output folders) are never entered.
    --recursive follows symbolic links to folders, but walks each real folder once ((st_dev, st_ino) seen
    before: skipped), so a link loop ends and a folder linked twice is read once. Anything else with an
    image extension (a broken link, a FIFO, a link loop) is listed, so that reading it reports it by name.
    """
    excluded = [Path(os.path.realpath(p)) for p in exclude]
    found: list[InputImage] = []
    failures: list[tuple[str, str]] = []
    for given in inputs:
        if given.is_file():
            found.append(InputImage(given, given.name))
            continue
        if not given.is_dir():
            raise InputError(f"input {printable(str(given), control=True)}: no such file or folder")
        found += sorted(_scan_folder(given, recursive, excluded, failures), key=lambda item: item.relpath)
    return found, failures


def find_images(inputs: list[Path], recursive: bool = False, exclude: Iterable[Path] = ()) -> list[InputImage]:
    """list_images for callers that need every image (reference folders): a folder that cannot be listed is
    an InputError."""
    found, failures = list_images(inputs, recursive, exclude)
    if failures:
        relpath, reason = failures[0]
        raise InputError(f"{printable(relpath, control=True)}: {reason}")
    return found


def os_error_reason(exc: OSError) -> str:
    """An OSError of the file system as a reason a user can act on."""
    known = {errno.ELOOP: "a symbolic link loop", errno.ENAMETOOLONG: "the path is too long for the file system",
             errno.EACCES: "permission denied", errno.EPERM: "permission denied"}
    return known.get(exc.errno, exc.strerror or type(exc).__name__)


def _scan_folder(root: Path, recursive: bool, excluded: list[Path],
                 failures: list[tuple[str, str]]) -> Iterator[InputImage]:
    visited: set[tuple[int, int]] = set()

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        relpath = where.relative_to(root).as_posix() if where.is_relative_to(root) else str(where)
        failures.append((f"{relpath}/" if relpath != "." else f"{root.name}/",
                         f"cannot list this folder ({os_error_reason(exc)})"))

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=unreadable):
        try:
            info = os.stat(folder)
        except OSError as exc:
            unreadable(exc)
            subfolders[:] = []
            continue
        real = Path(os.path.realpath(folder))
        if (info.st_dev, info.st_ino) in visited or any(real.is_relative_to(out) for out in excluded):
            subfolders[:] = []  # a loop, a folder already walked through another link, or our output
            continue
        visited.add((info.st_dev, info.st_ino))
        if not recursive:
            subfolders[:] = []
        for name in names:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = Path(folder, name)
            yield InputImage(path, path.relative_to(root).as_posix())


@dataclass
class Decoded:
    pixels: np.ndarray            # uint8 [H, W, C], preprocessed: what the model sees, before normalising
    size: tuple[int, int]         # the file's own (width, height)
    notes: list[str]              # what the decoders warned about (corrupt EXIF, extraneous JPEG bytes, ...)


def read_image(path: Path, prep: Preprocess, channels: int) -> np.ndarray:
    """An image file -> preprocessed uint8 [H, W, C] (the pixels the model sees, before normalising).

    Raises InputError with a one-line reason for inputs that are refused (see the module docstring).
    """
    return decode_input(path, prep, channels).pixels


def decode_input(path: Path, prep: Preprocess, channels: int) -> Decoded:
    """read_image, with the file's size and the decoders' warnings (collected while `route_warnings` is on)."""
    from PIL import Image, UnidentifiedImageError

    _check_file(path)
    _load_plugins()
    notes: list[str] = []
    _current.notes = notes
    try:
        image = Image.open(path, formats=DECODE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise InputError(f"refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise InputError("not an image munit-rt reads (decoded by content: JPEG, PNG, BMP, WebP, GIF or TIFF)") \
            from None
    try:
        with image:
            w, h = image.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and w * h > limit:  # Pillow only warns below 2x its limit; we refuse
                raise InputError(f"refused as a possible decompression bomb: {w}x{h} = {w * h} pixels, more than "
                                 f"the limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS)")
            if prep.resize == "shorter_side":
                _check_shape(w, h, prep.size)
            _check_mode(image)
            try:
                notes += check_whole(path, image.format)
            except Incomplete as exc:
                raise InputError(f"truncated image data, refused ({exc}); the file is incomplete") from None
            pixels = _decode(image, prep, channels)
    finally:
        _current.notes = None
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return Decoded(fit_to_multiple(pixels, prep.multiple), (w, h), notes)


def _decode(image, prep: Preprocess, channels: int) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        if image.format in ("JPEG", "MPO") and prep.resize == "shorter_side":  # decode at 1/2, 1/4 or 1/8
            image.draft(None, scaled_size(image.size, prep.size))  # scale when that still covers the target
        image = ImageOps.exif_transpose(image)  # decodes (the first frame of an animation)
        return np.asarray(resize(_to_channels(image, channels), prep), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise InputError(f"refused as a possible decompression bomb ({exc})") from None
    except OSError as exc:
        if "truncated" in str(exc):
            raise InputError(f"truncated image data, refused ({exc}); the file is incomplete") from None
        raise


def _check_mode(image) -> None:
    """32-bit samples have no defined range (floats in [0, 1] or [0, 255], integers of any width): refused
    rather than guessed. 16-bit images (PNG, and TIFF mode I;16) are converted as documented."""
    if image.mode == "F" or (image.mode == "I" and image.format == "TIFF"):
        kind = "floating-point" if image.mode == "F" else "integer"
        raise InputError(f"a 32-bit {kind} TIFF: its value range is not defined, so it is refused; convert it "
                         "to 8- or 16-bit first")


class route_warnings:
    """While active (one run, entered on the main thread), Pillow's warnings about an input become notes of the
    input being decoded on that thread instead of lines on stderr."""

    def __enter__(self):
        import warnings

        self._show, self._filters = warnings.showwarning, list(warnings.filters)
        warnings.filterwarnings("always", module=r"PIL\.")  # every input's warning, not only the first

        def show(message, category, filename, lineno, file=None, line=None):
            notes = getattr(_current, "notes", None)
            if notes is not None:
                notes.append(str(message).strip().splitlines()[0] if str(message).strip() else category.__name__)
            else:
                self._show(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc_info):
        import warnings

        warnings.showwarning = self._show
        warnings.filters[:] = self._filters


def _check_file(path: Path) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file" + (" (a broken symbolic link)" if os.path.islink(path) else "")) from None
    except OSError as exc:
        raise InputError(f"cannot open it ({os_error_reason(exc)})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError("not a regular file")  # a FIFO would block the reader forever
    if info.st_size == 0:
        raise InputError("empty file (0 bytes)")


def _check_shape(w: int, h: int, size: int) -> None:
    if w < 1 or h < 1:
        raise InputError(f"image is {w}x{h} px: no pixels")
    shorter, longer = min(w, h), max(w, h)
    scaled_longer = max(size, int(size * longer / shorter))
    if scaled_longer > MAX_ASPECT_RATIO * size:
        raise InputError(f"image is {w}x{h} px, too thin: with its shorter side scaled to {size} px the longer side "
                         f"would be {scaled_longer} px (limit {MAX_ASPECT_RATIO} x {size}); the shorter side must "
                         f"be at least {math.ceil(longer / MAX_ASPECT_RATIO)} px")


def _to_channels(image, channels: int):
    from PIL import Image

    transparency = image.info.get("transparency")
    if image.mode in _WIDE_GREY_MODES:  # 16-bit greyscale PNG/TIFF: full range onto 0..255, not clipped
        wide = np.asarray(image).astype(np.int64)
        grey = Image.fromarray(np.rint(np.clip(wide, 0, 65535) / 257.0).astype(np.uint8), "L")
        if isinstance(transparency, int):
            alpha = Image.fromarray(np.where(wide == transparency, 0, 255).astype(np.uint8), "L")
            grey = Image.merge("LA", (grey, alpha))
        image = grey
    elif image.mode in _ALPHA_MODES or transparency is not None:
        rgba = image.convert("RGBA")  # palette/RGB/L with a transparent colour: that colour gets alpha 0
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode == "LA":
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
    return image.convert("RGB" if channels == 3 else "L")
