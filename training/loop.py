"""The training loop shared by CycleGAN and StarGAN: run folder, snapshots, exact resume, logs, sample grids.

MUNIT keeps its own loop (`training/trainer.py`); this one reuses its stats log, device choice and Ctrl-C
handling, and asks each family only for a `FamilyTrainer` (networks, one `train_step`, sample rows).
The data helpers here (`CyclingBatches`, `load_image`, `to_tensor`) serve both families' datasets.

    RUN/config.yaml                    the resolved config (with its `family` key)
    RUN/checkpoints/<family>_%08d.pt   generators + config + iteration (checkpoint.save_family_checkpoint)
    RUN/checkpoints/dis_%08d.pt        discriminator state dicts under their upstream names
    RUN/checkpoints/optimizer.pt       optimizers, schedulers, RNG and data positions of the newest snapshot
    RUN/images/<name>_<tag>.png        sample grids
    RUN/logs/                          stats.jsonl + TensorBoard events

Under torchrun the families train data-parallel (training/distributed.py): each `train_step` averages the
gradients over the ranks before every optimizer step (`self.dist.average_gradients(optimizer)`), and rank 0
alone writes the run folder.
"""
from __future__ import annotations

import contextlib
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from training import distributed
from training.checkpoint import atomic_torch_save, save_family_checkpoint, torch_load
from training.data import _reason, save_image_grid
from training.errors import CheckpointError, DataError, TrainingError
from training.official import load_state_dict_strict
from training.trainer import NullLog, StatsLog, TrainResult, _finish_iteration_before_interrupt, _write_config


