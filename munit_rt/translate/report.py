"""What a `translate` run did: counts, failures with their reasons, time per stage, and its summary text."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from munit_rt.text import printable

STAGES = ("decode", "infer", "write")


@dataclass
class Report:
    output: Path
    inputs: int = 0
    translated: int = 0
    skipped: int = 0  # outputs already complete (--resume)
    files_written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    stage_images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    backend: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures

    def add_stage(self, stage: str, seconds: float, images: int) -> None:
        self.stage_s[stage] += seconds
        self.stage_images[stage] += images

    def summary(self) -> str:
        rate = self.translated / self.wall_s if self.wall_s > 0 else 0.0
        lines = [f"{self.inputs} inputs: {self.translated} translated, {self.skipped} already done, "
                 f"{len(self.failures)} failed; {self.files_written} files written under {printable(str(self.output))} "
                 f"in {self.wall_s:.2f} s ({rate:.2f} images/s, backend {self.backend})",
                 f"  {'stage':<8}{'images':>8}{'busy s':>10}{'images/s':>10}"]
        for stage in STAGES:
            seconds, images = self.stage_s[stage], self.stage_images[stage]
            per_s = f"{images / seconds:.2f}" if seconds > 0 else "-"
            lines.append(f"  {stage:<8}{images:>8}{seconds:>10.2f}{per_s:>10}")
        if self.failures:
            lines.append("failed inputs:")
            # one line per input, whatever its name holds (a newline in a file name cannot forge a line)
            lines += [f"  {printable(relpath, control=True)}: {printable(reason, control=True)}"
                      for relpath, reason in self.failures]
        return "\n".join(lines)
