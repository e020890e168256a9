"""pix2pix configuration: model, loss, data and optimiser keys keep the upstream option names
(junyanz/pytorch-CycleGAN-and-pix2pix `options/*.py` with pix2pix's defaults); logging and snapshot keys are
munit-rt's, as for the other families.

Two keys describe how the generator is used rather than its weights: `direction` (upstream --direction: AtoB
trains A -> B, BtoA the other way; the generator has one direction, recorded in the bundle) and `eval` (upstream
test.py --eval: true runs BatchNorm on its running statistics, false, upstream's default, on each image's own).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from munit_rt.training.config_fields import RunConfig, check_epoch_sizes, key

NAME = "pix2pix"
GENERATOR_KEYS = ("G",)                  # upstream's latest_net_G.pth
NETG_DOWNS = {"unet_128": 7, "unet_256": 8}  # upstream's netG -> num_downs (blocks; H, W multiples of 2**num_downs)
DIRECTIONS = ("AtoB", "BtoA")


@dataclass(frozen=True)
class Pix2PixConfig(RunConfig):  # batch size, max_iter, workers, logging and seed: RunConfig's
    # model: UnetGenerator (netG), PatchGAN on the (A, B) pair (netD basic = n_layers_D 3: 70x70 patches)
    netG: str = key("unet_256", choices=tuple(NETG_DOWNS))  # noqa: N815 - upstream's option names
    input_nc: int = key(3, choices=(1, 3))
    output_nc: int = key(3, choices=(1, 3))
    ngf: int = key(64, min=1)
    ndf: int = key(64, min=1)
    netD: str = key("basic", choices=("basic", "n_layers"))  # noqa: N815
    n_layers_D: int = key(3, min=1)  # noqa: N815 - read with netD n_layers only, as upstream
    norm: str = key("batch", choices=("batch", "instance", "none"))
    no_dropout: bool = False  # pix2pix keeps dropout in the inner U-Net blocks
    init_type: str = key("normal", choices=("normal", "xavier", "kaiming", "orthogonal"))
    init_gain: float = key(0.02, min=0.0)
    # what the generator translates, and upstream test.py's test mode
    direction: str = key("AtoB", choices=DIRECTIONS)
    eval: bool = False
    # losses: GAN + lambda_L1 * L1(fake B, real B)
    gan_mode: str = key("vanilla", choices=("vanilla", "lsgan"))
    lambda_L1: float = key(100.0, min=0.0)  # noqa: N815
    # optimisation: Adam(lr, (beta1, 0.999)); constant LR for n_epochs, then linearly to 0 over n_epochs_decay
    lr: float = key(0.0002, min=0.0)
    beta1: float = key(0.5, min=0.0)
    lr_policy: str = key("linear", choices=("linear",))
    n_epochs: int = key(100, min=0)
    n_epochs_decay: int = key(100, min=0)
    # data: DATA/train/*.png, each an A|B pair side by side (upstream's aligned layout; DATA/test or val shown)
    data_root: str | None = None
    preprocess: str = key("resize_and_crop", choices=("resize_and_crop",))
    load_size: int = key(286, min=1)
    crop_size: int = key(256, min=1)
    no_flip: bool = False

    @property
    def num_downs(self) -> int:
        return NETG_DOWNS[self.netG]

    @property
    def d_layers(self) -> int:
        """The discriminator's stride-2 layers: 3 for netD basic, else n_layers_D (upstream define_D)."""
        return 3 if self.netD == "basic" else self.n_layers_D

    def to_dict(self) -> dict[str, Any]:
        return {"family": NAME, **dataclasses.asdict(self)}


def check_config(config: Pix2PixConfig, source: str) -> None:
    """What single keys cannot say: sizes that fit together."""
    check_epoch_sizes(config, source, 2**config.num_downs,
                      f"for netG {config.netG} (each of its {config.num_downs} blocks halves the size)",
                      config.d_layers, f"a discriminator of {config.d_layers} layers")
