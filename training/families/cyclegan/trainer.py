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

import torch
from torch import nn
from torch.nn import functional as F

from munit_rt.training.engine.driver import Job
from munit_rt.training.epoch_trainer import EpochTrainer, epoch_job
from munit_rt.training.family import Schedule
from munit_rt.training.families.cyclegan.config import NAME, CycleGanConfig
from munit_rt.training.families.cyclegan.data import UnalignedDataset
from munit_rt.training.families.cyclegan.model import build_discriminator, build_generator
from munit_rt.training.networks import epoch_schedule, gan_loss


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


class CycleGanTrainer(EpochTrainer):
    family = NAME

    def __init__(self, config: CycleGanConfig, iters_per_epoch: int):
        super().__init__(config, iters_per_epoch)
        self.netG_A, self.netG_B = build_generator(config, "G_A"), build_generator(config, "G_B")
        self.netD_A, self.netD_B = build_discriminator(config, "D_A"), build_discriminator(config, "D_B")
        self.setup_training([self.netG_A, self.netG_B], [self.netD_A, self.netD_B], config.beta2)
        self.fake_A_pool = ImagePool(config.pool_size, seed=config.seed * 2 + 1)
        self.fake_B_pool = ImagePool(config.pool_size, seed=config.seed * 2 + 2)

    def generators(self) -> dict[str, nn.Module]:
        return {"G_A": self.netG_A, "G_B": self.netG_B}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"D_A": self.netD_A, "D_B": self.netD_B}

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
        losses = self.generator_losses(real_A, real_B, fake_A, fake_B, rec_A, rec_B)
        loss_G = sum(losses.values())
        self.optimize(loss_G, self.optimizer_G)

        # discriminators, on pooled fakes
        self._set_requires_grad((self.netD_A, self.netD_B), True)
        loss_D_A = self.discriminator_loss(self.netD_A, real_B, self.fake_B_pool.query(fake_B))
        loss_D_B = self.discriminator_loss(self.netD_B, real_A, self.fake_A_pool.query(fake_A))
        self.optimize(loss_D_A + loss_D_B, self.optimizer_D)

        self.end_iteration(iteration)
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

    def pool_states(self) -> dict:
        return {"A": self.fake_A_pool.state_dict(), "B": self.fake_B_pool.state_dict()}

    def load_pool_states(self, pools: dict) -> None:
        self.fake_A_pool.load_state_dict(pools["A"], self.device)
        self.fake_B_pool.load_state_dict(pools["B"], self.device)

    def training_state(self) -> dict:
        return {**super().training_state(), "pools": self.pool_states()}

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        self.load_pool_states(state["pools"])

    # per rank (training/distributed.py): each rank pools its own fakes, with its own draws
    def rank_state(self) -> dict:
        return {**super().rank_state(), "pools": self.pool_states()}

    def load_rank_state(self, state: dict) -> None:
        super().load_rank_state(state)
        self.load_pool_states(state["pools"])

    def seed_rank(self, seed: int) -> None:
        super().seed_rank(seed)
        self.fake_A_pool.rng.manual_seed((seed + 1) % (1 << 63))
        self.fake_B_pool.rng.manual_seed((seed + 2) % (1 << 63))


def build_job(config: CycleGanConfig, data: tuple[UnalignedDataset, UnalignedDataset], device: torch.device,
              dist) -> Job:
    """The trainer, this rank's shard of each epoch, and the display images (epoch_job)."""
    return epoch_job(CycleGanTrainer, config, data, device, dist)


def schedule(config: CycleGanConfig, data: tuple[UnalignedDataset, UnalignedDataset], world_size: int) -> Schedule:
    """The LR schedule's end: upstream's linear policy over this training data."""
    return epoch_schedule(config, len(data[0]), NAME, world_size)
