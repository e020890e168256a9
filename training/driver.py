"""The training driver every family runs: resume, run folder, logs, the step loop, sample grids, snapshots,
Ctrl-C and distributed stops. A family hands in a `TrainingJob`: how to take one step, save and load a
snapshot, write sample grids, start its progress callbacks, and which networks the rank digest covers.

    RUN/config.yaml      the resolved config
    RUN/checkpoints/     the family's snapshots (`TrainingJob.save_snapshot`)
    RUN/images/          sample grids (`TrainingJob.write_sample_grids`)
    RUN/logs/            stats.jsonl (one JSON object per log tick) + TensorBoard events

Under torchrun every rank runs the driver (training/distributed.py) and rank 0 alone writes the run folder.
"""
from __future__ import annotations

import abc
import contextlib
import json
import re
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from munit_rt.training import distributed
from munit_rt.training.errors import ConfigError, TrainingError


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    last_scalars: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


# ------------------------------------------------------------------------------------------- snapshots

def snapshot_pattern(prefix: str) -> re.Pattern:
    """<prefix>_XXXXXXXX.pt, the file written last in a snapshot (MUNIT: gen, the families: their name)."""
    return re.compile(rf"^{prefix}_(\d{{8}})\.pt$")


def latest_snapshot(checkpoint_dir: Path, prefix: str) -> Path | None:
    """The newest <prefix>_XXXXXXXX.pt, as the official `get_model_list`."""
    if not checkpoint_dir.is_dir():
        return None
    pattern = snapshot_pattern(prefix)
    names = sorted(p.name for p in checkpoint_dir.iterdir() if pattern.match(p.name))
    return checkpoint_dir / names[-1] if names else None


def resume_point(run_dir: Path, prefix: str, resume: bool) -> Path | None:
    """The snapshot to resume from (None for a fresh run); refuses to mix runs."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"--out {run_dir}: exists and is not a folder")
    snapshot = latest_snapshot(run_dir / "checkpoints", prefix)
    if snapshot is not None and not resume:
        raise TrainingError(f"--out {run_dir}: already holds checkpoints ({snapshot.name}); pass --resume "
                            "to continue that run, or choose another --out")
    if snapshot is None and resume:
        raise TrainingError(f"--resume: no {prefix}_XXXXXXXX.pt snapshot in {run_dir / 'checkpoints'}")
    return snapshot


# ------------------------------------------------------------------------------------------------ logging

class StatsLog:
    """stats.jsonl, plus TensorBoard scalars when tensorboard is importable."""

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
    """The stats log of ranks other than 0: they write nothing."""

    def write(self, iteration: int, scalars: dict[str, float]) -> None: ...
    def close(self) -> None: ...


def _logged_iteration(line: str) -> float:
    try:
        return json.loads(line)["iteration"]
    except (ValueError, KeyError, TypeError):  # a line cut short by a crash
        return float("inf")


# ------------------------------------------------------------------------------------------- the loop

@dataclass
class TrainingJob(abc.ABC):
    """A family's part of a run. `trainer` holds every network (broadcast between ranks as one module) and
    has `config` (seed, log_iter, snapshot_save_iter), `dist` and `seed_rank(seed)`; `batches` is endless
    and its position is part of a snapshot."""

    trainer: nn.Module
    batches: Any
    device: torch.device
    total_iters: int

    @abc.abstractmethod
    def step(self, batch: Any, iteration: int) -> tuple[dict[str, torch.Tensor], float]:
        """One update (1-based `iteration`, `batch` on the device), LR schedules included;
        returns (the loss terms, the generator LR the update used)."""

    @abc.abstractmethod
    def save_snapshot(self, checkpoint_dir: Path, iteration: int) -> None:
        """Called by every rank; rank 0 writes."""

    @abc.abstractmethod
    def load_snapshot(self, path: Path) -> int:
        """Restore weights, optimizers, RNG and data position; return the iteration."""

    @abc.abstractmethod
    def write_sample_grids(self, image_dir: Path, iteration: int, final: bool) -> None:
        """Rank 0 only: after every iteration (the job picks which it writes at), and with `final` after
        the snapshot that ends a run."""

    @abc.abstractmethod
    def start_callback(self, callback: Any, run_dir: Path, iteration: int) -> None:
        """callback.on_start(...) with the family's own signature."""

    @abc.abstractmethod
    def networks(self) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        """(generators, discriminators) for the rank digest."""


