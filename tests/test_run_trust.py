"""Runs a user can trust (issue 16), the output folder and the inputs: a rerun with other settings is refused
naming the difference, one writer per folder (real processes), --overwrite removes an earlier run's extra
outputs, an output folder that is or holds an input folder is refused, listing never crashes or drops an input
silently, decoding refuses what it cannot read whole, and a setup error leaves no folder behind.

The rest of the issue's tests: test_run_trust_report.py (what is printed, index.html, installed names, Ctrl-C,
Ray) and test_train_cli.py (train, export, checkpoints).
"""
from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI, counts_line, files_of, translate, write_image, write_images  # noqa: E402
from PIL import Image

from munit_rt.cli.common import EXIT_OK, EXIT_SOME_INPUTS_FAILED, EXIT_USAGE



def one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def everything(root: Path) -> list[str]:
    """Every file and folder under `root`, the run's own files included."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def two_inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    write_image(folder / "b.png", seed=2, size=(36, 32))
    return folder


# -- 1. the run record -------------------------------------------------------------------------------------
def test_rerun_with_another_seed_is_refused_naming_the_difference(model, two_inputs, tmp_path):
    out = tmp_path / "out"
    assert translate(model, two_inputs, "-s", 2, "--seed", 1, "-o", out)[0] == EXIT_OK
    first = files_of(out)
    code, output = translate(model, two_inputs, "-s", 2, "--seed", 2, "-o", out)
    assert code == EXIT_USAGE
    line = one_line_error(output)
    assert "seed 1 -> 2" in line and "--overwrite" in line and "another -o" in line, line
    assert files_of(out) == first  # nothing was touched
    code, output = translate(model, two_inputs, "-s", 2, "--seed", 2, "--overwrite", "-o", out)
    assert code == EXIT_OK and "2 translated" in counts_line(output), output
    assert files_of(out) != first and set(files_of(out)) == set(first)
    code, output = translate(model, two_inputs, "-s", 2, "--seed", 2, "-o", out)  # the new record resumes
    assert code == EXIT_OK and "0 translated, 2 already done" in counts_line(output), output


def test_overwrite_removes_the_earlier_runs_extra_styles(model, two_inputs, tmp_path):
    out = tmp_path / "out"
    assert translate(model, two_inputs, "-s", 10, "-o", out)[0] == EXIT_OK
    assert (out / "a" / "style_09.png").is_file()
    code, output = translate(model, two_inputs, "--overwrite", "--styles", 3, "-o", out)
    assert code == EXIT_OK, output
    for name in ("a", "b"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["style_00.png", "style_01.png", "style_02.png"]


# -- 2. one writer per output folder (real processes) --------------------------------------------------------
def test_second_run_names_the_first_ones_pid_and_a_killed_run_is_taken_over(model, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    write_images(inputs, 300, size=(32, 32))
    args = ["translate", "-m", str(model), str(inputs), "-s", "1", "-o", str(out)]
    first = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock, deadline = out / ".munit-rt.lock", time.monotonic() + 120
        while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)  # holds the lock for as long as the test needs
        assert first.poll() is None
        second = subprocess.run(CLI + args + ["--seed", "9"], capture_output=True, text=True, timeout=120)
        assert second.returncode == EXIT_USAGE, second.stderr
        line = one_line_error(second.stderr)
        assert f"is being written by another munit-rt run (PID {first.pid})" in line, line
    finally:
        first.kill()  # SIGKILL: the kernel drops its lock, the lock file stays behind
        first.wait()
    third = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300)
    assert third.returncode == EXIT_OK, third.stderr
    assert "300 inputs:" in counts_line(third.stderr) and " 0 failed" in counts_line(third.stderr)
    assert len(files_of(out)) == 300


# -- 3. inputs and outputs: listing never crashes, never drops silently ---------------------------------------
def test_input_folder_as_output_is_one_line_and_creates_nothing(model, two_inputs):
    before = everything(two_inputs)
    code, output = translate(model, two_inputs, "-o", two_inputs)
    assert code == EXIT_USAGE
    assert "is the input folder" in one_line_error(output)
    assert everything(two_inputs) == before


def test_input_folder_inside_the_output_folder_is_refused(model, tmp_path):
    out = tmp_path / "out"
    write_image(out / "in" / "a.png", seed=1)
    before = everything(out)
    code, output = translate(model, out / "in", "-o", out)
    assert code == EXIT_USAGE
    assert "holds the input folder" in one_line_error(output)
    assert everything(out) == before


def test_symlink_loop_beside_a_good_image_is_listed_and_the_good_one_translated(model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "good.png", seed=1)
    (folder / "loop.png").symlink_to("loop.png")  # resolving it never ends
    code, output = translate(model, folder, "-s", 1, "-o", tmp_path / "out")
    assert code == EXIT_SOME_INPUTS_FAILED, output
    assert "2 inputs: 1 translated, 0 already done, 1 failed" in counts_line(output)
    assert "  loop.png: cannot open it (a symbolic link loop)" in output.splitlines()
    assert (tmp_path / "out" / "good" / "style_00.png").is_file()


def test_file_under_a_40000_character_path_is_a_failure_line(model, tmp_path):
    """Deeper than PATH_MAX: made one folder at a time through folder descriptors."""
    root = tmp_path / "in"
    write_image(root / "top.png", seed=1)
    fd, length = os.open(root, os.O_RDONLY), len(str(root))
    try:
        while length < 40_000:
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, length = inner, length + 251
        image = os.open("deep.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (9, 99, 199)).save(buffer, "PNG")
        os.write(image, buffer.getvalue())
        os.close(image)
    finally:
        os.close(fd)
    code, output = translate(model, root, "-r", "-s", 1, "-o", tmp_path / "out")
    assert code == EXIT_SOME_INPUTS_FAILED, output[-2000:]
    failed = [line for line in output.splitlines() if "the path is too long for the file system" in line]
    assert len(failed) == 1 and failed[0].startswith("  ddd") and "cannot list this folder" in failed[0]
    assert (tmp_path / "out" / "top" / "style_00.png").is_file()


# -- 4. decoding refuses what it cannot read whole ----------------------------------------------------------
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def short_idat_png(rows: int = 10, size: int = 64) -> bytes:
    """A 64x64 RGB PNG whose (cleanly ended) zlib stream holds only `rows` rows: Pillow pads the rest black."""
    pixels = np.random.default_rng(0).integers(0, 256, (rows, 1 + 3 * size), dtype=np.uint8)
    pixels[:, 0] = 0  # filter type None
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(pixels.tobytes()))
            + _chunk(b"IEND", b""))


def short_scan_jpeg() -> bytes:
    """A JPEG whose scan data stops a third of the way, followed by an end-of-image marker."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    start, end = data.index(b"\xff\xda"), data.rindex(b"\xff\xd9")
    return data[:start + (end - start) // 3] + b"\xff\xd9"


def test_truncated_and_32_bit_inputs_are_refused_never_padded(model, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "good.png", seed=3)
    (folder / "short_idat.png").write_bytes(short_idat_png())
    (folder / "short_scan.jpg").write_bytes(short_scan_jpeg())
    Image.fromarray(np.full((32, 32), 0.5, np.float32), "F").save(folder / "float.tif")
    Image.fromarray(np.full((32, 32), 70000, np.int32), "I").save(folder / "int32.tif")
    with Image.open(folder / "short_idat.png") as padded:  # the danger: Pillow alone reads both without an error
        padded.load()
    with Image.open(folder / "short_scan.jpg") as padded:
        padded.load()
    code, output = translate(model, folder, "-s", 1, "-o", tmp_path / "out")
    assert code == EXIT_SOME_INPUTS_FAILED, output
    assert "5 inputs: 1 translated, 0 already done, 4 failed" in counts_line(output)
    lines = output.splitlines()
    assert "  short_idat.png: truncated image data, refused (its image data holds 10 of its 64 rows); the file " \
           "is incomplete" in lines
    assert any(line.startswith("  short_scan.jpg: truncated image data, refused (its scan data ends early")
               for line in lines), output
    assert "  float.tif: a 32-bit floating-point TIFF: its value range is not defined, so it is refused; convert " \
           "it to 8- or 16-bit first" in lines
    assert any(line.startswith("  int32.tif: a 32-bit integer TIFF: its value range is not defined") for line in lines)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["good"]


def test_corrupt_exif_becomes_a_note_not_stderr_noise(model, tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 50  # ImageDescription, whose byte count is then made to point past the end
    data = bytearray(exif.tobytes())
    entry = data.index(b"\x01\x0e\x00\x02")
    struct.pack_into(">I", data, entry + 4, 100000)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "exif.jpg", exif=bytes(data))
    result = subprocess.run(CLI + ["translate", "-m", str(model), str(folder), "-s", "1", "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_OK, result.stderr
    lines = result.stderr.splitlines()
    assert "notes:" in lines and "  exif.jpg: Tag data larger than file. Skipping tag 270" in lines, result.stderr
    assert "Warning" not in result.stderr and "warn" not in result.stderr


# -- 6. a setup error leaves nothing behind ------------------------------------------------------------------
def test_backend_that_cannot_open_leaves_no_output_folder(model, two_inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails, whatever is installed
    out = tmp_path / "new" / "out"
    code, output = translate(model, two_inputs, "--backend", "tensorrt", "-o", out)
    assert code == EXIT_USAGE and "tensorrt" in one_line_error(output)
    assert not (tmp_path / "new").exists()


def test_unreadable_style_image_leaves_no_output_folder(model, two_inputs, tmp_path):
    reference = tmp_path / "ref.png"
    reference.write_bytes(b"not a png")
    out = tmp_path / "out"
    code, output = translate(model, two_inputs, "--style-image", reference, "-o", out)
    assert code == EXIT_USAGE and "style image" in one_line_error(output)
    assert not out.exists()
