"""The training driver of every family: config and device, data and run-folder checks, resume, the step loop,
logs, sample grids, snapshots, Ctrl-C and distributed stops. A family contributes its data and a `Job` (its
trainer, batch stream, display inputs and length); it never branches this loop.

    RUN/config.yaml      the resolved config
    RUN/checkpoints/     snapshots (engine/snapshots.py)
    RUN/images/          sample grids (FamilyTrainer.sample_grids)
    RUN/logs/            stats.jsonl (one JSON object per log tick) + TensorBoard events (engine/logs.py)

Under torchrun every rank runs the driver (engine/distributed.py) and rank 0 alone writes the run folder.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from munit_rt.training.config import load_config
from munit_rt.training.config_fields import check_value
from munit_rt.training.data import save_image_grid
from munit_rt.training.engine import distributed
from munit_rt.training.engine.callbacks import RunStart, TrainingCallback
from munit_rt.training.engine.logs import NullLog, StatsLog
from munit_rt.training.engine.snapshots import load_snapshot, resume_point, save_snapshot
from munit_rt.training.engine.trainer import FamilyTrainer
from munit_rt.training.errors import ConfigError
from munit_rt.training.family import TrainingFamily
from munit_rt.training.registry import family_of


@dataclass
class Job:
    """A family's part of a run (TrainingFamily.build_job). `batches` is endless, resumable (state_dict,
    load_state_dict, rescale) and its position is part of a snapshot; `display` holds the fixed inputs of the
    sample grids, in the form the trainer's `sample_grids` takes."""

    trainer: FamilyTrainer
    batches: Any
    display: Any
    total_iters: int


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


def train(config: Any, data_dir: str | Path | None, out_dir: str | Path, *, max_iter: int | None = None,
          seed: int | None = None, direction: str | None = None, resume: bool = False, device: str = "auto",
          callbacks: tuple[TrainingCallback, ...] = ()) -> TrainResult:
    """Train any family into `out_dir` (see the module docstring); Ctrl-C saves a snapshot and re-raises.

    `config` is a YAML path (its `family` key picks the family; none: the default family, MUNIT) or a config
    object; `max_iter`, `seed` and `direction` override the config's. Under torchrun (WORLD_SIZE > 1) this process is one rank
    of a data-parallel run."""
    # Initialize: resolve config and device; nothing is written until config, data and run folder check out
    config_dir = Path(config).resolve().parent if isinstance(config, (str, Path)) else None
    config = load_config(config) if isinstance(config, (str, Path)) else config
    family = family_of(config)
    overrides = {key: value for key, value in (("max_iter", max_iter), ("seed", seed)) if value is not None}
    if direction is not None:
        overrides["direction"] = override_key(config, family, "direction", direction)
    config = dataclasses.replace(config, **overrides)
    dist, torch_device = distributed.setup(resolve_device(device))
    run_dir = Path(out_dir)
    try:
        # Load training set (checks folders and image headers); max_iter may not pass the LR schedule's end
        data = family.open_training_data(config, data_dir, dist.world_size, config_dir=config_dir)
        check_schedule(family, config, data, dist.world_size, "--max-iter" if max_iter is not None else "max_iter")

        # Check the run folder (rank 0 decides for every rank)
        snapshot = dist.decide_on_main(lambda: resume_point(run_dir, family.snapshot_prefix, resume))
        distributed.check_readable(dist, snapshot)

        # Construct networks and the batch stream (under torchrun: this rank's shard of each epoch)
        torch.manual_seed(config.seed)
        job = family.build_job(config, data, torch_device, dist)
        job.trainer.dist = dist
        return run_training(family, job, run_dir, snapshot=snapshot, callbacks=callbacks)
    finally:
        dist.shutdown()


def override_key(config: Any, family: TrainingFamily, name: str, value: Any) -> Any:
    """A command-line value for the config key `name`, checked as the YAML key would be (upstream's options such
    as --direction are config keys of the families that have them; the others refuse the flag)."""
    known = {f.name: f for f in dataclasses.fields(config)}
    if name not in known:
        raise ConfigError(f"--{name}: the {family.title} config has no '{name}' key, so there is nothing to "
                          f"override; leave --{name} out")
    return check_value(known[name], value, name, f"--{name}")


