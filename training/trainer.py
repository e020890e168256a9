"""MUNIT training: the official NVlabs/MUNIT `MUNIT_Trainer` updates and MUNIT's part of the resumable
loop in `training/driver.py` (steps, snapshots, sample grids).

Run folder (official checkpoint names, so official tools read the snapshots):

    RUN/config.yaml               the resolved config
    RUN/checkpoints/gen_%08d.pt   generators + config + iteration (training.checkpoint.save_generators)
    RUN/checkpoints/dis_%08d.pt   {"a", "b"} discriminator state dicts
    RUN/checkpoints/optimizer.pt  optimizers, LR schedulers, iteration, RNG and data-order state
    RUN/images/                   sample grids; rows: input, reconstruction, translation with fixed
                                  and with random styles (gen_a2b_*.png, gen_b2a_*.png)
    RUN/logs/                     stats.jsonl (one JSON object per log tick) + TensorBoard events

Under torchrun every family trains data-parallel (training/distributed.py): rank 0 writes the run folder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from munit_rt.training.checkpoint import atomic_torch_save, save_generators, torch_load
from munit_rt.training.config import MunitConfig, load_config
from munit_rt.training import distributed
from munit_rt.training.data import PairedBatches, open_training_data, save_image_grid
from munit_rt.training.driver import NullLog, StatsLog  # noqa: F401 (re-exported: they lived here)
from munit_rt.training.driver import TrainingJob, TrainResult, resolve_device, resume_point, run_training, snapshot_pattern
from munit_rt.training.errors import CheckpointError
from munit_rt.training.init import make_scheduler, weights_init
from munit_rt.training.losses import generator_total, recon_loss, vgg_perceptual_loss
from munit_rt.training.munit import AdaINGen, MsImageDis
from munit_rt.training.official import load_state_dict_strict, remap_munit
from munit_rt.training.vgg import load_vgg16

_GEN_SNAPSHOT_RE = snapshot_pattern("gen")


class MunitTrainer(nn.Module):
    """Two AdaIN generators, two multi-scale discriminators, their Adam optimizers and LR schedules."""

    dist: distributed.Distributed = distributed.SINGLE  # set by train() under torchrun

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
        self.dis_opt.zero_grad()
        s_a, s_b = self.random_styles(x_a.size(0)), self.random_styles(x_b.size(0))
        with torch.no_grad():  # the fakes are detached anyway (official: .detach())
            c_a, _ = self.gen_a.encode(x_a)
            c_b, _ = self.gen_b.encode(x_b)
            x_ba = self.gen_a.decode(c_b, s_a)
            x_ab = self.gen_b.decode(c_a, s_b)
        losses = {"loss_dis_a": self.dis_a.calc_dis_loss(x_ba, x_a),
                  "loss_dis_b": self.dis_b.calc_dis_loss(x_ab, x_b)}
        total = self.config.gan_w * losses["loss_dis_a"] + self.config.gan_w * losses["loss_dis_b"]
        total.backward()
        self.dist.average_gradients(self.dis_opt)
        self.dis_opt.step()
        return {**losses, "loss_dis_total": total}

    def gen_update(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        self.gen_opt.zero_grad()
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
        total.backward()
        self.dist.average_gradients(self.gen_opt)
        self.gen_opt.step()
        return {**losses, "loss_gen_total": total}

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

    def training_state(self, iteration: int, data_state: dict) -> dict:
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

    def load_training_state(self, state: dict) -> None:
        self.gen_opt.load_state_dict(state["gen"])
        self.dis_opt.load_state_dict(state["dis"])
        for scheduler, key in ((self.gen_scheduler, "gen_scheduler"), (self.dis_scheduler, "dis_scheduler")):
            if scheduler is not None and state[key] is not None:
                scheduler.load_state_dict(state[key])
        torch.set_rng_state(state["rng"]["torch"])
        self.style_noise.set_state(state["rng"]["style_noise"])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    # this process's noise, which differs between the ranks of a distributed run (training/distributed.py)
    def rank_state(self) -> dict:
        return {"torch": torch.get_rng_state(), "style_noise": self.style_noise.get_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def load_rank_state(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        self.style_noise.set_state(state["style_noise"])
        if state["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def seed_rank(self, seed: int) -> None:
        torch.manual_seed(seed)
        self.style_noise.manual_seed(seed)


# ---------------------------------------------------------------------------------------------- snapshots

def save_snapshot(trainer: MunitTrainer, batches: PairedBatches, checkpoint_dir: Path, iteration: int) -> None:
    """dis, optimizer, then gen last: a gen_*.pt exists only once its snapshot is complete.
    Distributed: every rank calls this; rank 0 writes, with the ranks' noise states, the others wait."""
    dist = trainer.dist
    ranks = dist.gather_to_main(trainer.rank_state())
    if dist.is_main:
        atomic_torch_save({"a": trainer.dis_a.state_dict(), "b": trainer.dis_b.state_dict()},
                          checkpoint_dir / f"dis_{iteration:08d}.pt")
        state = trainer.training_state(iteration, batches.state_dict())
        if ranks is not None:
            state["distributed"] = {"world_size": dist.world_size, "ranks": ranks}
        atomic_torch_save(state, checkpoint_dir / "optimizer.pt")
        save_generators(checkpoint_dir / f"gen_{iteration:08d}.pt", {"a": trainer.gen_a, "b": trainer.gen_b},
                        trainer.config, iteration)
    dist.barrier()


