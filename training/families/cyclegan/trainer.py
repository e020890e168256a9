"""CycleGAN training with the upstream junyanz/pytorch-CycleGAN-and-pix2pix recipe (BSD licence; written
anew here, not copied): `cycle_gan_model.py`, `util/image_pool.py`, `networks.get_scheduler`.

Per iteration: G_A (A -> B) and G_B (B -> A) minimise LSGAN + lambda * cycle L1 + lambda * lambda_identity *
identity L1 with the discriminators frozen; then D_A (real B vs pooled fake B) and D_B (real A vs pooled
fake A) minimise half the LSGAN loss each. LR: constant for n_epochs, then linearly to 0 over
n_epochs_decay (LambdaLR, stepped once per epoch after its last iteration, so epoch n_epochs + k
trains with 1 - k / (n_epochs_decay + 1)). The driver (training/engine/driver.py) runs the loop; snapshots are
cyclegan_%08d.pt, dis_%08d.pt and optimizer.pt (engine/snapshots.py).
"""
from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from munit_rt.training.engine.batches import CyclingBatches, epoch_loader
from munit_rt.training.engine.driver import Job
from munit_rt.training.engine.trainer import FamilyTrainer
from munit_rt.training.family import Schedule
from munit_rt.training.families.cyclegan.config import NAME, CycleGanConfig
from munit_rt.training.families.cyclegan.data import UnalignedDataset
from munit_rt.training.families.cyclegan.model import build_discriminator, build_generator
from munit_rt.training.networks import epoch_schedule, gan_loss, init_weights, linear_decay_rule


class ImagePool:
    """Up to `pool_size` earlier fakes. Until full, each new fake is stored and returned; then with
    probability 1/2 a random stored fake is returned and replaced by the new one (Shrivastava et al.)."""

    def __init__(self, pool_size: int, seed: int):
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images.detach()
        out = []
        for image in images.detach().unbind(0):
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif torch.rand((), generator=self.rng).item() > 0.5:
                index = int(torch.randint(0, self.pool_size, (), generator=self.rng))
                out.append(self.images[index])
                self.images[index] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": [image.cpu() for image in self.images], "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.images = [image.to(device) for image in state["images"]]
        self.rng.set_state(state["rng"])


