"""What a `translate` run did: which model and settings, counts, failures with their reasons, notes, time per
stage, and its summary text. Every name that comes from a file is printed with control characters escaped."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from munit_rt.text import printable

STAGES = ("decode", "infer", "write")
LARGE_INPUT_FACTOR = 4  # inputs this many times the model's size (shorter side) or more get a note


@dataclass
class Report:
    output: Path
    inputs: int = 0
    translated: int = 0
    skipped: int = 0  # outputs already complete (--resume)
    files_written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (relative path, what a decoder warned about)
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    stage_images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    backend: str = ""
    model: str = ""
    family: str = ""
    direction: str | None = None
    prep: Any = None  # the run's Preprocess (the output size)
    per_input: int = 1
    precision: str = "fp32"
    quality: str = ""  # what the bundle records of the precision's quality (munit_rt.bundle.describe)
    largest_input: tuple[int, int] | None = None  # (width, height) of the largest input decoded
    largest_output: tuple[int, int] | None = None  # what it became

    @property
    def ok(self) -> bool:
        return not self.failures

    def add_stage(self, stage: str, seconds: float, images: int) -> None:
        self.stage_s[stage] += seconds
        self.stage_images[stage] += images

    def add_input(self, relpath: str, size: tuple[int, int], notes: list[str],
                  output_size: tuple[int, int] | None = None) -> None:
        """A decoded input: its size (the largest is noted) and what the decoders warned about it."""
        self.notes += [(relpath, note) for note in notes]
        if self.largest_input is None or min(size) > min(self.largest_input):
            self.largest_input, self.largest_output = tuple(size), output_size

    def headline(self) -> str:
        """The first line: which model ran how, and what size its outputs are."""
        parts = [self.family or "?"]
        if self.direction:
            parts.append(f"direction {self.direction}")
        if self.prep is not None:
            parts.append(f"outputs {_size_text(self.prep)}")
        parts.append(f"{self.per_input} output{'s' if self.per_input != 1 else ''} per input")
        backend = self.backend or "not opened (nothing to translate)"
        quality = f": {self.quality}" if self.quality else ""
        return f"model {self.model}: {', '.join(parts)}; backend {backend}, {self.precision}{quality}"

    def summary(self) -> str:
        rate = self.translated / self.wall_s if self.wall_s > 0 else 0.0
        lines = [self.headline(),
                 f"{self.inputs} inputs: {self.translated} translated, {self.skipped} already done, "
                 f"{len(self.failures)} failed; {self.files_written} files written under "
                 f"{printable(str(self.output), control=True)} in {self.wall_s:.2f} s ({rate:.2f} images/s)",
                 f"  {'stage':<8}{'images':>8}{'busy s':>10}{'images/s':>10}"]
        for stage in STAGES:
            seconds, images = self.stage_s[stage], self.stage_images[stage]
            per_s = f"{images / seconds:.2f}" if seconds > 0 else "-"
            lines.append(f"  {stage:<8}{images:>8}{seconds:>10.2f}{per_s:>10}")
        large = self._large_input_note()
        if large:
            lines.append(large)
        if self.notes:
            lines.append("notes:")
            lines += [f"  {printable(relpath, control=True)}: {printable(note, control=True)}"
                      for relpath, note in sorted(self.notes)]
        if self.failures:
            lines.append("failed inputs:")
            # one line per input, whatever its name holds (a newline in a file name cannot forge a line)
            lines += [f"  {printable(relpath, control=True)}: {printable(reason, control=True)}"
                      for relpath, reason in self.failures]
        return "\n".join(lines)

    def _large_input_note(self) -> str:
        if self.largest_input is None or self.prep is None:
            return ""
        if min(self.largest_input) < LARGE_INPUT_FACTOR * self.prep.size:
            return ""
        w, h = self.largest_input
        became = f", became {self.largest_output[0]}x{self.largest_output[1]}" if self.largest_output else ""
        return (f"note: inputs are much larger than the model's output size (the largest, {w}x{h} px{became}); "
                f"outputs are at the model's size ({_size_text(self.prep)}): --size N gives larger, softer outputs")


def _size_text(prep: Any) -> str:
    return f"{prep.size}x{prep.size} px" if prep.resize == "square" else f"{prep.size} px on the shorter side"
