"""The run's scalar log: RUN/logs/stats.jsonl (one JSON object per log tick), plus TensorBoard events when
tensorboard imports. Ranks other than 0 write nothing (NullLog)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path


class StatsLog:
    def __init__(self, log_dir: Path, resumed_at: int | None):
        self.path = log_dir / "stats.jsonl"
        if resumed_at is not None and self.path.exists():  # drop ticks the resumed run will redo
            kept = [line for line in self.path.read_text().splitlines() if _logged_iteration(line) <= resumed_at]
            self.path.write_text("".join(line + "\n" for line in kept))
        self.file = open(self.path, "a", encoding="utf-8")
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # noqa: BLE001 - optional: missing, or broken by a protobuf mismatch
            warnings.warn(f"TensorBoard logging skipped ({exc}); stats.jsonl is still written", stacklevel=2)
        else:
            purge = resumed_at + 1 if resumed_at is not None else None
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)

    def write(self, iteration: int, scalars: dict[str, float]) -> None:
        self.file.write(json.dumps({"iteration": iteration, **scalars}) + "\n")
        self.file.flush()
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, iteration)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


class NullLog:
    def write(self, iteration: int, scalars: dict[str, float]) -> None: ...
    def close(self) -> None: ...


def _logged_iteration(line: str) -> float:
    try:
        return json.loads(line)["iteration"]
    except (ValueError, KeyError, TypeError):  # a line cut short by a crash
        return float("inf")
