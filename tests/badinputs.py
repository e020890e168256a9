"""Bad, odd and hostile inputs for `munit-rt translate`, built in a temporary folder (no downloads).

One function per case: `make_<case>(folder) -> Path` writes the case under `folder` and returns the input
path (the file, or for folder cases the subfolder). `build_all(folder)` writes every case into one folder and
returns {case: path}. Sizes assume the tiny test bundle (preprocess size 32, multiple 4); pixel values are
chosen so that the expected conversion can be checked exactly (or within JPEG's error) in the contact
sheet's first tile, which shows the input as the model saw it.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
# 16-bit grey values and what they must become: round(v / 257), i.e. 257 * k -> k, 65535 -> 255, no clipping
WIDE_VALUES = np.array([0, 257, 1000, 32896, 65280, 65535], dtype=np.uint16)
WIDE_EXPECTED = np.array([0, 1, 4, 128, 254, 255], dtype=np.uint8)
NON_UTF8_NAME = b"caf\xe9_latin1.png"  # Latin-1 bytes: not valid UTF-8
UNICODE_NAME = "café_北京.png"


def _png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def _halves(left, right, size=(32, 32), mode="RGB") -> Image.Image:
    """Left half one colour, right half another (W x H = size)."""
    image = Image.new(mode, size, left)
    image.paste(Image.new(mode, (size[0] - size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return image


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height RGB but holds a single tiny IDAT: only the header is real."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# -- refused -----------------------------------------------------------------------------------------------
def make_truncated_jpeg(folder: Path) -> Path:
    """A JPEG cut in half: Pillow raises 'image file is truncated'; munit-rt refuses it (never sets
    LOAD_TRUNCATED_IMAGES, which would silently fill the missing part with grey)."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return _write(folder / "truncated.jpg", buffer.getvalue()[: len(buffer.getvalue()) // 2])


def make_zero_bytes(folder: Path) -> Path:
    """An empty file with an image extension."""
    return _write(folder / "empty.png", b"")


def make_text_as_png(folder: Path) -> Path:
    """A text file named .png."""
    return _write(folder / "notes.png", "these are not pixels\n".encode() * 20)


def make_postscript_as_jpg(folder: Path) -> Path:
    """PostScript named .jpg: Pillow could open EPS through Ghostscript (running a program on the file);
    munit-rt decodes only JPEG/PNG/BMP/WebP/GIF/TIFF, so it is refused as not an image."""
    return _write(folder / "drawing.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n")


def make_thin(folder: Path) -> Path:
    """1 x 300 px: scaled to a shorter side of 32 it would be 9600 px long (over 10 x 32): refused, naming the
    minimum shorter side (30 px)."""
    return _write(folder / "thin_1x300.png", _png_bytes(Image.new("RGB", (1, 300), RED)))


def make_bomb_error(folder: Path) -> Path:
    """A PNG header declaring 20000 x 20000 (400 MP > 2 x MAX_IMAGE_PIXELS): Pillow's DecompressionBombError."""
    return _write(folder / "bomb_error.png", _png_header_only(20000, 20000))


def make_bomb_warning(folder: Path) -> Path:
    """10000 x 10000 (100 MP, between 1x and 2x MAX_IMAGE_PIXELS): Pillow only warns; munit-rt refuses."""
    return _write(folder / "bomb_warning.png", _png_header_only(10000, 10000))


def make_clash(folder: Path) -> Path:
    """clash.png and clash.jpg in one folder would both write outputs under 'clash': both are skipped."""
    _write(folder / "clash.jpg", _jpeg_bytes(Image.new("RGB", (32, 32), GREEN)))
    return _write(folder / "clash.png", _png_bytes(Image.new("RGB", (32, 32), RED)))


def make_fifo(folder: Path) -> Path:
    """A named pipe called pipe.png: opening it would block forever; refused as not a regular file."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "pipe.png")
    return folder / "pipe.png"


def make_broken_link(folder: Path) -> Path:
    """A symbolic link named dangling.png to a file that does not exist."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dangling.png").symlink_to(folder / "no-such-target.png")
    return folder / "dangling.png"


# -- translated after a conversion ------------------------------------------------------------------------
def _jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def make_png_named_jpg(folder: Path) -> Path:
    """A 40 x 32 PNG named .jpg: decoded by content, translated (output 40 x 32)."""
    return _write(folder / "really_png.jpg", _png_bytes(_halves(RED, BLUE, size=(40, 32))))


def make_cmyk_jpeg(folder: Path) -> Path:
    """A CMYK JPEG of pure red (C=0, M=Y=255, K=0): converted to RGB (255, 0, 0) within JPEG error."""
    return _write(folder / "cmyk.jpg", _jpeg_bytes(Image.new("CMYK", (32, 32), (0, 255, 255, 0))))


