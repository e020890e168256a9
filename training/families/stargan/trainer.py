"""StarGAN training with the upstream yunjey/stargan `solver.py` recipe (MIT licence; written anew here,
not copied).

Per iteration and per dataset (one or two attribute files): target labels are the batch's own labels in a
random order (torch.randperm, as upstream); D minimises WGAN (-real + fake) + lambda_cls * BCE on the real
labels + lambda_gp * gradient penalty on random interpolates; every n_critic iterations G minimises
-D(fake) + lambda_cls * BCE on the target labels + lambda_rec * L1(x, G(G(x, c_trg), c_org)).

Two datasets train jointly through the mask vector: the generator's label is
[labels of dataset 1 or zeros, labels of dataset 2 or zeros, one-hot mask of the active dataset], and the
classification losses use only the active dataset's slice of D's logits.

LR: constant, then every lr_update_step iterations of the last num_iters_decay it drops by
lr * lr_update_step / num_iters_decay, reaching 0 at num_iters. (Upstream subtracts lr / num_iters_decay per
update, which lowers the LR by only 1/lr_update_step overall; we follow the paper's "linearly to 0".)

The driver (training/engine/driver.py) runs the loop; snapshots are stargan_%08d.pt, dis_%08d.pt and optimizer.pt.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from munit_rt.training.engine.batches import CyclingBatches, epoch_loader
from munit_rt.training.engine.driver import Job
from munit_rt.training.engine.trainer import FamilyTrainer
from munit_rt.training.family import Schedule
from munit_rt.training.families.stargan.config import NAME, StarGanConfig
from munit_rt.training.families.stargan.data import AttributeDataset
from munit_rt.training.families.stargan.model import build_discriminator, build_generator


def lr_factor(iterations_done: int, config: StarGanConfig) -> float:
    """LR multiplier after `iterations_done` iterations (see the module docstring)."""
    start = max(0, config.num_iters - config.num_iters_decay)
    if config.num_iters_decay == 0 or iterations_done <= start:
        return 1.0
    updates = iterations_done // config.lr_update_step - start // config.lr_update_step
    return max(0.0, 1.0 - updates * config.lr_update_step / config.num_iters_decay)


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Upstream CelebA loss: BCE with logits summed over attributes, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.size(0)


def gradient_penalty(out_src: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """mean((||d out / d x_hat||_2 - 1)^2), the norm taken per sample over all pixels."""
    grad = torch.autograd.grad(outputs=out_src, inputs=x_hat, grad_outputs=torch.ones_like(out_src),
                               retain_graph=True, create_graph=True)[0]
    norm = torch.sqrt(torch.sum(grad.view(grad.size(0), -1) ** 2, dim=1))
    return torch.mean((norm - 1) ** 2)


class StarGanTrainer(FamilyTrainer):
    family = NAME

    def __init__(self, config: StarGanConfig):
        super().__init__()
        self.config = config
        self.G, self.D = build_generator(config), build_discriminator(config)
        self.g_optimizer = torch.optim.Adam(self.G.parameters(), config.g_lr, (config.beta1, config.beta2))
        self.d_optimizer = torch.optim.Adam(self.D.parameters(), config.d_lr, (config.beta1, config.beta2))
        first = len(config.selected_attrs)
        self.attr_slices = [slice(0, first), slice(first, config.cls_dim)][: config.num_datasets]

    def generators(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"D": self.D}

    def lr(self) -> float:
        return self.g_optimizer.param_groups[0]["lr"]

    def generator_labels(self, labels: torch.Tensor, dataset: int) -> torch.Tensor:
        """A dataset's labels [N, k] -> the generator's label vector [N, c_dim] (mask vector for two datasets)."""
        if self.config.num_datasets == 1:
            return labels
        full = labels.new_zeros(labels.size(0), self.config.c_dim)
        full[:, self.attr_slices[dataset]] = labels
        full[:, self.config.cls_dim + dataset] = 1.0
        return full

    def train_step(self, batch: dict, iteration: int) -> dict[str, torch.Tensor]:
        cfg, losses = self.config, {}
        for dataset in range(cfg.num_datasets):
            x_real, label_org = batch[f"dataset{dataset + 1}"]
            label_trg = label_org[torch.randperm(label_org.size(0))]
            c_org, c_trg = self.generator_labels(label_org, dataset), self.generator_labels(label_trg, dataset)
            cls = self.attr_slices[dataset]
            suffix = "" if dataset == 0 else "_2"

            # discriminator: real, fake, classification of the real labels, gradient penalty
            out_src, out_cls = self.D(x_real)
            d_real, d_cls = -torch.mean(out_src), classification_loss(out_cls[:, cls], label_org)
            with torch.no_grad():
                x_fake = self.G(x_real, c_trg)
            d_fake = torch.mean(self.D(x_fake)[0])
            alpha = torch.rand(x_real.size(0), 1, 1, 1, device=x_real.device)
            x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
            d_gp = gradient_penalty(self.D(x_hat)[0], x_hat)
            d_loss = d_real + d_fake + cfg.lambda_cls * d_cls + cfg.lambda_gp * d_gp
            self.optimize(d_loss, self.d_optimizer, self.g_optimizer)  # upstream's reset_grad: both zeroed
            losses.update({f"loss_D_real{suffix}": d_real, f"loss_D_fake{suffix}": d_fake,
                           f"loss_D_cls{suffix}": d_cls, f"loss_D_gp{suffix}": d_gp})

            # generator, every n_critic iterations: fool D, be classified as the target, reconstruct
            if iteration % cfg.n_critic == 0:
                x_fake = self.G(x_real, c_trg)
                out_src, out_cls = self.D(x_fake)
                g_fake, g_cls = -torch.mean(out_src), classification_loss(out_cls[:, cls], label_trg)
                g_rec = torch.mean(torch.abs(x_real - self.G(x_fake, c_org)))
                g_loss = g_fake + cfg.lambda_rec * g_rec + cfg.lambda_cls * g_cls
                self.optimize(g_loss, self.g_optimizer, self.d_optimizer)
                losses.update({f"loss_G_fake{suffix}": g_fake, f"loss_G_rec{suffix}": g_rec,
                               f"loss_G_cls{suffix}": g_cls})
        self.set_lr(iteration)
        return losses

    def set_lr(self, iterations_done: int) -> None:
        factor = lr_factor(iterations_done, self.config)
        for optimizer, base in ((self.g_optimizer, self.config.g_lr), (self.d_optimizer, self.config.d_lr)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    def sample_grids(self, display: dict, iteration: int, final: bool) -> dict[str, list[torch.Tensor]]:
        """Per dataset: the inputs, then one row per attribute with that attribute flipped."""
        grids = {}
        for dataset in range(self.config.num_datasets):
            images, labels = display[f"dataset{dataset + 1}"]
            rows = [images]
            for column in range(labels.size(1)):
                target = labels.clone()
                target[:, column] = 1 - target[:, column]
                rows.append(self.G(images, self.generator_labels(target, dataset)))
            grids[f"stargan_dataset{dataset + 1}_{iteration:08d}"] = rows
        return grids

    def training_state(self) -> dict:
        return {"g_optimizer": self.g_optimizer.state_dict(), "d_optimizer": self.d_optimizer.state_dict()}

    def load_training_state(self, state: dict) -> None:
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])


def build_job(config: StarGanConfig, datasets: list[tuple[AttributeDataset, AttributeDataset]],
              device: torch.device, dist) -> Job:
    """The trainer, one batch stream per dataset (each cycling on its own; under torchrun this rank's shard of
    each epoch) and the display images; `max_iter` stops early (the LR schedule still follows num_iters)."""
    loaders, display = {}, {}
    for number, (train_set, test_set) in enumerate(datasets, start=1):
        loaders[f"dataset{number}"] = epoch_loader(train_set, config, f"dataset{number}", device, dist)
        display[f"dataset{number}"] = (test_set if len(test_set) else train_set).display(config.display_size)
    trainer = StarGanTrainer(config).to(device)
    total = min(config.num_iters, config.max_iter) if config.max_iter is not None else config.num_iters
    return Job(trainer, CyclingBatches(loaders), display, total)


def schedule(config: StarGanConfig, datasets: list, world_size: int) -> Schedule:
    """The LR schedule's end: num_iters (the LR reaches 0 there)."""
    return Schedule(config.num_iters, f"num_iters {config.num_iters}", "raise num_iters in the config (the LR "
                    "falls to 0 over its last num_iters_decay iterations)")