class FamilyTrainer(nn.Module):
    """What the loop needs from a family. Subclasses set `family` and `config` and fill in the methods."""

    family: str
    config: Any
    dist: distributed.Distributed = distributed.SINGLE  # the family's train() sets it under torchrun

    def generators(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def discriminators(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def train_step(self, batch: dict[str, Any], iteration: int) -> dict[str, torch.Tensor]:
        """One iteration (1-based `iteration`): updates, then LR schedules; returns the loss terms."""
        raise NotImplementedError

    def sample(self, display: dict[str, Any]) -> dict[str, list[torch.Tensor]]:
        """Sample-grid rows ([N, C, H, W] in [-1, 1]) per grid name, from the fixed display inputs."""
        raise NotImplementedError

    def lr(self) -> float:
        raise NotImplementedError

    def training_state(self) -> dict[str, Any]:
        """Optimizer / scheduler / extra state (tensors and plain values only: loads with weights_only)."""
        raise NotImplementedError

    def load_training_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # this process's noise, which differs between ranks (training/distributed.py); families add their own
    def rank_state(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def seed_rank(self, seed: int) -> None:
        torch.manual_seed(seed)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class FamilyCallback:
    """UI hooks; the loop itself prints nothing."""

    def on_start(self, family: str, run_dir: Path, iteration: int, total: int, device: torch.device) -> None: ...
    def on_step(self, iteration: int, scalars: dict[str, float]) -> None: ...
    def on_end(self) -> None: ...


class FamilyProgress(FamilyCallback):
    """A tqdm bar showing up to four loss terms."""

    def on_start(self, family, run_dir, iteration, total, device):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=iteration, unit="it", dynamic_ncols=True)
        self.bar.write(f"Training {family} on {device} from iteration {iteration} to {total}; run folder {run_dir}")

    def on_step(self, iteration, scalars):
        self.bar.update(1)
        shown = {name.removeprefix("loss_"): f"{value:.3f}" for name, value in list(scalars.items())[:4]}
        self.bar.set_postfix(shown, refresh=False)

    def on_end(self):
        self.bar.close()


# ------------------------------------------------------------------------------------------------ data

class CyclingBatches:
    """Batches from several loaders at once ({name: batch} per iteration); each loader restarts on its own
    when exhausted. Loaders use `training.data.EpochBatchSampler`, so the position (epoch, batches done)
    per loader is all a resume needs."""

    def __init__(self, loaders: dict[str, DataLoader]):
        self.loaders = loaders
        self.position = {name: [0, 0] for name in loaders}

    def state_dict(self) -> dict[str, list[int]]:
        return {name: list(pos) for name, pos in self.position.items()}

    def load_state_dict(self, state: dict[str, list[int]]) -> None:
        self.position = {name: [int(state[name][0]), int(state[name][1])] for name in self.loaders}

    def __iter__(self):
        iterators: dict[str, Any] = {}
        while True:
            batch = {}
            for name, loader in self.loaders.items():
                batch[name] = self._next(name, loader, iterators)
            yield batch

    def _next(self, name: str, loader: DataLoader, iterators: dict) -> Any:
        for _ in range(2):  # a fresh epoch always has a batch (datasets hold at least batch_size items)
            if name not in iterators:
                loader.batch_sampler.set_position(*self.position[name])
                iterators[name] = iter(loader)
            try:
                item = next(iterators[name])
            except StopIteration:
                del iterators[name]
                self.position[name] = [self.position[name][0] + 1, 0]
                continue
            except DataError as exc:  # a worker's error comes back wrapped in its traceback
                raise DataError(str(exc).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None
            self.position[name][1] += 1
            return item
        raise DataError(f"data loader '{name}' yields no batches")


def load_image(path: Path, channels: int) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({_reason(exc)})") from None


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> [C, H, W] float in [-1, 1] (ToTensor + Normalize(0.5, 0.5))."""
    pixels = torch.from_numpy(np.array(img, dtype=np.uint8)).reshape(img.height, img.width, -1)
    return (pixels.permute(2, 0, 1).float().div(255) - 0.5) / 0.5


# ------------------------------------------------------------------------------------------- snapshots

def snapshot_pattern(family: str) -> re.Pattern:
    return re.compile(rf"^{family}_(\d{{8}})\.pt$")


def latest_snapshot(checkpoint_dir: Path, family: str) -> Path | None:
    if not checkpoint_dir.is_dir():
        return None
    pattern = snapshot_pattern(family)
    names = sorted(p.name for p in checkpoint_dir.iterdir() if pattern.match(p.name))
    return checkpoint_dir / names[-1] if names else None


def save_snapshot(trainer: FamilyTrainer, batches: CyclingBatches, checkpoint_dir: Path, iteration: int) -> None:
    """dis, optimizer, then the generators last: a <family>_*.pt exists only once its snapshot is complete.
    Distributed: every rank calls this; rank 0 writes, with the ranks' noise states, the others wait."""
    dist = trainer.dist
    ranks = dist.gather_to_main(trainer.rank_state())
    if dist.is_main:
        atomic_torch_save({key: net.state_dict() for key, net in trainer.discriminators().items()},
                          checkpoint_dir / f"dis_{iteration:08d}.pt")
        state = {"family": trainer.family, "iteration": iteration, "trainer": trainer.training_state(),
                 "rng": {"torch": torch.get_rng_state(),
                         "cuda": torch.cuda.get_rng_state_all() if trainer.device.type == "cuda" else []},
                 "data": batches.state_dict()}
        if ranks is not None:
            state["distributed"] = {"world_size": dist.world_size, "ranks": ranks}
        atomic_torch_save(state, checkpoint_dir / "optimizer.pt")
        save_family_checkpoint(checkpoint_dir / f"{trainer.family}_{iteration:08d}.pt", trainer.family,
                               trainer.generators(), trainer.config, iteration)
    dist.barrier()


def load_snapshot(trainer: FamilyTrainer, batches: CyclingBatches, gen_path: Path) -> int:
    """Restore weights, optimizers, schedulers, RNG and data positions; return the iteration."""
    iteration = int(snapshot_pattern(trainer.family).match(gen_path.name).group(1))
    dis_path, state_path = gen_path.with_name(f"dis_{iteration:08d}.pt"), gen_path.with_name("optimizer.pt")
    gens, diss, state = torch_load(gen_path), torch_load(dis_path), torch_load(state_path)
    if not isinstance(state, dict) or state.get("iteration") != iteration or state.get("family") != trainer.family:
        raise CheckpointError(f"{state_path}: does not hold the munit-rt training state of {gen_path.name} "
                              "(written by another tool or another snapshot); cannot resume exactly")
    for key, net in trainer.generators().items():
        load_state_dict_strict(net, gens[key], f"{gen_path} [{key}]")
    for key, net in trainer.discriminators().items():
        load_state_dict_strict(net, diss[key], f"{dis_path} [{key}]")
    try:
        trainer.load_training_state(state["trainer"])
        batches.load_state_dict(state["data"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and trainer.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        saved_world = distributed.restore_rank(trainer, state, iteration, trainer.config.seed)
        batches.position = {name: [epoch, distributed.rescale_position(done, saved_world, trainer.dist.world_size)]
                            for name, (epoch, done) in batches.position.items()}
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{state_path}: cannot restore the training state ({exc})") from None
    return iteration


def check_run_dir(run_dir: Path, family: str, resume: bool) -> Path | None:
    """The snapshot to resume from (None for a fresh run); refuses to mix runs."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"--out {run_dir}: exists and is not a folder")
    snapshot = latest_snapshot(run_dir / "checkpoints", family)
    if snapshot is not None and not resume:
        raise TrainingError(f"--out {run_dir}: already holds checkpoints ({snapshot.name}); pass --resume "
                            "to continue that run, or choose another --out")
    if snapshot is None and resume:
        raise TrainingError(f"--resume: no {family}_XXXXXXXX.pt snapshot in {run_dir / 'checkpoints'}")
    return snapshot


# -------------------------------------------------------------------------------------------- the loop

def run(trainer: FamilyTrainer, batches: CyclingBatches, display: dict[str, Any], run_dir: Path, *,
        total_iters: int, snapshot: Path | None, callbacks: tuple[FamilyCallback, ...] = ()) -> TrainResult:
    """Train until `total_iters`; Ctrl-C finishes the iteration, writes a snapshot and re-raises.
    Distributed (trainer.dist set by the family's train()): every rank runs this, rank 0 writes."""
    config, device, dist = trainer.config, trainer.device, trainer.dist
    checkpoint_dir, image_dir, log_dir = run_dir / "checkpoints", run_dir / "images", run_dir / "logs"

    # Resume; then every rank holds rank 0's weights, and its own noise
    iteration = load_snapshot(trainer, batches, snapshot) if snapshot is not None else 0
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
        callback.on_start(trainer.family, run_dir, iteration, total_iters, device)

    # Train
    scalars: dict[str, float] = {}
    local: dict[str, float] = {}
    batch_stream = iter(batches)
    started = time.perf_counter()
    try:
        with dist.stop_on_signals():
            while iteration < total_iters:
                with _finish_iteration_before_interrupt() if not dist.enabled else contextlib.nullcontext():
                    # per step: fetch, update (the family's train_step also steps its LR schedules)
                    batch = _to_device(next(batch_stream), device)
                    lr = trainer.lr()
                    iteration += 1
                    losses = trainer.train_step(batch, iteration)
                    dist.broadcast_module(trainer, buffers_only=True)

                    # per tick: logs (the mean over ranks), sample grids, snapshot, UI
                    local = {name: value.detach().item() for name, value in losses.items()}
                    scalars, stop = dist.reduce_step(local, device)
                    if iteration % config.log_iter == 0:
                        stats.write(iteration, {**scalars, "lr": lr, "time_s": time.perf_counter() - started})
                    if iteration % config.image_save_iter == 0 and dist.is_main:
                        write_samples(trainer, display, image_dir, f"{iteration:08d}")
                    if iteration % config.snapshot_save_iter == 0:
                        save_snapshot(trainer, batches, checkpoint_dir, iteration)
                        last_saved = iteration
                    for callback in callbacks:
                        callback.on_step(iteration, scalars)
                    if stop:  # some rank got SIGINT/SIGTERM: every rank stops after this iteration
                        raise distributed.CoordinatedStop
    except KeyboardInterrupt as exc:
        coordinated = not dist.enabled or isinstance(exc, distributed.CoordinatedStop)
        if iteration > 0 and last_saved != iteration and coordinated:
            save_snapshot(trainer, batches, checkpoint_dir, iteration)
        raise
    finally:
        stats.close()
        for callback in callbacks:
            callback.on_end()

    # Final snapshot and samples, unless the last iteration just wrote them
    if iteration > 0 and last_saved != iteration:
        save_snapshot(trainer, batches, checkpoint_dir, iteration)
        if dist.is_main:
            write_samples(trainer, display, image_dir, f"{iteration:08d}")
    dist.write_digest(run_dir, trainer.generators(), trainer.discriminators(), local)
    return TrainResult(run_dir=run_dir, iteration=iteration, last_scalars=scalars)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def write_samples(trainer: FamilyTrainer, display: dict[str, Any], image_dir: Path, tag: str) -> None:
    """Sample grids in eval mode without touching the training RNG streams."""
    state = torch.get_rng_state(), random.getstate()
    trainer.eval()
    try:
        with torch.no_grad():
            for name, rows in trainer.sample(_to_device(display, trainer.device)).items():
                save_image_grid(rows, image_dir / f"{name}_{tag}.png")
    finally:
        trainer.train()
        torch.set_rng_state(state[0])
        random.setstate(state[1])
