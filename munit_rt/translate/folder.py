"""The output folder of a `translate` run: one writer at a time, and a record of what the run writes.

    OUT/.munit-rt.lock          an advisory lock (fcntl.flock) held for the whole run, by the Ray driver too; a
                                second run into the same folder stops with the first one's PID. The kernel drops
                                the lock of a killed run, so the next run takes the folder over. (flock is
                                per host: runs on several machines sharing a network folder are not excluded.)
    OUT/.munit-rt-run.json      the run record: the bundle (its manifest's sha256), family, and every option that
                                changes the pixels (precision, size, layout, format, grid and the family's own:
                                direction, styles, seed, style source, labels ...), the outputs per input, and
                                the inputs. `--resume` continues a run only under the same record.
    OUT/.munit-rt-styles.npy    the shared style codes a run used (--style-dir, --style-image, --style-codes,
                                --synchronized), [S, style_dim] float32

Everything is written atomically. A run that fails during setup (before its first output) removes what it
created: the lock, the record and the folders it made.
"""
from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from munit_rt.errors import InputError
from munit_rt.io.outputs import OutputLayout, make_folders, remove_folders, write_atomic
from munit_rt.text import printable

LOCK_NAME = ".munit-rt.lock"
RECORD_NAME = ".munit-rt-run.json"
CODES_NAME = ".munit-rt-styles.npy"
RECORD_FORMAT = "munit-rt-run"


@dataclass
class RunRecord:
    """What decides a run's pixels (`settings`, compared on --resume) and what it writes (for --overwrite)."""

    settings: dict[str, Any]
    names: list[str]
    single: bool
    inputs: list[str] = field(default_factory=list)
    model: str = ""

    def to_json(self) -> bytes:
        data = {"format": RECORD_FORMAT, "version": 1, "model": self.model, "settings": self.settings,
                "outputs": {"names": self.names, "single": self.single}, "inputs": sorted(self.inputs)}
        return (json.dumps(data, indent=1, ensure_ascii=True) + "\n").encode("ascii")

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        """The record in a folder; None when there is none or it is not one of ours (treated as no record)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != RECORD_FORMAT:
                return None
            outputs = data["outputs"]
            return cls(dict(data["settings"]), [str(n) for n in outputs["names"]], bool(outputs["single"]),
                       [str(i) for i in data["inputs"]], str(data.get("model", "")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def differences(self, other: RunRecord) -> list[str]:
        """'key old -> new' for each setting that differs (both directions)."""
        keys = sorted(set(self.settings) | set(other.settings))
        return [f"{key} {_show(self.settings.get(key))} -> {_show(other.settings.get(key))}"
                for key in keys if self.settings.get(key) != other.settings.get(key)]


def _show(value: Any) -> str:
    text = "unset" if value is None else json.dumps(value, ensure_ascii=True) if not isinstance(value, str) \
        else value
    return printable(text if len(text) <= 40 else text[:37] + "...", control=True)


class RunFolder:
    """Claims `root` for one run: `with RunFolder(root) as folder:` takes the lock (creating the folder);
    leaving with an exception before `folder.started()` removes what this run created."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.created: list[Path] = []  # folders this run made, outermost first
        self._lock_fd: int | None = None
        self._started = False
        self._wrote: list[Path] = []

    def __enter__(self) -> RunFolder:
        try:
            self.created = make_folders(self.root)
        except OSError as exc:
            raise InputError(f"output folder {self.root} is not writable ({exc.strerror or exc})") from None
        self._lock()
        return self

    def _lock(self) -> None:
        import fcntl

        path = self.root / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            remove_folders(self.created)
            raise InputError(f"output folder {self.root} is not writable ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(f"output folder {self.root}: cannot take its lock ({exc.strerror or exc})") from None
            raise InputError(f"output folder {self.root} is being written by another munit-rt run (PID {holder}); "
                             "wait for it to finish, or choose another -o") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    def started(self) -> None:
        """Outputs are about to be written: from now on a failure keeps what is there (it can be resumed)."""
        self._started = True

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        write_atomic(path, data)
        self._wrote.append(path)
        return path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self._started:  # a setup error: leave nothing behind
            for path in self._wrote:
                path.unlink(missing_ok=True)
        if self._lock_fd is not None:
            (self.root / LOCK_NAME).unlink(missing_ok=True)  # while still held: no one else is mid-take-over
            os.close(self._lock_fd)
            self._lock_fd = None
        if exc_type is not None and not self._started:
            remove_folders(self.created)


def check_record(root: Path, record: RunRecord, resume: bool, has_outputs: bool) -> RunRecord | None:
    """The earlier run's record when this run may go on with it (resume) or replace it (overwrite); an
    InputError when --resume meets other settings, or outputs of an earlier munit-rt without a record."""
    earlier = RunRecord.read(root / RECORD_NAME)
    if not resume:
        return earlier
    if earlier is None:
        if has_outputs:
            raise InputError(f"output folder {printable(str(root), control=True)} holds outputs of a run without a "
                             "record (an earlier munit-rt version, or another tool): pass --overwrite to redo them, "
                             "or choose another -o")
        return None
    differences = earlier.differences(record)
    if differences:
        raise InputError(f"output folder {printable(str(root), control=True)} holds a run with other settings "
                         f"({'; '.join(differences)}): pass --overwrite to replace it, or choose another -o")
    return earlier


def stale_outputs(earlier: RunRecord | None, current: RunRecord, old_layout: OutputLayout | None,
                  layout: OutputLayout) -> list[Path]:
    """Files the earlier run wrote that this one will not write (--overwrite removes them)."""
    if earlier is None or old_layout is None:
        return []
    keep = {path for relpath in current.inputs for path in layout.all_paths(relpath)}
    return sorted({path for relpath in earlier.inputs for path in old_layout.all_paths(relpath)} - keep)


def save_codes(folder: RunFolder, codes: np.ndarray | None, compare_with: Path | None) -> None:
    """Keep the shared style codes beside the record; on resume, codes that differ from the stored ones (the
    reference images changed) are refused like any other setting."""
    if codes is None:
        return
    stored = folder.root / CODES_NAME
    if compare_with is not None and stored.is_file():
        try:
            previous = np.load(stored, allow_pickle=False)
        except (OSError, ValueError):
            previous = None
        if previous is not None and (previous.shape != codes.shape or not np.allclose(previous, codes, atol=1e-5)):
            raise InputError(f"output folder {printable(str(folder.root), control=True)} holds a run with other "
                             "style codes (the reference images changed): pass --overwrite to replace it, or "
                             "choose another -o")
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(codes, np.float32), allow_pickle=False)
    folder.write(CODES_NAME, buffer.getvalue())