def load_snapshot(trainer: MunitTrainer, batches: PairedBatches, gen_path: Path) -> int:
    """Restore weights, optimizers, schedulers, RNG and data position; return the iteration."""
    iteration = int(_GEN_SNAPSHOT_RE.match(gen_path.name).group(1))
    dis_path, state_path = gen_path.with_name(f"dis_{iteration:08d}.pt"), gen_path.with_name("optimizer.pt")
    gens, diss, state = torch_load(gen_path), torch_load(dis_path), torch_load(state_path)
    for path, weights in ((gen_path, gens), (dis_path, diss)):
        if not (isinstance(weights, dict) and {"a", "b"} <= set(weights)):
            raise CheckpointError(f"{path}: expected the state dicts of domains 'a' and 'b'")
    if not isinstance(state, dict) or state.get("iteration") != iteration or "rng" not in state:
        raise CheckpointError(f"{state_path}: does not hold the munit-rt training state of {gen_path.name} "
                              "(written by another tool or another snapshot); cannot resume exactly")
    for domain in ("a", "b"):
        gen, dis = getattr(trainer, f"gen_{domain}"), getattr(trainer, f"dis_{domain}")
        load_state_dict_strict(gen, remap_munit(gens[domain], gen), f"{gen_path} [domain {domain}]")
        load_state_dict_strict(dis, diss[domain], f"{dis_path} [domain {domain}]")
    try:
        trainer.load_training_state(state)
        batches.load_state_dict(state["data"])
        saved_world = distributed.restore_rank(trainer, state, iteration, trainer.config.seed)
        batches.batches_done = distributed.rescale_position(batches.batches_done, saved_world,
                                                            trainer.dist.world_size)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{state_path}: cannot restore the training state ({exc})") from None
    return iteration


# ---------------------------------------------------------------------------------------------- progress

class TrainingCallback:
    """UI hooks; the loop itself prints nothing."""

    def on_start(self, config: MunitConfig, run_dir: Path, iteration: int, device: torch.device) -> None: ...
    def on_step(self, iteration: int, scalars: dict[str, float]) -> None: ...
    def on_end(self) -> None: ...


class TqdmProgress(TrainingCallback):
    SHOWN = {"loss_gen_total": "gen", "loss_dis_total": "dis", "loss_gen_recon_x_a": "x_a",
             "loss_gen_recon_x_b": "x_b"}

    def on_start(self, config, run_dir, iteration, device):
        from tqdm import tqdm

        self.bar = tqdm(total=config.max_iter, initial=iteration, unit="it", dynamic_ncols=True)
        self.bar.write(f"Training MUNIT on {device} from iteration {iteration} to {config.max_iter}; "
                       f"run folder {run_dir}")

    def on_step(self, iteration, scalars):
        self.bar.update(1)
        self.bar.set_postfix({short: f"{scalars[k]:.3f}" for k, short in self.SHOWN.items()}, refresh=False)

    def on_end(self):
        self.bar.close()


# --------------------------------------------------------------------------------------------- the loop