def run_training(job: TrainingJob, run_dir: Path, *, snapshot: Path | None, callbacks: tuple = ()) -> TrainResult:
    """Train until `job.total_iters`; Ctrl-C finishes the iteration, writes a snapshot and re-raises.
    `callbacks` have on_start (called through the job), on_step(iteration, scalars) and on_end()."""
    trainer, device = job.trainer, job.device
    config, dist = trainer.config, trainer.dist
    checkpoint_dir, image_dir, log_dir = run_dir / "checkpoints", run_dir / "images", run_dir / "logs"

    # Resume; then every rank holds rank 0's weights, and its own noise
    iteration = job.load_snapshot(snapshot) if snapshot is not None else 0
    last_saved = iteration if snapshot is not None else None
    if snapshot is None and dist.rank > 0:
        trainer.seed_rank(dist.rank_seed(config.seed))
    dist.broadcast_module(trainer)

    # Initialize logs and the run folder (rank 0 only)
    if dist.is_main:
        for folder in (checkpoint_dir, image_dir, log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        _write_config(config, run_dir / "config.yaml")
    stats = StatsLog(log_dir, resumed_at=iteration if snapshot is not None else None) if dist.is_main else NullLog()
    callbacks = callbacks if dist.is_main else ()
    for callback in callbacks:
        job.start_callback(callback, run_dir, iteration)

    # Train
    scalars: dict[str, float] = {}
    local: dict[str, float] = {}
    batch_stream = iter(job.batches)
    started = time.perf_counter()
    try:
        with dist.stop_on_signals():
            while iteration < job.total_iters:
                with _finish_iteration_before_interrupt() if not dist.enabled else contextlib.nullcontext():
                    # per step: fetch, update; the count moves only once the update is complete
                    batch = to_device(next(batch_stream), device)
                    losses, lr = job.step(batch, iteration + 1)
                    iteration += 1
                    dist.broadcast_module(trainer, buffers_only=True)

                    # per tick: logs (the mean over ranks), sample grids, snapshot, UI
                    local = {name: value.detach().item() for name, value in losses.items()}
                    scalars, stop = dist.reduce_step(local, device)
                    if iteration % config.log_iter == 0:
                        stats.write(iteration, {**scalars, "lr": lr, "time_s": time.perf_counter() - started})
                    if dist.is_main:
                        job.write_sample_grids(image_dir, iteration, final=False)
                    if iteration % config.snapshot_save_iter == 0:
                        job.save_snapshot(checkpoint_dir, iteration)
                        last_saved = iteration
                    for callback in callbacks:
                        callback.on_step(iteration, scalars)
                    if stop:  # some rank got SIGINT/SIGTERM: every rank stops after this iteration
                        raise distributed.CoordinatedStop
    except KeyboardInterrupt as exc:
        coordinated = not dist.enabled or isinstance(exc, distributed.CoordinatedStop)
        if iteration > 0 and last_saved != iteration and coordinated:
            job.save_snapshot(checkpoint_dir, iteration)
        raise
    finally:
        stats.close()
        for callback in callbacks:
            callback.on_end()

    # Final snapshot (and the samples the job writes with it), unless the last iteration just wrote one
    if iteration > 0 and last_saved != iteration:
        job.save_snapshot(checkpoint_dir, iteration)
        if dist.is_main:
            job.write_sample_grids(image_dir, iteration, final=True)
    generators, discriminators = job.networks()
    dist.write_digest(run_dir, generators, discriminators, local)
    return TrainResult(run_dir=run_dir, iteration=iteration, last_scalars=scalars)


@contextlib.contextmanager
def _finish_iteration_before_interrupt():
    """A first Ctrl-C is raised once the iteration (step, logs, snapshot) completes, so the final snapshot
    never holds half an update; a second one interrupts at once (e.g. a stuck data worker)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []

    def on_sigint(*_):
        if pending:
            raise KeyboardInterrupt
        pending.append(True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors, also inside dicts, lists and tuples, onto `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def _write_config(config: Any, path: Path) -> None:
    import os

    import yaml

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
