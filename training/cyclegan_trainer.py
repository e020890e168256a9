"""CycleGAN training with the upstream junyanz/pytorch-CycleGAN-and-pix2pix recipe (BSD licence; written
anew here, not copied): `cycle_gan_model.py`, `util/image_pool.py`, `networks.get_scheduler`,
`data/unaligned_dataset.py`.

Per iteration: G_A (A -> B) and G_B (B -> A) minimise LSGAN + lambda * cycle L1 + lambda * lambda_identity *
identity L1 with the discriminators frozen; then D_A (real B vs pooled fake B) and D_B (real A vs pooled
fake A) minimise half the LSGAN loss each. LR: constant for n_epochs, then linearly to 0 over
n_epochs_decay (LambdaLR, stepped once per epoch after its last iteration, so epoch n_epochs + k
trains with 1 - k / (n_epochs_decay + 1)). The run folder is described in `training/loop.py`.
"""
from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from munit_rt.training import distributed
from munit_rt.training.config import CycleGanConfig, load_any_config
from munit_rt.training.cyclegan import build_discriminator, build_generator, init_weights
from munit_rt.training.data import EpochBatchSampler, IMAGE_EXTENSIONS, check_images_readable, find_images, per_step
from munit_rt.training.driver import TrainResult, resolve_device
from munit_rt.training.errors import DataError
from munit_rt.training.loop import CyclingBatches, FamilyCallback, FamilyTrainer, check_run_dir, load_image, run, to_tensor


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


def linear_decay_rule(config: CycleGanConfig):
    """Upstream `lambda_rule` (epoch_count 1): the LR factor for 0-based epoch `epoch`."""
    return lambda epoch: 1.0 - max(0, epoch + 1 - config.n_epochs) / float(config.n_epochs_decay + 1)


def gan_loss(prediction: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """LSGAN: MSE to 1 / 0; 'vanilla': BCE with logits."""
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    return F.binary_cross_entropy_with_logits(prediction, target)


class CycleGanTrainer(FamilyTrainer):
    family = "cyclegan"

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
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, linear_decay_rule(config))
                           for opt in (self.optimizer_G, self.optimizer_D)]

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

    def sample(self, display: dict) -> dict[str, list[torch.Tensor]]:
        real_A, real_B = display["A"], display["B"]
        fake_B, fake_A = self.netG_A(real_A), self.netG_B(real_B)
        return {"cyclegan_a2b": [real_A, fake_B, self.netG_B(fake_B)],
                "cyclegan_b2a": [real_B, fake_A, self.netG_A(fake_A)]}

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


# ------------------------------------------------------------------------------------------------ data

class UnalignedDataset(Dataset):
    """Item (index, epoch) -> (A[index % len A], a random B), each resized to load_size x load_size
    (bicubic), randomly cropped to crop_size and flipped; the randomness follows (seed, epoch, index)."""

    def __init__(self, paths_a: list[Path], paths_b: list[Path], config: CycleGanConfig, name: str):
        self.paths = {"A": paths_a, "B": paths_b}
        self.config, self.name = config, name
        self.channels = {"A": config.input_nc, "B": config.output_nc}

    def __len__(self) -> int:
        return max(len(self.paths["A"]), len(self.paths["B"]))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        rng = random.Random(f"{self.config.seed}/{self.name}/{epoch}/{index}")
        index_b = rng.randrange(len(self.paths["B"]))
        return (self.load("A", index % len(self.paths["A"]), rng, self.config.flip),
                self.load("B", index_b, rng, self.config.flip))

    def load(self, domain: str, index: int, rng: random.Random | None, flip: bool) -> torch.Tensor:
        cfg = self.config
        img = load_image(self.paths[domain][index], self.channels[domain])
        img = img.resize((cfg.load_size, cfg.load_size), Image.BICUBIC)
        if rng is None:  # fixed display crop: the centre
            top = left = (cfg.load_size - cfg.crop_size) // 2
        else:
            top, left = rng.randint(0, cfg.load_size - cfg.crop_size), rng.randint(0, cfg.load_size - cfg.crop_size)
        img = img.crop((left, top, left + cfg.crop_size, top + cfg.crop_size))
        if flip and rng is not None and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return to_tensor(img)

    def display(self, count: int) -> dict[str, torch.Tensor]:
        return {d: torch.stack([self.load(d, i, None, False) for i in range(min(count, len(self.paths[d])))])
                for d in ("A", "B")}


def open_unaligned_data(config: CycleGanConfig, data_dir,
                        world_size: int = 1) -> tuple[UnalignedDataset, UnalignedDataset]:
    """(train, display) datasets from DATA/trainA, trainB (display: testA/testB when both exist)."""
    root = data_dir if data_dir is not None else config.data_root
    if root is None:
        raise DataError("no training data: pass --data DIR (with trainA/ and trainB/) or set data_root")
    found = {}
    for split in ("train", "test"):
        for domain in ("A", "B"):
            folder = Path(root) / f"{split}{domain}"
            if not folder.is_dir():
                if split == "test":
                    continue
                raise DataError(f"{folder}: no such folder (expected the layout DATA/trainA, trainB, testA, testB)")
            paths = find_images(folder)
            if not paths:
                raise DataError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}, searched recursively)")
            check_images_readable(paths)
            found[f"{split}{domain}"] = paths
    train = UnalignedDataset(found["trainA"], found["trainB"], config, "train")
    if len(train) < config.batch_size * world_size:
        raise DataError(f"{root}: {len(train)} training images, fewer than batch_size {config.batch_size}"
                        f"{per_step(world_size)}")
    test = (UnalignedDataset(found["testA"], found["testB"], config, "test")
            if {"testA", "testB"} <= set(found) else train)
    return train, test


# -------------------------------------------------------------------------------------------- entry

def train(config_path: str | Path, data_dir: str | Path | None, out_dir: str | Path, *,
          max_iter: int | None = None, resume: bool = False, device: str = "auto", seed: int | None = None,
          callbacks: tuple[FamilyCallback, ...] = ()) -> TrainResult:
    """Train CycleGAN into `out_dir`; `max_iter` stops early (the LR schedule still follows the epochs)."""
    # Initialize: config, device, data and run folder are checked before anything is written
    config = load_any_config(config_path, family="cyclegan")
    overrides = {key: value for key, value in (("max_iter", max_iter), ("seed", seed)) if value is not None}
    config = dataclasses.replace(config, **overrides)
    dist, torch_device = distributed.setup(resolve_device(device))
    try:
        train_set, display_set = open_unaligned_data(config, data_dir, dist.world_size)
        run_dir = Path(out_dir)
        snapshot = dist.decide_on_main(lambda: check_run_dir(run_dir, "cyclegan", resume))
        distributed.check_readable(dist, snapshot)

        # Construct networks and the data stream (under torchrun: this rank's shard of each epoch)
        torch.manual_seed(config.seed)
        sampler = EpochBatchSampler(len(train_set), config.batch_size, config.seed, "cyclegan", dist.rank,
                                    dist.world_size)
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=config.num_workers,
                            pin_memory=torch_device.type == "cuda",
                            generator=torch.Generator().manual_seed(config.seed))
        trainer = CycleGanTrainer(config, iters_per_epoch=len(sampler)).to(torch_device)
        trainer.dist = dist
        total = len(sampler) * (config.n_epochs + config.n_epochs_decay)
        total = min(total, config.max_iter) if config.max_iter is not None else total
        return run(trainer, CyclingBatches({"AB": loader}), display_set.display(config.display_size), run_dir,
                   total_iters=total, snapshot=snapshot, callbacks=callbacks)
    finally:
        dist.shutdown()
