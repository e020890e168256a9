"""MUNIT training: the official NVlabs/MUNIT `MUNIT_Trainer` updates, as one FamilyTrainer step for the
driver (training/engine/driver.py), which runs every family's loop.

Run folder (official checkpoint names, so official tools read the snapshots; engine/snapshots.py):

    RUN/checkpoints/gen_%08d.pt   generators + config + iteration
    RUN/checkpoints/dis_%08d.pt   {"a", "b"} discriminator state dicts
    RUN/checkpoints/optimizer.pt  optimizers, LR schedulers, iteration, RNG and data-order state (snapshot_state:
                                  the format of every earlier MUNIT run, so they resume exactly)
    RUN/images/                   sample grids; rows: input, reconstruction, translation with fixed
                                  and with random styles (gen_a2b_*.png, gen_b2a_*.png)
"""
from __future__ import annotations

from typing import Any

import torch

from munit_rt.training.engine.driver import Job
from munit_rt.training.engine.trainer import FamilyTrainer
from munit_rt.training.families.munit.config import NAME, MunitConfig
from munit_rt.training.families.munit.data import TrainingData
from munit_rt.training.families.munit.init import make_scheduler, weights_init
from munit_rt.training.families.munit.losses import generator_total, recon_loss, vgg_perceptual_loss
from munit_rt.training.families.munit.model import AdaINGen, MsImageDis
from munit_rt.training.families.munit.vgg import load_vgg16


