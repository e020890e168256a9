"""Is an image file's data whole? Pillow pads what it cannot decode in two cases; both are refused here.

PNG: a zlib stream that ends cleanly but holds fewer rows than the header says (a short IDAT) decodes without
an error, the missing rows black. The check decompresses the IDAT chunks and counts the bytes against the
size the header implies (rows x (1 filter byte + row bytes), per Adam7 pass for interlaced images).

JPEG: scan data cut short, with an end-of-image marker after it, decodes without an error, the rest flat
grey (libjpeg's "premature end of data segment" warning, which Pillow does not surface). The check decodes the
file once more at 1/8 scale with simplejpeg in strict mode (every coefficient is still parsed, ~1/10 of a
full decode) and refuses that warning; libjpeg's other warnings (extraneous bytes, ...) are returned as notes.
"""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


class Incomplete(ValueError):
    """The file's image data is shorter than its header promises."""


def check_png(data: bytes) -> None:
    """Incomplete when the IDAT data decompresses to fewer bytes than the header's size needs."""
    pos, header, stream = 8, None, zlib.decompressobj()
    produced = 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR" and len(body) >= 13:
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            produced += len(stream.decompress(body, 1 << 24))  # enough for what one chunk can expand to here
            while stream.unconsumed_tail:
                produced += len(stream.decompress(stream.unconsumed_tail, 1 << 24))
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        return  # not a PNG we understand: Pillow decides
    width, height, depth, colour, _, _, interlace = header
    bits = depth * _PNG_CHANNELS.get(colour, 1)
    if interlace:
        passes = [(math.ceil(max(0, width - x) / dx), math.ceil(max(0, height - y) / dy)) for x, y, dx, dy in _ADAM7]
    else:
        passes = [(width, height)]
    expected = sum(h * (1 + math.ceil(w * bits / 8)) for w, h in passes if w and h)
    if produced < expected:
        rows = produced // (1 + math.ceil(width * bits / 8)) if not interlace else None
        got = f"{rows} of its {height} rows" if rows is not None else f"{produced} of {expected} bytes"
        raise Incomplete(f"its image data holds {got}")


def check_jpeg(data: bytes) -> list[str]:
    """Incomplete for scan data cut short; libjpeg's other warnings as notes. Files simplejpeg cannot decode
    at all (CMYK, arithmetic coding) are left to Pillow."""
    try:
        import simplejpeg
    except ImportError:  # a missing dependency: Pillow alone decides (the package requires simplejpeg)
        return []
    try:
        simplejpeg.decode_jpeg(data, colorspace="gray", min_height=1, min_width=1, strict=True)
    except ValueError as exc:
        message = str(exc).strip()
        if "premature end" in message.lower():
            raise Incomplete(f"its scan data ends early ({message})") from None
        if message.lower().startswith(("corrupt jpeg data", "warning")):
            return [message]
    except Exception:  # noqa: BLE001 - unsupported by simplejpeg (e.g. CMYK): Pillow's decode decides
        return []
    return []


def check_whole(path: Path, image_format: str | None) -> list[str]:
    """Raise Incomplete for a PNG or JPEG whose image data is shorter than its header; return notes."""
    if image_format not in ("PNG", "JPEG", "MPO"):
        return []
    data = Path(path).read_bytes()
    if image_format == "PNG":
        check_png(data)
        return []
    return check_jpeg(data)
