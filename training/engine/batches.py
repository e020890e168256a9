"""The batch streams the driver draws from, endless and resumable at any batch. They decide the batch order, so
their semantics are part of exact resume.

    EpochBatchSampler  one epoch's shuffled batches from (seed, name, epoch); under torchrun this rank's slice
    epoch_loader       a DataLoader over a dataset with that sampler and the config's batch_size, num_workers, seed
    PairedBatches      zip(loader_a, loader_b) epoch after epoch, as the official MUNIT loop (an epoch ends with
                       the shorter loader): position (epoch, batches done)
    CyclingBatches     {name: batch} from several loaders, each restarting on its own when exhausted (CycleGAN,
                       StarGAN): a position per loader

Each loader's dataset addresses items by (index, epoch), so a resumed run sees exactly the batches of an
uninterrupted one, whatever num_workers is.
"""
from __future__ import annotations

import random
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from munit_rt.training.engine.distributed import rescale_position
from munit_rt.training.errors import DataError


class EpochBatchSampler(Sampler):
    """Shuffled batches (drop_last) of one epoch, from a permutation derived from (seed, name, epoch).

    `set_position(epoch, skip)` starts an epoch after `skip` batches, which is how a run resumes.
    Distributed (engine/distributed.py): every rank derives the same order; step k covers the
    batch_size * world_size indices after k such steps and rank `rank` takes its slice of batch_size, so the
    ranks' batches are disjoint and together are the single-process batch of batch_size * world_size.
    """

    def __init__(self, size: int, batch_size: int, seed: int, name: str, rank: int = 0, world_size: int = 1):
        self.size, self.batch_size, self.seed, self.name = size, batch_size, seed, name
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.size // (self.batch_size * self.world_size)

    def __iter__(self):
        order = list(range(self.size))
        random.Random(f"{self.seed}/{self.name}/shuffle/{self.epoch}").shuffle(order)
        step = self.batch_size * self.world_size
        for start in range(self.skip * step + self.rank * self.batch_size, len(self) * step, step):
            yield [(index, self.epoch) for index in order[start : start + self.batch_size]]


def epoch_loader(dataset: Dataset, config: Any, name: str, device: torch.device, dist: Any) -> DataLoader:
    """`dataset` in shuffled epochs named `name` (EpochBatchSampler: this rank's shard under torchrun), batches of
    config.batch_size read by config.num_workers workers; `len(loader)` is the steps of one epoch."""
    sampler = EpochBatchSampler(len(dataset), config.batch_size, config.seed, name, dist.rank, dist.world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                      pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(config.seed))


def worker_error(exc: DataError) -> DataError:
    """A DataLoader worker's DataError comes back wrapped in its traceback; keep the original line."""
    return DataError(str(exc).strip().splitlines()[-1].split("DataError: ", 1)[-1])


class PairedBatches:
    """`zip(loader_a, loader_b)` epoch after epoch, like the official loop, resumable at any batch."""

    def __init__(self, loaders: dict[str, DataLoader]):
        self.loaders = loaders
        self.epoch, self.batches_done = 0, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])

    def rescale(self, saved_world: int, world: int) -> None:
        """The position of a snapshot written by `saved_world` processes, for `world` (engine/distributed.py)."""
        self.batches_done = rescale_position(self.batches_done, saved_world, world)

    def __iter__(self):
        while True:
            for loader in self.loaders.values():
                loader.batch_sampler.set_position(self.epoch, self.batches_done)
            try:
                for batch_a, batch_b in zip(*self.loaders.values()):
                    self.batches_done += 1
                    yield batch_a, batch_b
            except DataError as exc:
                raise worker_error(exc) from None
            self.epoch, self.batches_done = self.epoch + 1, 0


class CyclingBatches:
    """Batches from several loaders at once ({name: batch} per iteration); each loader restarts on its own when
    exhausted. Loaders use `EpochBatchSampler`, so the position (epoch, batches done) per loader is all a resume
    needs."""

    def __init__(self, loaders: dict[str, DataLoader]):
        self.loaders = loaders
        self.position = {name: [0, 0] for name in loaders}

    def state_dict(self) -> dict[str, list[int]]:
        return {name: list(pos) for name, pos in self.position.items()}

    def load_state_dict(self, state: dict[str, list[int]]) -> None:
        self.position = {name: [int(state[name][0]), int(state[name][1])] for name in self.loaders}

    def rescale(self, saved_world: int, world: int) -> None:
        self.position = {name: [epoch, rescale_position(done, saved_world, world)]
                         for name, (epoch, done) in self.position.items()}

    def __iter__(self):
        iterators: dict[str, Any] = {}
        while True:
            yield {name: self._next(name, loader, iterators) for name, loader in self.loaders.items()}

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
            except DataError as exc:
                raise worker_error(exc) from None
            self.position[name][1] += 1
            return item
        raise DataError(f"data loader '{name}' yields no batches")
