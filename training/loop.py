"""What CycleGAN and StarGAN share: the `FamilyTrainer` interface, their part of the loop in
`training/driver.py` (`run`), snapshots, and the data helpers of both families' datasets (`CyclingBatches`,
`load_image`, `to_tensor`). Each family supplies a `FamilyTrainer` (networks, one `train_step`, sample rows).

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

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from munit_rt.training import distributed
from munit_rt.training.checkpoint import atomic_torch_save, save_family_checkpoint, torch_load
from munit_rt.training.data import _reason, save_image_grid
from munit_rt.training.driver import TrainingJob, TrainResult, resume_point, run_training, snapshot_pattern, to_device
from munit_rt.training.driver import latest_snapshot  # noqa: F401 (re-exported: it lived here)
from munit_rt.training.errors import CheckpointError, DataError
from munit_rt.training.official import load_state_dict_strict


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
    return resume_point(run_dir, family, resume)


# -------------------------------------------------------------------------------------------- the loop

@dataclass
class FamilyJob(TrainingJob):
    """A family's part of the driver: `train_step`, <family>_XXXXXXXX.pt snapshots, and sample grids every
    image_save_iter plus once more with the final snapshot."""

    trainer: FamilyTrainer
    display: dict[str, Any]

    def step(self, batch, iteration):
        lr = self.trainer.lr()
        return self.trainer.train_step(batch, iteration), lr

    def save_snapshot(self, checkpoint_dir, iteration):
        save_snapshot(self.trainer, self.batches, checkpoint_dir, iteration)

    def load_snapshot(self, path):
        return load_snapshot(self.trainer, self.batches, path)

    def write_sample_grids(self, image_dir, iteration, final):
        if final or iteration % self.trainer.config.image_save_iter == 0:
            write_samples(self.trainer, self.display, image_dir, f"{iteration:08d}")

    def start_callback(self, callback, run_dir, iteration):
        callback.on_start(self.trainer.family, run_dir, iteration, self.total_iters, self.device)

    def networks(self):
        return self.trainer.generators(), self.trainer.discriminators()


def run(trainer: FamilyTrainer, batches: CyclingBatches, display: dict[str, Any], run_dir: Path, *,
        total_iters: int, snapshot: Path | None, callbacks: tuple[FamilyCallback, ...] = ()) -> TrainResult:
    """Train until `total_iters`; Ctrl-C finishes the iteration, writes a snapshot and re-raises.
    Distributed (trainer.dist set by the family's train()): every rank runs this, rank 0 writes."""
    job = FamilyJob(trainer, batches, trainer.device, total_iters, display)
    return run_training(job, run_dir, snapshot=snapshot, callbacks=callbacks)


def write_samples(trainer: FamilyTrainer, display: dict[str, Any], image_dir: Path, tag: str) -> None:
    """Sample grids in eval mode without touching the training RNG streams."""
    state = torch.get_rng_state(), random.getstate()
    trainer.eval()
    try:
        with torch.no_grad():
            for name, rows in trainer.sample(to_device(display, trainer.device)).items():
                save_image_grid(rows, image_dir / f"{name}_{tag}.png")
    finally:
        trainer.train()
        torch.set_rng_state(state[0])
        random.setstate(state[1])