def make_png_16bit(folder: Path) -> Path:
    """A 16-bit greyscale PNG (mode I;16), one column band per value of WIDE_VALUES: each must become
    WIDE_EXPECTED (round(v / 257)), not be clipped to 255 or shifted."""
    columns = np.repeat(WIDE_VALUES, 32 // len(WIDE_VALUES) + 1)[:32]
    image = Image.fromarray(np.tile(columns, (32, 1)).astype(np.uint16))
    assert image.mode == "I;16"
    return _write(folder / "grey16.png", _png_bytes(image))


def make_rgba(folder: Path) -> Path:
    """RGBA: left half red but fully transparent (-> white), right half opaque blue (-> blue)."""
    image = _halves((255, 0, 0, 0), (0, 0, 255, 255), mode="RGBA")
    return _write(folder / "rgba.png", _png_bytes(image))


def make_la(folder: Path) -> Path:
    """LA (grey + alpha): left half black, transparent (-> white); right half black, opaque (-> black)."""
    image = _halves((0, 0), (0, 255), mode="LA")
    return _write(folder / "la.png", _png_bytes(image))


def make_palette(folder: Path) -> Path:
    """Palette PNG without transparency: left red, right green."""
    return _write(folder / "palette.png", _png_bytes(_halves(RED, GREEN).quantize(colors=2)))


def make_palette_transparent(folder: Path) -> Path:
    """Palette PNG whose index 0 (red, left half) is transparent (tRNS): left -> white, right stays green."""
    image = _halves(0, 1, mode="P")
    image.putpalette([*RED, *GREEN] + [0] * 762)
    return _write(folder / "palette_trns.png", _png_bytes(image, transparency=0))


def make_grey(folder: Path) -> Path:
    """8-bit greyscale (L) of value 100, into the 3-channel domain: (100, 100, 100)."""
    return _write(folder / "grey.png", _png_bytes(Image.new("L", (32, 32), 100)))


def make_rgb_quadrants(folder: Path) -> Path:
    """RGB with red, green, blue and white quadrants: into a 1-channel domain ITU-R 601 luma
    (Pillow's L = R*299/1000 + G*587/1000 + B*114/1000): 76, 150, 29, 255."""
    image = Image.new("RGB", (32, 32), WHITE)
    for colour, box in ((RED, (0, 0)), (GREEN, (16, 0)), (BLUE, (0, 16))):
        image.paste(Image.new("RGB", (16, 16), colour), box)
    return _write(folder / "quadrants.png", _png_bytes(image))


def make_exif_rotated(folder: Path) -> Path:
    """A JPEG stored 64 x 32 (left half red, right half blue) with EXIF orientation 6 (rotate 90 degrees
    clockwise to display): shown 32 x 64 with red on top, so the output is 32 wide and 64 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _write(folder / "rotated.jpg", _jpeg_bytes(_halves(RED, BLUE, size=(64, 32)), exif=exif.tobytes()))


def make_one_pixel(folder: Path) -> Path:
    """A 1 x 1 image: scaled up to 32 x 32, one colour."""
    return _write(folder / "one_pixel.png", _png_bytes(Image.new("RGB", (1, 1), (10, 200, 30))))


def make_animated_gif(folder: Path) -> Path:
    """An animated GIF, frames red then green: the first frame (red) is translated."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, GREEN)]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return _write(folder / "animated_gif.gif", buffer.getvalue())


def make_animated_webp(folder: Path) -> Path:
    """An animated lossless WebP, frames red then green: the first frame (red) is translated."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, GREEN)]
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    return _write(folder / "animated_webp.webp", buffer.getvalue())


def make_large_jpeg(folder: Path) -> Path:
    """A 4000 x 3000 JPEG (smooth, so small on disk): decoded in draft mode at 1/8 (500 x 375), never at full
    size; output 40 x 32 (42 x 32 after scaling, cropped to a multiple of 4)."""
    x = np.linspace(0, 255, 4000, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, 3000, dtype=np.float32)[:, None, None]
    pixels = np.concatenate([np.broadcast_to(x, (3000, 4000, 1)), np.broadcast_to(y, (3000, 4000, 1)),
                             np.full((3000, 4000, 1), 128, np.float32)], axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=75)
    return _write(folder / "large_4000x3000.jpg", buffer.getvalue())


def make_non_utf8_name(folder: Path) -> Path:
    """A file whose name is not valid UTF-8 (Latin-1 'café'): os.fsdecode gives 'caf\\udce9...'; the outputs
    use the same bytes, the log shows 'caf\\xe9...'."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = os.path.join(os.fsencode(folder), NON_UTF8_NAME)
    with open(raw, "wb") as fh:
        fh.write(_png_bytes(Image.new("RGB", (32, 32), GREEN)))
    return Path(os.fsdecode(raw))


def make_non_utf8_broken(folder: Path) -> Path:
    """A text file with a non-UTF-8 name (b'bad_\\xff.png'): refused, and the log line must still print
    (as 'bad_\\xff.png') instead of crashing on the undecodable name."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = os.path.join(os.fsencode(folder), b"bad_\xff.png")
    with open(raw, "wb") as fh:
        fh.write(b"not an image")
    return Path(os.fsdecode(raw))


def make_unicode_name(folder: Path) -> Path:
    """A UTF-8 name with accents and CJK characters."""
    return _write(folder / UNICODE_NAME, _png_bytes(Image.new("RGB", (32, 32), BLUE)))


def make_same_name_in_subfolders(folder: Path) -> Path:
    """dup/a/cat.png and dup/b/cat.png: with --recursive they write dup/a/cat/ and dup/b/cat/, no collision."""
    _write(folder / "dup" / "a" / "cat.png", _png_bytes(Image.new("RGB", (32, 32), RED)))
    _write(folder / "dup" / "b" / "cat.png", _png_bytes(Image.new("RGB", (32, 32), GREEN)))
    return folder / "dup"


def make_symlink_loop(folder: Path) -> Path:
    """loop/inner.png plus loop/up -> .. (a link to an ancestor): --recursive must end and read each real
    folder once (inner.png translated once, never as loop/up/loop/inner.png)."""
    _write(folder / "loop" / "inner.png", _png_bytes(Image.new("RGB", (32, 32), RED)))
    (folder / "loop" / "up").symlink_to("..", target_is_directory=True)
    return folder / "loop"


CASES = {name.removeprefix("make_"): func for name, func in globals().items() if name.startswith("make_")}


def build_all(folder: Path) -> dict[str, Path]:
    """Every case above in `folder` (the FIFO too: only where the OS has mkfifo)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: make(folder) for name, make in CASES.items() if name != "fifo" or hasattr(os, "mkfifo")}
