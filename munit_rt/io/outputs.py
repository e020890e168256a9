"""Where outputs go (layouts), how they are written (atomically), contact sheets and index.html.

Layouts, for an input `sub/cat.jpg` and S styles:
  nested    OUT/sub/cat/style_00.png ... style_{S-1}.png          (default; one folder per input)
  official  OUT_00/sub/cat.png ... OUT_{S-1}/sub/cat.png           (NVlabs test_batch.py: a sibling
                                                                    folder per style, f"{OUT}_{j:02d}")
With --grid, both layouts add OUT/sub/cat/grid.png (input, then the styles, one row) and OUT/index.html.
Other families: one output per input (CycleGAN, StarGAN --attrs) is OUT/sub/cat.png nested (OUT_00/sub/cat.png
official); a StarGAN sweep is OUT/sub/cat/<attribute>.png nested (OUT_00 ... in attribute order, official).

No partial or lost output: every file is written to `.NAME.tmp-PID` in its own folder and renamed into place
(os.replace, atomic), so a final name always holds a complete file, even after Ctrl-C or `kill -9`. Temporary
files of a run that was killed are never taken for outputs or inputs (hidden names) and the next run removes
them (`clean_stale_temps`: only files of that exact pattern, in this run's output folders, whose PID is no
longer running here). A full disk, an exceeded quota or a file system turned read-only stops the run with
`OutputError` (exit 2): further writes would fail too. Completed files are kept; the temporary file is removed.
Files are not fsync'ed: a rename is atomic against a crash of the process, not necessarily of the machine.
"""
from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

import numpy as np

from munit_rt.errors import InputError, MunitRtError
from munit_rt.text import printable

LAYOUTS = ("nested", "official")
FORMATS = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 95})}
GRID_NAME = "grid.png"
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")  # write_atomic's temporary names
# errno -> why no later write can succeed either (the run stops instead of failing every remaining input)
FATAL_WRITE_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                      errno.EROFS: "the file system is read-only"}
_COMPLETE_TAILS = {".png": b"\x00\x00\x00\x00IEND\xaeB`\x82", ".jpg": b"\xff\xd9"}  # last bytes of a whole file


class OutputError(MunitRtError):
    """Writing outputs cannot go on (disk full, quota, read-only file system): the run stops, exit 2."""


def output_key(relpath: str) -> str:
    """An input's relative path without its extension: the name its outputs are filed under."""
    return str(PurePosixPath(relpath).with_suffix(""))


class OutputLayout:
    """`names`: nested file names of the outputs (default style_00 ...; StarGAN sweeps: the attributes).
    `single`: one output per input, written nested as OUT/sub/cat.png (CycleGAN, StarGAN --attrs)."""

    def __init__(self, root: Path, layout: str, num_styles: int, image_format: str = "png", grid: bool = False,
                 names: list[str] | None = None, single: bool = False):
        if layout not in LAYOUTS:
            raise InputError(f"unknown layout {layout!r} (expected {' or '.join(LAYOUTS)})")
        if image_format not in FORMATS:
            raise InputError(f"unknown image format {image_format!r} (expected {' or '.join(FORMATS)})")
        self.root, self.layout, self.num_styles = Path(root), layout, num_styles
        self.image_format, self.grid = image_format, grid
        self.names = list(names) if names is not None else [f"style_{j:02d}" for j in range(num_styles)]
        self.single = single and num_styles == 1

    def style_paths(self, relpath: str) -> list[Path]:
        key, ext = output_key(relpath), self.image_format
        if self.layout == "nested" and self.single:
            return [self.root / f"{key}.{ext}"]
        if self.layout == "nested":
            return [self.root / key / f"{name}.{ext}" for name in self.names]
        return [self.style_root(j) / f"{key}.{ext}" for j in range(self.num_styles)]

    def style_root(self, index: int) -> Path:
        return self.root.with_name(f"{self.root.name}_{index:02d}")

    def grid_path(self, relpath: str) -> Path:
        return self.root / output_key(relpath) / GRID_NAME

    def sheet_clashes(self, relpaths: Iterable[str]) -> dict[str, str]:
        """{relpath: other} for inputs whose output file is another input's contact sheet. Only one
        output per input, nested, with --grid can do that: OUT/sub/cat/grid.png is both the sheet of
        sub/cat.png and the translation of sub/cat/grid.png."""
        if not (self.grid and self.single and self.layout == "nested" and self.image_format == "png"):
            return {}
        keys = {output_key(relpath): relpath for relpath in relpaths}
        suffix = "/" + PurePosixPath(GRID_NAME).stem
        return {relpath: keys[key[:-len(suffix)]] for key, relpath in keys.items()
                if key.endswith(suffix) and key[:-len(suffix)] in keys}

    def all_paths(self, relpath: str) -> list[Path]:
        return self.style_paths(relpath) + ([self.grid_path(relpath)] if self.grid else [])

    def roots(self) -> list[Path]:
        """Every folder this run writes under (to keep them out of the inputs, and to check writability)."""
        roots = [self.root] if self.layout == "nested" or self.grid else []
        if self.layout == "official":
            roots += [self.style_root(j) for j in range(self.num_styles)]
        return roots

    def is_complete(self, relpath: str) -> bool:
        """Every output of `relpath` exists whole (--resume skips it). Our writes are atomic, so existing means
        complete; the end-of-file check (PNG IEND chunk, JPEG EOI marker) also catches files cut short by
        other means (a copy, a crash of the machine)."""
        return all(file_is_complete(path) for path in self.all_paths(relpath))

    def folders(self, relpaths: Iterable[str]) -> Iterator[Path]:
        """The roots, then the folders the outputs of `relpaths` go to. Streamed, holding nothing per input:
        a folder is skipped when the previous input used it too (inputs come sorted, so the official layout's
        shared folders are listed about once, not once per input)."""
        yield from self.roots()
        previous: set[Path] = set()
        for relpath in relpaths:
            current = {path.parent for path in self.all_paths(relpath)}
            yield from sorted(current - previous)
            previous = current