@dataclass
class MunitJob(TrainingJob):
    """MUNIT's part of the driver: discriminator then generator update, official snapshot names, and sample
    grids of the test and train splits every image_save_iter plus `current` ones every image_display_iter."""

    display: dict[str, dict[str, torch.Tensor]]  # split -> domain -> fixed images on the device

    def step(self, batch, iteration):
        images_a, images_b = batch
        lr = self.trainer.gen_opt.param_groups[0]["lr"]
        losses = self.trainer.dis_update(images_a, images_b)
        losses.update(self.trainer.gen_update(images_a, images_b))
        self.trainer.step_schedulers()
        return losses, lr

    def save_snapshot(self, checkpoint_dir, iteration):
        save_snapshot(self.trainer, self.batches, checkpoint_dir, iteration)

    def load_snapshot(self, path):
        return load_snapshot(self.trainer, self.batches, path)

    def write_sample_grids(self, image_dir, iteration, final):
        config = self.trainer.config
        if final:  # MUNIT writes grids only on image_save_iter / image_display_iter ticks
            return
        if iteration % config.image_save_iter == 0:
            _write_samples(self.trainer, self.display, image_dir, f"{iteration:08d}", ("test", "train"))
        if iteration % config.image_display_iter == 0:
            _write_samples(self.trainer, self.display, image_dir, "current", ("train",))

    def start_callback(self, callback, run_dir, iteration):
        callback.on_start(self.trainer.config, run_dir, iteration, self.device)

    def networks(self):
        trainer = self.trainer
        return {"a": trainer.gen_a, "b": trainer.gen_b}, {"a": trainer.dis_a, "b": trainer.dis_b}


def train(config_path: str | Path, data_dir: str | Path | None, out_dir: str | Path, *,
          max_iter: int | None = None, resume: bool = False, device: str = "auto", seed: int | None = None,
          callbacks: tuple[TrainingCallback, ...] = ()) -> TrainResult:
    """Train MUNIT into `out_dir` (see module docstring); Ctrl-C saves a snapshot and re-raises.
    Under torchrun (WORLD_SIZE > 1) this process is one rank of a data-parallel run."""
    # Initialize: resolve config and device; nothing is written until config, data and run folder check out
    config = load_config(config_path)
    overrides = {key: value for key, value in (("max_iter", max_iter), ("seed", seed)) if value is not None}
    config = dataclasses.replace(config, **overrides)
    dist, torch_device = distributed.setup(resolve_device(device))
    try:
        return _train(config, data_dir, Path(out_dir), resume, torch_device, dist, callbacks)
    finally:
        dist.shutdown()


def _train(config: MunitConfig, data_dir, run_dir: Path, resume: bool, torch_device: torch.device,
           dist: distributed.Distributed, callbacks: tuple[TrainingCallback, ...]) -> TrainResult:
    # Load training set (checks folders and image headers)
    data = open_training_data(config, data_dir, world_size=dist.world_size)

    # Check the run folder (rank 0 decides for every rank)
    snapshot = dist.decide_on_main(lambda: resume_point(run_dir, "gen", resume))
    distributed.check_readable(dist, snapshot)

    # Construct networks (the VGG weights file, if any, is checked here)
    torch.manual_seed(config.seed)
    trainer = MunitTrainer(config).to(torch_device)
    trainer.dist = dist
    batches = data.batches(config, pin_memory=torch_device.type == "cuda", rank=dist.rank,
                           world_size=dist.world_size)

    # Fixed display images for the sample grids (official: the first display_size of each split)
    display = {split: {d: ds.display_batch(config.display_size).to(torch_device) for d, ds in datasets.items()}
               for split, datasets in (("train", data.train), ("test", data.test))}
    job = MunitJob(trainer, batches, torch_device, config.max_iter, display)
    return run_training(job, run_dir, snapshot=snapshot, callbacks=callbacks)


def _write_samples(trainer: MunitTrainer, display: dict, image_dir: Path, tag: str, splits: tuple) -> None:
    seed = trainer.config.seed * 1_000_003 + (int(tag) if tag.isdigit() else 0)
    for split in splits:
        for direction, rows in trainer.sample(display[split]["a"], display[split]["b"], seed).items():
            save_image_grid(rows, image_dir / f"gen_{direction}_{split}_{tag}.png")
