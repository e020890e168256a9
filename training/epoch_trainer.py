"""What the families trained with junyanz/pytorch-CycleGAN-and-pix2pix's recipe (CycleGAN, pix2pix) share beyond
the networks (training/networks.py): upstream's `BaseModel` setup (init_weights, Adam for the generators and for
the discriminators, the linear LR policy stepped after each epoch's last iteration), what optimizer.pt keeps of
it, and the job over one training set with its display set.

    EpochTrainer                      the trainer base: setup_training, lr, end_iteration, training state
    epoch_job(trainer_class, ...)     the trainer, this rank's shard of each epoch, the display images, the length
"""
from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from munit_rt.training.engine.batches import CyclingBatches, epoch_loader
from munit_rt.training.engine.driver import Job
from munit_rt.training.engine.trainer import FamilyTrainer
from munit_rt.training.networks import epoch_schedule, init_weights, linear_decay_rule


class EpochTrainer(FamilyTrainer):
    """A trainer with upstream's optimizer_G / optimizer_D and LR schedules: its `__init__` builds the networks,
    then calls `setup_training`; its `train_step` ends with `end_iteration`."""

    def __init__(self, config: Any, iters_per_epoch: int):
        super().__init__()
        self.config = config
        self.iters_per_epoch = iters_per_epoch

    def setup_training(self, generators: list[nn.Module], discriminators: list[nn.Module], beta2: float) -> None:
        """Upstream's init_weights on every network (in this order), Adam(lr, (beta1, beta2)) over the generators'
        parameters and over the discriminators', and the linear LR policy for both."""
        cfg = self.config
        for net in (*generators, *discriminators):
            init_weights(net, cfg.init_type, cfg.init_gain)
        adam = dict(lr=cfg.lr, betas=(cfg.beta1, beta2))
        self.optimizer_G = torch.optim.Adam(itertools.chain(*(net.parameters() for net in generators)), **adam)
        self.optimizer_D = torch.optim.Adam(itertools.chain(*(net.parameters() for net in discriminators)), **adam)
        rule = linear_decay_rule(cfg.n_epochs, cfg.n_epochs_decay)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, rule) for opt in (self.optimizer_G, self.optimizer_D)]

    def lr(self) -> float:
        return self.optimizer_G.param_groups[0]["lr"]

    def end_iteration(self, iteration: int) -> None:
        """After the last iteration of an epoch, the LR schedules step (upstream's update_learning_rate)."""
        if iteration % self.iters_per_epoch == 0:
            for scheduler in self.schedulers:
                scheduler.step()

    def training_state(self) -> dict:
        return {"optimizer_G": self.optimizer_G.state_dict(), "optimizer_D": self.optimizer_D.state_dict(),
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_training_state(self, state: dict) -> None:
        self.optimizer_G.load_state_dict(state["optimizer_G"])
        self.optimizer_D.load_state_dict(state["optimizer_D"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)


def epoch_job(trainer_class: type[EpochTrainer], config: Any, data: tuple[Any, Any], device: torch.device,
              dist: Any) -> Job:
    """The trainer, this rank's shard of each epoch of the training set (`data`: the training and the display
    dataset), batches under "AB", the display images, and the length: the LR schedule's, or max_iter when that
    stops earlier (the LR still follows the epochs)."""
    train_set, display_set = data
    name = trainer_class.family
    loader = epoch_loader(train_set, config, name, device, dist)
    trainer = trainer_class(config, iters_per_epoch=len(loader)).to(device)
    total = epoch_schedule(config, len(train_set), name, dist.world_size).iterations
    total = min(total, config.max_iter) if config.max_iter is not None else total
    return Job(trainer, CyclingBatches({"AB": loader}), display_set.display(config.display_size), total)
