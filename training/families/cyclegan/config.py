"""CycleGAN configuration: model, loss and optimiser keys keep the upstream option names
(junyanz/pytorch-CycleGAN-and-pix2pix `options/*.py`); logging and snapshot keys are munit-rt's, as for MUNIT."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from munit_rt.training.config_fields import RunConfig, check_epoch_sizes, key
from munit_rt.training.errors import ConfigError

NAME = "cyclegan"
GENERATOR_KEYS = ("G_A", "G_B")  # G_A translates A -> B, G_B translates B -> A (upstream names)


@dataclass(frozen=True)
class CycleGanConfig(RunConfig):  # batch size, max_iter, workers, logging and seed: RunConfig's
    # model: ResnetGenerator (n_blocks 9 = upstream resnet_9blocks, 6 = resnet_6blocks), 70x70 PatchGAN
    input_nc: int = key(3, choices=(1, 3))
    output_nc: int = key(3, choices=(1, 3))
    ngf: int = key(64, min=1)
    ndf: int = key(64, min=1)
    n_blocks: int = key(9, min=0)
    n_layers_D: int = key(3, min=1)
    norm: str = key("instance", choices=("instance", "batch", "none"))
    use_dropout: bool = False  # upstream CycleGAN sets --no_dropout by default
    init_type: str = key("normal", choices=("normal", "xavier", "kaiming", "orthogonal"))
    init_gain: float = key(0.02, min=0.0)
    # losses
    gan_mode: str = key("lsgan", choices=("lsgan", "vanilla"))
    lambda_A: float = key(10.0, min=0.0)
    lambda_B: float = key(10.0, min=0.0)
    lambda_identity: float = key(0.5, min=0.0)  # identity weight, relative to lambda_A / lambda_B
    pool_size: int = key(50, min=0)
    # optimisation: constant LR for n_epochs, then linearly to 0 over n_epochs_decay
    lr: float = 0.0002
    beta1: float = key(0.5, min=0.0)
    beta2: float = key(0.999, min=0.0)
    n_epochs: int = key(100, min=0)
    n_epochs_decay: int = key(100, min=0)
    # data: DATA/trainA, trainB (testA, testB optional); resize to load_size^2, random crop_size^2, flip
    data_root: str | None = None
    load_size: int = key(286, min=1)
    crop_size: int = key(256, min=1)
    flip: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"family": NAME, **dataclasses.asdict(self)}


def check_config(config: CycleGanConfig, source: str) -> None:
    """What single keys cannot say: sizes that fit together, channels the identity loss can compare."""
    check_epoch_sizes(config, source, 4, "(the generator halves the size twice)", config.n_layers_D,
                      f"n_layers_D {config.n_layers_D}")
    if config.lambda_identity > 0 and config.input_nc != config.output_nc:
        raise ConfigError(f"{source}: the identity loss (lambda_identity {config.lambda_identity}) needs "
                          "input_nc == output_nc; set lambda_identity: 0")