class CycleGanTrainer(FamilyTrainer):
    family = NAME

    def __init__(self, config: CycleGanConfig, iters_per_epoch: int):
        super().__init__()
        self.config = config
        self.iters_per_epoch = iters_per_epoch
        self.netG_A, self.netG_B = build_generator(config, "G_A"), build_generator(config, "G_B")
        self.netD_A, self.netD_B = build_discriminator(config, "D_A"), build_discriminator(config, "D_B")
        for net in (self.netG_A, self.netG_B, self.netD_A, self.netD_B):
            init_weights(net, config.init_type, config.init_gain)
        self.fake_A_pool = ImagePool(config.pool_size, seed=config.seed * 2 + 1)
        self.fake_B_pool = ImagePool(config.pool_size, seed=config.seed * 2 + 2)
        adam = dict(lr=config.lr, betas=(config.beta1, config.beta2))
        self.optimizer_G = torch.optim.Adam(itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()), **adam)
        self.optimizer_D = torch.optim.Adam(itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()), **adam)
        rule = linear_decay_rule(config.n_epochs, config.n_epochs_decay)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, rule) for opt in (self.optimizer_G, self.optimizer_D)]

    def generators(self) -> dict[str, nn.Module]:
        return {"G_A": self.netG_A, "G_B": self.netG_B}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"D_A": self.netD_A, "D_B": self.netD_B}

    def lr(self) -> float:
        return self.optimizer_G.param_groups[0]["lr"]

    def generator_losses(self, real_A, real_B, fake_A, fake_B, rec_A, rec_B) -> dict[str, torch.Tensor]:
        cfg = self.config
        losses = {
            "loss_G_A": gan_loss(self.netD_A(fake_B), True, cfg.gan_mode),
            "loss_G_B": gan_loss(self.netD_B(fake_A), True, cfg.gan_mode),
            "loss_cycle_A": F.l1_loss(rec_A, real_A) * cfg.lambda_A,
            "loss_cycle_B": F.l1_loss(rec_B, real_B) * cfg.lambda_B,
        }
        if cfg.lambda_identity > 0:  # G_A fed a real B should change nothing, and G_B a real A
            losses["loss_idt_A"] = F.l1_loss(self.netG_A(real_B), real_B) * cfg.lambda_B * cfg.lambda_identity
            losses["loss_idt_B"] = F.l1_loss(self.netG_B(real_A), real_A) * cfg.lambda_A * cfg.lambda_identity
        return losses

    def discriminator_loss(self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        mode = self.config.gan_mode
        return 0.5 * (gan_loss(net(real), True, mode) + gan_loss(net(fake.detach()), False, mode))

    def train_step(self, batch: dict, iteration: int) -> dict[str, torch.Tensor]:
        real_A, real_B = batch["AB"]
        fake_B = self.netG_A(real_A)
        rec_A = self.netG_B(fake_B)
        fake_A = self.netG_B(real_B)
        rec_B = self.netG_A(fake_A)

        # generators, with the discriminators frozen
        self._set_requires_grad((self.netD_A, self.netD_B), False)
        self.optimizer_G.zero_grad()
        losses = self.generator_losses(real_A, real_B, fake_A, fake_B, rec_A, rec_B)
        loss_G = sum(losses.values())
        loss_G.backward()
        self.dist.average_gradients(self.optimizer_G)
        self.optimizer_G.step()

        # discriminators, on pooled fakes
        self._set_requires_grad((self.netD_A, self.netD_B), True)
        self.optimizer_D.zero_grad()
        loss_D_A = self.discriminator_loss(self.netD_A, real_B, self.fake_B_pool.query(fake_B))
        loss_D_B = self.discriminator_loss(self.netD_B, real_A, self.fake_A_pool.query(fake_A))
        (loss_D_A + loss_D_B).backward()
        self.dist.average_gradients(self.optimizer_D)
        self.optimizer_D.step()

        if iteration % self.iters_per_epoch == 0:  # the epoch is over
            for scheduler in self.schedulers:
                scheduler.step()
        return {**losses, "loss_G": loss_G, "loss_D_A": loss_D_A, "loss_D_B": loss_D_B}

    @staticmethod
    def _set_requires_grad(nets, flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)

    def sample_grids(self, display: dict, iteration: int, final: bool) -> dict[str, list[torch.Tensor]]:
        """Per direction: the inputs, their translations, and the translations translated back."""
        real_A, real_B = display["A"], display["B"]
        fake_B, fake_A = self.netG_A(real_A), self.netG_B(real_B)
        return {f"cyclegan_a2b_{iteration:08d}": [real_A, fake_B, self.netG_B(fake_B)],
                f"cyclegan_b2a_{iteration:08d}": [real_B, fake_A, self.netG_A(fake_A)]}

    def training_state(self) -> dict:
        return {"optimizer_G": self.optimizer_G.state_dict(), "optimizer_D": self.optimizer_D.state_dict(),
                "schedulers": [s.state_dict() for s in self.schedulers],
                "pools": {"A": self.fake_A_pool.state_dict(), "B": self.fake_B_pool.state_dict()}}

    def load_training_state(self, state: dict) -> None:
        self.optimizer_G.load_state_dict(state["optimizer_G"])
        self.optimizer_D.load_state_dict(state["optimizer_D"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        self.fake_A_pool.load_state_dict(state["pools"]["A"], self.device)
        self.fake_B_pool.load_state_dict(state["pools"]["B"], self.device)

    # per rank (training/distributed.py): each rank pools its own fakes, with its own draws
    def rank_state(self) -> dict:
        pools = {"A": self.fake_A_pool.state_dict(), "B": self.fake_B_pool.state_dict()}
        return {**super().rank_state(), "pools": pools}

    def load_rank_state(self, state: dict) -> None:
        super().load_rank_state(state)
        self.fake_A_pool.load_state_dict(state["pools"]["A"], self.device)
        self.fake_B_pool.load_state_dict(state["pools"]["B"], self.device)

    def seed_rank(self, seed: int) -> None:
        super().seed_rank(seed)
        self.fake_A_pool.rng.manual_seed((seed + 1) % (1 << 63))
        self.fake_B_pool.rng.manual_seed((seed + 2) % (1 << 63))


def build_job(config: CycleGanConfig, data: tuple[UnalignedDataset, UnalignedDataset], device: torch.device,
              dist) -> Job:
    """The trainer, this rank's shard of each epoch, and the display images; `max_iter` stops early (the LR
    schedule still follows the epochs)."""
    train_set, display_set = data
    loader = epoch_loader(train_set, config, NAME, device, dist)
    trainer = CycleGanTrainer(config, iters_per_epoch=len(loader)).to(device)
    total = schedule(config, data, dist.world_size).iterations
    total = min(total, config.max_iter) if config.max_iter is not None else total
    return Job(trainer, CyclingBatches({"AB": loader}), display_set.display(config.display_size), total)


def schedule(config: CycleGanConfig, data: tuple[UnalignedDataset, UnalignedDataset], world_size: int) -> Schedule:
    """The LR schedule's end: upstream's linear policy over this training data."""
    return epoch_schedule(config, len(data[0]), NAME, world_size)
