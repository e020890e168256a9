"""UI hooks of a training run; the loop itself prints nothing. One set for every family, on rank 0 only."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunStart:
    """What a run is about to do (on_start's argument)."""

    family: str  # the family's title ("MUNIT")
    run_dir: Path
    iteration: int  # the first iteration runs iteration + 1
    total: int
    device: Any
    shown_losses: dict[str, str] | None = field(default=None)  # {loss term: label} worth showing; None: any


class TrainingCallback:
    def on_start(self, run: RunStart) -> None: ...
    def on_step(self, iteration: int, scalars: dict[str, float]) -> None: ...
    def on_end(self) -> None: ...


class TqdmProgress(TrainingCallback):
    """A tqdm bar with four loss terms: the trainer's `shown_losses`, else the first four."""

    def on_start(self, run: RunStart) -> None:
        from tqdm import tqdm

        self.shown = run.shown_losses
        self.bar = tqdm(total=run.total, initial=run.iteration, unit="it", dynamic_ncols=True)
        self.bar.write(f"Training {run.family} on {run.device} from iteration {run.iteration} to {run.total}; "
                       f"run folder {run.run_dir}")

    def on_step(self, iteration: int, scalars: dict[str, float]) -> None:
        self.bar.update(1)
        shown = self.shown or {name: name.removeprefix("loss_") for name in list(scalars)[:4]}
        self.bar.set_postfix({label: f"{scalars[name]:.3f}" for name, label in shown.items()}, refresh=False)

    def on_end(self) -> None:
        self.bar.close()
