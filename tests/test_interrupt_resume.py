"""No partial or lost output: a real `munit-rt translate` process killed part-way (SIGINT, SIGTERM, SIGKILL)
leaves only complete files, the next run cleans its temporary files and finishes with exactly the bytes of an
uninterrupted run; a full disk stops the run (exit 2) with nothing half-written; a read-only output is exit 2.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import translate, files_of  # noqa: E402
from PIL import Image

from munit_rt.cli.common import EXIT_OK, EXIT_USAGE
from munit_rt.io.outputs import TEMP_PATTERN

REPO = Path(__file__).resolve().parents[1]
N_INPUTS, STYLES = 24, 3
ARGS = ["-s", str(STYLES), "-b", "1", "--seed", "5"]

# `munit-rt translate` with each rename in munit_rt.io.outputs delayed: a writer thread spends most of its time
# holding a finished temporary file, so a kill lands mid-write, and the run lasts long enough to interrupt.
SLOW_CLI = """
import os, sys, time
import munit_rt.io.outputs as outputs

class SlowRename:
    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def replace(src, dst):
        time.sleep(float(os.environ["SLOW_RENAME_S"]))
        os.replace(src, dst)

outputs.os = SlowRename()
from munit_rt.cli import main
main()
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("interrupt") / "in"
    folder.mkdir()
    for i in range(N_INPUTS):
        pixels = np.random.default_rng(i).integers(0, 256, (32, 32 + 4 * (i % 3), 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def reference(model, inputs, tmp_path_factory) -> dict[str, bytes]:
    """The files of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "out"
    code, output = translate(model, inputs, *ARGS, "-o", out)
    assert code == EXIT_OK, output
    return files_of(out)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if TEMP_PATTERN.match(p.name)]


def final_pngs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.png") if not p.name.startswith(".")]


def assert_all_complete(root: Path) -> None:
    for path in final_pngs(root):
        with Image.open(path) as image:
            image.load()  # raises on a truncated file


def start_slow_run(model: Path, inputs: Path, out: Path, rename_s: float) -> subprocess.Popen:
    env = {**os.environ, "SLOW_RENAME_S": str(rename_s),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("MUNIT_RT_MODEL", None)
    log = open(out.parent / "killed-run.log", "wb")
    return subprocess.Popen([sys.executable, "-c", SLOW_CLI, "translate", "--model", str(model), *ARGS,
                             "-o", str(out), str(inputs)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            # a shell's background job ignores SIGINT and children inherit that: undo it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_outputs(out: Path, count: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(final_pngs(out)) < count if out.exists() else True:
        assert proc.poll() is None, (out.parent / "killed-run.log").read_text(errors="replace")
        assert time.monotonic() < deadline, "the run wrote no outputs in time"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killed_run_leaves_only_complete_files_and_resumes_to_the_same_bytes(model, inputs, reference, tmp_path,
                                                                             sig):
    out = tmp_path / "out"
    proc = start_slow_run(model, inputs, out, rename_s=0.2)  # ~3 s left to interrupt, even on a loaded machine
    try:
        wait_for_outputs(out, 2 * STYLES, proc)
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "killed-run.log").read_text(errors="replace")
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130), log
    if sig != signal.SIGKILL:
        assert "Interrupted: " in log and "Traceback" not in log
        assert f"to go on, run: munit-rt translate --model {model} " in log and f"--output {out} " in log
        assert temp_files(out) == []  # running writes finished, queued ones were dropped
    done = final_pngs(out)
    assert 0 < len(done) < len(reference), "the kill did not land part-way"
    assert_all_complete(out)  # every file under a final name is whole, whatever the signal
    for path in done:
        assert path.read_bytes() == reference[path.relative_to(out).as_posix()]
    leftovers = temp_files(out)  # after SIGKILL: the files being written at that moment, under temporary names

    code, output = translate(model, inputs, *ARGS, "-o", out)  # --resume is the default
    assert code == EXIT_OK, output
    complete_inputs = sum(all((out / f"img_{i:02d}" / f"style_{j:02d}.png").is_file() for j in range(STYLES))
                          for i in range(N_INPUTS))
    assert complete_inputs == N_INPUTS
    assert "already done" in output and f"{N_INPUTS} inputs: 0 translated" not in output
    assert temp_files(out) == [] and not any(p.exists() for p in leftovers)
    assert files_of(out) == reference  # byte for byte, temporary files gone


def test_stale_temp_files_are_removed_only_when_their_process_is_gone(model, inputs, reference, tmp_path):
    out = tmp_path / "out"
    assert translate(model, inputs, *ARGS, "-o", out)[0] == EXIT_OK
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = out / "img_00" / f".style_00.png.tmp-{dead_pid}"
        live = out / "img_01" / f".style_00.png.tmp-{alive.pid}"
        stale.write_bytes(b"\x89PNG half")
        live.write_bytes(b"\x89PNG being written by a live run")
        code, output = translate(model, inputs, *ARGS, "-o", out)
        assert code == EXIT_OK and f"{N_INPUTS} inputs: 0 translated, {N_INPUTS} already done" in output
        assert not stale.exists() and live.exists()
    finally:
        alive.kill()
        alive.wait()


def test_resume_redoes_an_output_cut_short_by_other_means(model, inputs, reference, tmp_path):
    """A final name holding a truncated PNG (an old copy, a machine crash): not complete, so redone."""
    out = tmp_path / "out"
    assert translate(model, inputs, *ARGS, "-o", out)[0] == EXIT_OK
    victim = out / "img_03" / "style_01.png"
    victim.write_bytes(victim.read_bytes()[:-20])
    code, output = translate(model, inputs, *ARGS, "-o", out)
    assert code == EXIT_OK and f"1 translated, {N_INPUTS - 1} already done" in output
    assert files_of(out) == reference
    assert f"{N_INPUTS} translated" in translate(model, inputs, *ARGS, "--overwrite", "-o", out)[1]
    assert files_of(out) == reference


# -- full disk, read-only output ------------------------------------------------------------------------------
def failing_writer(monkeypatch, error: int, after: int) -> dict[str, int]:
    """Replace the one function that writes output bytes: the first `after` writes succeed, later ones write
    half their data (a partial temporary file) and raise OSError(error)."""
    import munit_rt.io.outputs as outputs

    real = outputs._write_file
    calls = {"ok": 0, "failed": 0}

    def write(path: Path, data: bytes) -> None:
        if calls["ok"] >= after:
            calls["failed"] += 1
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 2])
            raise OSError(error, os.strerror(error), str(path))
        calls["ok"] += 1
        real(path, data)

    monkeypatch.setattr(outputs, "_write_file", write)
    return calls


def test_disk_full_stops_the_run_keeps_finished_outputs_and_leaves_nothing_partial(model, inputs, reference,
                                                                                   tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = failing_writer(monkeypatch, errno.ENOSPC, after=1 + 4 * STYLES)  # the writability probe + 4 inputs
    code, output = translate(model, inputs, *ARGS, "-o", out)
    assert code == EXIT_USAGE
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no space left on device: cannot write "), output
    assert f"(in folder {out}/img_" in lines[0] and "run the same command again" in lines[0]
    assert temp_files(out) == []  # the half-written temporary files were removed
    assert_all_complete(out)
    kept = final_pngs(out)
    assert len(kept) >= 4 * STYLES - 2 * STYLES  # finished inputs kept (a few writes may race the failure)
    assert calls["failed"] < (N_INPUTS - 4) * STYLES // 2, "the run went on writing after the disk was full"
    monkeypatch.undo()
    code, output = translate(model, inputs, *ARGS, "-o", out)  # space freed: the same command finishes the job
    assert code == EXIT_OK and "already done" in output
    assert files_of(out) == reference


def test_read_only_file_system_mid_run_stops_with_exit_2(model, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    failing_writer(monkeypatch, errno.EROFS, after=1 + STYLES)
    code, output = translate(model, inputs, *ARGS, "-o", out)
    assert code == EXIT_USAGE and "the file system is read-only: cannot write" in output
    assert len(output.strip().splitlines()) == 1 and temp_files(out) == []


def test_read_only_output_folder_is_one_line_exit_2(model, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    failing_writer(monkeypatch, errno.EROFS, after=0)  # the probe write fails, as on a read-only mount
    code, output = translate(model, inputs, *ARGS, "-o", out)
    assert code == EXIT_USAGE
    assert output.strip() == f"Error: output folder {out} is not writable (Read-only file system)"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permission bits do not stop root")
def test_read_only_output_folder_by_permissions(model, inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, output = translate(model, inputs, *ARGS, "-o", out)
    finally:
        out.chmod(0o755)
    assert code == EXIT_USAGE and output.strip() == f"Error: output folder {out} is not writable (Permission denied)"


def test_an_input_whose_files_finish_after_ctrl_c_is_counted(model, tmp_path, monkeypatch):
    """Ctrl-C while the calling thread waits for a write: the write still finishes (writes are atomic and run to
    the end), so its input must be counted as translated — the printed count is what is on disk."""
    import _thread

    import munit_rt.translate.local as local

    real = local.write_outputs

    def slow_write(*args, **kwargs):
        time.sleep(0.3)           # the calling thread is waiting for this write by now
        _thread.interrupt_main()  # Ctrl-C lands there
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "write_outputs", slow_write)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "one.png")
    code, output = translate(model, folder, "-s", 2, "-o", tmp_path / "out")
    assert code == 130, output
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in final_pngs(tmp_path / "out"))
    assert written == ["one/style_00.png", "one/style_01.png"]
    assert "Interrupted: 1 inputs translated in this run, their files complete" in output
