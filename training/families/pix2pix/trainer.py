"""pix2pix training with the upstream junyanz/pytorch-CycleGAN-and-pix2pix recipe (BSD licence; written anew
here, not copied): `pix2pix_model.py`, `networks.get_scheduler`.

Per iteration, with real_A -> real_B the config's direction (BtoA swaps the halves of each pair):
fake_B = G(real_A); then D (the PatchGAN on channel-concatenated pairs) minimises
0.5 * (GAN(D(real_A, fake_B), fake) + GAN(D(real_A, real_B), real)); then G, with D frozen, minimises
GAN(D(real_A, fake_B), real) + lambda_L1 * L1(fake_B, real_B). Adam(lr, (beta1, 0.999)) for both; LR constant
for n_epochs, then linearly to 0 over n_epochs_decay (stepped once per epoch after its last iteration).
The driver (training/engine/driver.py) runs the loop; snapshots are pix2pix_%08d.pt (G), dis_%08d.pt (D) and
optimizer.pt, plus upstream's latest_net_G.pth and latest_net_D.pth (plain state dicts, the newest snapshot's),
which upstream's test.py reads.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from munit_rt.training.engine.driver import Job
from munit_rt.training.epoch_trainer import EpochTrainer, epoch_job
from munit_rt.training.family import Schedule
from munit_rt.training.families.pix2pix.config import NAME, Pix2PixConfig
from munit_rt.training.families.pix2pix.data import AlignedDataset
from munit_rt.training.families.pix2pix.model import build_discriminator, build_generator, inference_generator
from munit_rt.training.networks import epoch_schedule, gan_loss

UPSTREAM_FILES = {"G": "latest_net_G.pth", "D": "latest_net_D.pth"}  # upstream save_networks('latest')


class Pix2PixTrainer(EpochTrainer):
    family = NAME
    shown_losses = {"loss_G_GAN": "G_GAN", "loss_G_L1": "G_L1", "loss_D_real": "D_real", "loss_D_fake": "D_fake"}

    def __init__(self, config: Pix2PixConfig, iters_per_epoch: int):
        super().__init__(config, iters_per_epoch)
        self.netG, self.netD = build_generator(config), build_discriminator(config)
        self.setup_training([self.netG], [self.netD], beta2=0.999)

    def generators(self) -> dict[str, nn.Module]:
        return {"G": self.netG}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"D": self.netD}

    def oriented(self, pair) -> tuple[torch.Tensor, torch.Tensor]:
        """(real_A, real_B) of a batch of (A half, B half): swapped for BtoA, as upstream's set_input."""
        a, b = pair
        return (a, b) if self.config.direction == "AtoB" else (b, a)

    def train_step(self, batch: dict, iteration: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        real_A, real_B = self.oriented(batch["AB"])
        fake_B = self.netG(real_A)

        # discriminator: real pairs vs fake pairs
        self.netD.requires_grad_(True)
        loss_D_fake = gan_loss(self.netD(torch.cat([real_A, fake_B], 1).detach()), False, cfg.gan_mode)
        loss_D_real = gan_loss(self.netD(torch.cat([real_A, real_B], 1)), True, cfg.gan_mode)
        loss_D = 0.5 * (loss_D_fake + loss_D_real)
        self.optimize(loss_D, self.optimizer_D)

        # generator, with the discriminator frozen: fool D, and stay close to real_B
        self.netD.requires_grad_(False)
        loss_G_GAN = gan_loss(self.netD(torch.cat([real_A, fake_B], 1)), True, cfg.gan_mode)
        loss_G_L1 = F.l1_loss(fake_B, real_B) * cfg.lambda_L1
        loss_G = loss_G_GAN + loss_G_L1
        self.optimize(loss_G, self.optimizer_G)

        self.end_iteration(iteration)
        return {"loss_G_GAN": loss_G_GAN, "loss_G_L1": loss_G_L1, "loss_G": loss_G, "loss_D_real": loss_D_real,
                "loss_D_fake": loss_D_fake, "loss_D": loss_D}

    def sample_grids(self, display: dict, iteration: int, final: bool) -> dict[str, list[torch.Tensor]]:
        """Inputs, translations (as the bundle will run the generator: the config's test mode, no dropout),
        targets."""
        real_A, real_B = self.oriented((display["A"], display["B"]))
        fake_B = inference_generator(self.netG, self.config.eval)(real_A)
        return {f"{NAME}_{self.config.direction}_{iteration:08d}": [real_A, fake_B, real_B]}

    def upstream_files(self) -> dict[str, dict[str, torch.Tensor]]:
        """latest_net_G.pth and latest_net_D.pth, CPU tensors as upstream's save_networks writes them."""
        nets = {"G": self.netG, "D": self.netD}
        return {name: {k: v.detach().cpu().clone() for k, v in nets[key].state_dict().items()}
                for key, name in UPSTREAM_FILES.items()}


def build_job(config: Pix2PixConfig, data: tuple[AlignedDataset, AlignedDataset], device: torch.device, dist) -> Job:
    """The trainer, this rank's shard of each epoch, and the display pairs (epoch_job)."""
    return epoch_job(Pix2PixTrainer, config, data, device, dist)


def schedule(config: Pix2PixConfig, data: tuple[AlignedDataset, AlignedDataset], world_size: int) -> Schedule:
    """The LR schedule's end: upstream's linear policy over this training data."""
    return epoch_schedule(config, len(data[0]), NAME, world_size)