class MunitTrainer(FamilyTrainer):
    """Two AdaIN generators, two multi-scale discriminators, their Adam optimizers and LR schedules."""

    family = NAME
    shown_losses = {"loss_gen_total": "gen", "loss_dis_total": "dis", "loss_gen_recon_x_a": "x_a",
                    "loss_gen_recon_x_b": "x_b"}

    def __init__(self, config: MunitConfig):
        super().__init__()
        self.config = config
        self.gen_a = AdaINGen(config.input_dim_a, config.gen)
        self.gen_b = AdaINGen(config.input_dim_b, config.gen)
        self.dis_a = MsImageDis(config.input_dim_a, config.dis)
        self.dis_b = MsImageDis(config.input_dim_b, config.dis)
        self.style_dim = config.gen.style_dim
        # every random style code comes from this generator; its state is part of a snapshot
        self.style_noise = torch.Generator().manual_seed(config.seed)
        # fixed styles for the sample grids, so grids from different iterations compare
        self.display_styles = {d: self.random_styles(config.display_size) for d in ("a", "b")}

        adam = dict(lr=config.lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)
        gen_params = list(self.gen_a.parameters()) + list(self.gen_b.parameters())
        dis_params = list(self.dis_a.parameters()) + list(self.dis_b.parameters())
        self.gen_opt = torch.optim.Adam([p for p in gen_params if p.requires_grad], **adam)
        self.dis_opt = torch.optim.Adam([p for p in dis_params if p.requires_grad], **adam)
        self.gen_scheduler = make_scheduler(self.gen_opt, config)
        self.dis_scheduler = make_scheduler(self.dis_opt, config)

        self.apply(weights_init(config.init))
        self.dis_a.apply(weights_init("gaussian"))  # official: discriminators always N(0, 0.02)
        self.dis_b.apply(weights_init("gaussian"))
        self.vgg = load_vgg16(config.vgg_model_path) if config.vgg_w > 0 else None  # after init: keep its weights

    @property
    def device(self) -> torch.device:
        return next(self.gen_a.parameters()).device

    def random_styles(self, count: int) -> torch.Tensor:
        """Style codes ~ N(0, I), shape [count, style_dim, 1, 1], drawn on the CPU for any device."""
        return torch.randn(count, self.style_dim, 1, 1, generator=self.style_noise).to(self.device)

    def dis_update(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, torch.Tensor]:
        s_a, s_b = self.random_styles(x_a.size(0)), self.random_styles(x_b.size(0))
        with torch.no_grad():  # the fakes are detached anyway (official: .detach())
            c_a, _ = self.gen_a.encode(x_a)
            c_b, _ = self.gen_b.encode(x_b)
            x_ba = self.gen_a.decode(c_b, s_a)
            x_ab = self.gen_b.decode(c_a, s_b)
        losses = {"loss_dis_a": self.dis_a.calc_dis_loss(x_ba, x_a),
                  "loss_dis_b": self.dis_b.calc_dis_loss(x_ab, x_b)}
        total = self.config.gan_w * losses["loss_dis_a"] + self.config.gan_w * losses["loss_dis_b"]
        self.optimize(total, self.dis_opt)
        return {**losses, "loss_dis_total": total}

    def gen_update(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        s_a, s_b = self.random_styles(x_a.size(0)), self.random_styles(x_b.size(0))
        # encode, decode within and across domains, encode the translations again
        c_a, s_a_prime = self.gen_a.encode(x_a)
        c_b, s_b_prime = self.gen_b.encode(x_b)
        x_a_recon = self.gen_a.decode(c_a, s_a_prime)
        x_b_recon = self.gen_b.decode(c_b, s_b_prime)
        x_ba = self.gen_a.decode(c_b, s_a)
        x_ab = self.gen_b.decode(c_a, s_b)
        c_b_recon, s_a_recon = self.gen_a.encode(x_ba)
        c_a_recon, s_b_recon = self.gen_b.encode(x_ab)

        losses = {
            "loss_gen_recon_x_a": recon_loss(x_a_recon, x_a),
            "loss_gen_recon_x_b": recon_loss(x_b_recon, x_b),
            "loss_gen_recon_s_a": recon_loss(s_a_recon, s_a),
            "loss_gen_recon_s_b": recon_loss(s_b_recon, s_b),
            "loss_gen_recon_c_a": recon_loss(c_a_recon, c_a),
            "loss_gen_recon_c_b": recon_loss(c_b_recon, c_b),
            "loss_gen_adv_a": self.dis_a.calc_gen_loss(x_ba),
            "loss_gen_adv_b": self.dis_b.calc_gen_loss(x_ab),
        }
        if cfg.recon_x_cyc_w > 0:  # style-augmented cycle: back with the image's own style
            losses["loss_gen_cycrecon_x_a"] = recon_loss(self.gen_a.decode(c_a_recon, s_a_prime), x_a)
            losses["loss_gen_cycrecon_x_b"] = recon_loss(self.gen_b.decode(c_b_recon, s_b_prime), x_b)
        if cfg.vgg_w > 0:  # domain-invariant perceptual loss: translation keeps the source's content
            losses["loss_gen_vgg_a"] = vgg_perceptual_loss(self.vgg, x_ba, x_b)
            losses["loss_gen_vgg_b"] = vgg_perceptual_loss(self.vgg, x_ab, x_a)
        total = generator_total(losses, cfg)
        self.optimize(total, self.gen_opt)
        return {**losses, "loss_gen_total": total}

    # -- the driver's interface (engine/trainer.py) -----------------------------------------------------
    def generators(self) -> dict[str, torch.nn.Module]:
        return {"a": self.gen_a, "b": self.gen_b}

    def discriminators(self) -> dict[str, torch.nn.Module]:
        return {"a": self.dis_a, "b": self.dis_b}

    def lr(self) -> float:
        return self.gen_opt.param_groups[0]["lr"]

    def train_step(self, batch: Any, iteration: int) -> dict[str, torch.Tensor]:
        """The official order: discriminator update, generator update, then the LR schedules."""
        images_a, images_b = batch
        losses = self.dis_update(images_a, images_b)
        losses.update(self.gen_update(images_a, images_b))
        self.step_schedulers()
        return losses

    def step_schedulers(self) -> None:
        for scheduler in (self.gen_scheduler, self.dis_scheduler):
            if scheduler is not None:
                scheduler.step()

    @torch.no_grad()
    def sample(self, x_a: torch.Tensor, x_b: torch.Tensor, seed: int) -> dict[str, list[torch.Tensor]]:
        """Grid rows per direction: input, reconstruction, translation with fixed and with random styles."""
        self.eval()
        noise = torch.Generator().manual_seed(seed)  # not the training stream: sampling must not shift it
        rows = {}
        for name, x, source, target, fixed in (("a2b", x_a, self.gen_a, self.gen_b, self.display_styles["b"]),
                                               ("b2a", x_b, self.gen_b, self.gen_a, self.display_styles["a"])):
            content, style = source.encode(x)
            random_styles = torch.randn(x.size(0), self.style_dim, 1, 1, generator=noise).to(x.device)
            rows[name] = [x, source.decode(content, style), target.decode(content, fixed[: x.size(0)].to(x.device)),
                          target.decode(content, random_styles)]
        self.train()
        return rows

    def grids_due(self, iteration: int, final: bool) -> bool:
        """Grids of the test and train splits every image_save_iter, `current` ones every image_display_iter;
        none with the final snapshot."""
        cfg = self.config
        return not final and (iteration % cfg.image_save_iter == 0 or iteration % cfg.image_display_iter == 0)

    def sample_grids(self, display: Any, iteration: int, final: bool) -> dict[str, list[torch.Tensor]]:
        ticks = []
        if iteration % self.config.image_save_iter == 0:
            ticks.append((f"{iteration:08d}", ("test", "train")))
        if iteration % self.config.image_display_iter == 0:
            ticks.append(("current", ("train",)))
        grids = {}
        for tag, splits in ticks:
            seed = self.config.seed * 1_000_003 + (int(tag) if tag.isdigit() else 0)
            for split in splits:
                for direction, rows in self.sample(display[split]["a"], display[split]["b"], seed).items():
                    grids[f"gen_{direction}_{split}_{tag}"] = rows
        return grids

    def snapshot_state(self, iteration: int, data_state: Any) -> dict:
        """Everything besides the weights that an exact resume needs (loads with weights_only=True)."""
        return {
            "gen": self.gen_opt.state_dict(), "dis": self.dis_opt.state_dict(),
            "gen_scheduler": self.gen_scheduler.state_dict() if self.gen_scheduler else None,
            "dis_scheduler": self.dis_scheduler.state_dict() if self.dis_scheduler else None,
            "iteration": iteration,
            "rng": {"torch": torch.get_rng_state(), "style_noise": self.style_noise.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
            "data": data_state,
        }

    def holds_snapshot_state(self, state: Any, iteration: int) -> bool:
        return isinstance(state, dict) and state.get("iteration") == iteration and "rng" in state

    def load_snapshot_state(self, state: dict) -> None:
        self.gen_opt.load_state_dict(state["gen"])
        self.dis_opt.load_state_dict(state["dis"])
        for scheduler, key in ((self.gen_scheduler, "gen_scheduler"), (self.dis_scheduler, "dis_scheduler")):
            if scheduler is not None and state[key] is not None:
                scheduler.load_state_dict(state[key])
        torch.set_rng_state(state["rng"]["torch"])
        self.style_noise.set_state(state["rng"]["style_noise"])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    # this process's noise, which differs between the ranks of a distributed run (engine/distributed.py)
    def rank_state(self) -> dict:
        return {**super().rank_state(), "style_noise": self.style_noise.get_state()}

    def load_rank_state(self, state: dict) -> None:
        super().load_rank_state(state)
        self.style_noise.set_state(state["style_noise"])

    def seed_rank(self, seed: int) -> None:
        super().seed_rank(seed)
        self.style_noise.manual_seed(seed)


def build_job(config: MunitConfig, data: TrainingData, device: torch.device, dist: Any) -> Job:
    """The trainer, this rank's paired batches, and the first display_size images of each split."""
    trainer = MunitTrainer(config).to(device)
    batches = data.batches(config, pin_memory=device.type == "cuda", rank=dist.rank, world_size=dist.world_size)
    return Job(trainer, batches, data.display(config.display_size), config.max_iter)