def file_is_complete(path: Path) -> bool:
    tail = _COMPLETE_TAILS.get(path.suffix.lower())
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if tail is None:
                return size > 0
            if size < len(tail):
                return False
            fh.seek(-len(tail), os.SEEK_END)
            return fh.read(len(tail)) == tail
    except OSError:  # missing, a folder, unreadable: not a complete output
        return False


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # PermissionError: someone else's live process
    return True


def clean_stale_temps(folders: Iterable[Path]) -> list[Path]:
    """Remove write_atomic's temporary files left in `folders` by runs that were killed (their PID is gone)."""
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not created yet (the usual case) or unreadable
            continue
        for entry in entries:
            match = TEMP_PATTERN.match(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not _pid_running(int(match["pid"])):
                try:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
                except FileNotFoundError:
                    pass
    return removed


def make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns the folders created, outermost first (remove_folders
    takes them away again). On an OSError, raised as is, none of them is left."""
    missing = []
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing.append(path)
    created = list(reversed(missing))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        remove_folders(created)
        raise
    return created


def remove_folders(created: list[Path]) -> None:
    """Remove folders make_folders created, innermost first, as long as they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break


def prepare_roots(layout: OutputLayout) -> None:
    """Create the output folders and prove they are writable, before any work starts."""
    for root in layout.roots():
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-test.tmp-{os.getpid()}"  # the temporary-file pattern: cleaned if we die here
            _write_file(probe, b"")
            probe.unlink()
        except OSError as exc:
            raise InputError(f"output folder {root} is not writable ({exc.strerror or exc})") from None


def _write_file(path: Path, data: bytes) -> None:
    """The one place output bytes hit the disk (tests replace it to simulate a full disk)."""
    with open(path, "wb") as fh:  # close() raises too when the last flush fails
        fh.write(data)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a file.

    On any error the temporary file is removed and `path` is untouched (a previous complete version stays);
    a full disk, quota or read-only file system raises OutputError, which stops the run.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_file(tmp, data)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in FATAL_WRITE_ERRORS:
            raise OutputError(f"{FATAL_WRITE_ERRORS[exc.errno]}: cannot write {_shown(path)} (in folder "
                              f"{_shown(path.parent)}); the run stopped, outputs written so far are complete "
                              "and kept: free space, then run the same command again (--resume skips them)") \
                from None
        raise
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # e.g. the folder vanished; nothing of ours is left to remove


def _shown(path: Path) -> str:
    return printable(str(path))


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


def remove_outputs(paths: Iterable[Path]) -> int:
    """Delete these output files (an earlier run's that this run will not write), and folders left empty."""
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        for folder in path.parents:
            try:
                folder.rmdir()  # only if empty; the run's roots stay (they hold the record or other outputs)
            except OSError:
                break
    return removed