def check_schedule(family: TrainingFamily, config: Any, data: Any, world_size: int, flag: str) -> None:
    """A max_iter past the end of the family's LR schedule is refused, saying how to extend the schedule
    (a run would otherwise stop at the schedule's end without a word, or train on at LR 0)."""
    max_iter = getattr(config, "max_iter", None)
    schedule = family.schedule(config, data, world_size) if max_iter is not None else None
    if schedule is not None and max_iter > schedule.iterations:
        raise ConfigError(f"{flag} {max_iter} is past the end of the config's {family.title} learning-rate schedule "
                          f"({schedule.length} = {schedule.iterations} iterations); to train longer, "
                          f"{schedule.extend}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run after `iteration`; `snapshot` is the newest snapshot's generator file
    in the run folder (None: no snapshot yet, nothing to resume)."""

    def __init__(self, iteration: int, snapshot: Path | None):
        super().__init__()
        self.iteration, self.snapshot = iteration, snapshot


def run_training(family: TrainingFamily, job: Job, run_dir: Path, *, snapshot: Path | None,
                 callbacks: tuple[TrainingCallback, ...] = ()) -> TrainResult:
    """Train until `job.total_iters`; Ctrl-C finishes the iteration, writes a snapshot and re-raises."""
    trainer, batches = job.trainer, job.batches
    config, dist, device = trainer.config, trainer.dist, trainer.device
    checkpoint_dir, image_dir, log_dir = run_dir / "checkpoints", run_dir / "images", run_dir / "logs"
    display = to_device(job.display, device)

    # Resume; then every rank holds rank 0's weights, and its own noise
    iteration = load_snapshot(family, trainer, batches, snapshot) if snapshot is not None else 0
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
    start = RunStart(family.title, run_dir, iteration, job.total_iters, device, trainer.shown_losses)
    for callback in callbacks:
        callback.on_start(start)

    # Train
    scalars: dict[str, float] = {}
    local: dict[str, float] = {}
    batch_stream = iter(batches)
    started = time.perf_counter()
    try:
        with dist.stop_on_signals():
            while iteration < job.total_iters:
                with _finish_iteration_before_interrupt() if not dist.enabled else contextlib.nullcontext():
                    # per step: fetch, update; the count moves only once the update is complete
                    batch = to_device(next(batch_stream), device)
                    lr = trainer.lr()
                    losses = trainer.train_step(batch, iteration + 1)
                    iteration += 1
                    dist.broadcast_module(trainer, buffers_only=True)

                    # per tick: logs (the mean over ranks), sample grids, snapshot, UI
                    local = {name: value.detach().item() for name, value in losses.items()}
                    scalars, stop = dist.reduce_step(local, device)
                    if iteration % config.log_iter == 0:
                        stats.write(iteration, {**scalars, "lr": lr, "time_s": time.perf_counter() - started})
                    if dist.is_main:
                        write_sample_grids(trainer, display, image_dir, iteration, final=False)
                    if iteration % config.snapshot_save_iter == 0:
                        save_snapshot(family, trainer, batches, checkpoint_dir, iteration)
                        last_saved = iteration
                    for callback in callbacks:
                        callback.on_step(iteration, scalars)
                    if stop:  # some rank got SIGINT/SIGTERM: every rank stops after this iteration
                        raise distributed.CoordinatedStop
    except KeyboardInterrupt as exc:
        coordinated = not dist.enabled or isinstance(exc, distributed.CoordinatedStop)
        if iteration > 0 and last_saved != iteration and coordinated:
            save_snapshot(family, trainer, batches, checkpoint_dir, iteration)
            last_saved = iteration
        saved = checkpoint_dir / f"{family.snapshot_prefix}_{last_saved:08d}.pt" if last_saved else None
        raise TrainingInterrupted(iteration, saved) from None
    finally:
        stats.close()
        for callback in callbacks:
            callback.on_end()

    # Final snapshot (and the sample grids the trainer writes with it), unless the last iteration wrote one
    if iteration > 0 and last_saved != iteration:
        save_snapshot(family, trainer, batches, checkpoint_dir, iteration)
        if dist.is_main:
            write_sample_grids(trainer, display, image_dir, iteration, final=True)
    dist.write_digest(run_dir, trainer.generators(), trainer.discriminators(), local)
    return TrainResult(run_dir=run_dir, iteration=iteration, last_scalars=scalars)


def write_sample_grids(trainer: FamilyTrainer, display: Any, image_dir: Path, iteration: int, final: bool) -> None:
    """The grids due after `iteration`, in eval mode, without touching the training RNG streams."""
    if not trainer.grids_due(iteration, final):
        return
    state = torch.get_rng_state(), random.getstate()
    trainer.eval()
    try:
        with torch.no_grad():
            for name, rows in trainer.sample_grids(display, iteration, final).items():
                save_image_grid(rows, image_dir / f"{name}.png")
    finally:
        trainer.train()
        torch.set_rng_state(state[0])
        random.setstate(state[1])


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
