"""StarGAN configuration: model, loss and optimiser keys keep the upstream option names (yunjey/stargan
`main.py`); logging and snapshot keys are munit-rt's, as for MUNIT."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from munit_rt.training.config_fields import RunConfig, key
from munit_rt.training.errors import ConfigError

NAME = "stargan"
GENERATOR_KEYS = ("G",)
CELEBA_DEFAULT_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


@dataclass(frozen=True)
class StarGanConfig(RunConfig):  # max_iter, logging and seed as RunConfig's unless redeclared
    # model (upstream defaults: 128x128, 64 filters, 6 residual blocks in G, 6 stride-2 convs in D)
    image_size: int = key(128, min=1)
    g_conv_dim: int = key(64, min=1)
    d_conv_dim: int = key(64, min=1)
    g_repeat_num: int = key(6, min=0)
    d_repeat_num: int = key(6, min=1)
    # losses
    lambda_cls: float = key(1.0, min=0.0)
    lambda_rec: float = key(10.0, min=0.0)
    lambda_gp: float = key(10.0, min=0.0)
    # optimisation: n_critic D steps per G step; LR linearly to 0 over the last num_iters_decay iterations
    batch_size: int = key(16, positive=True)
    num_iters: int = key(200000, min=1)
    num_iters_decay: int = key(100000, min=0)
    lr_update_step: int = key(1000, min=1)
    g_lr: float = key(0.0001, min=0.0)
    d_lr: float = key(0.0001, min=0.0)
    n_critic: int = key(5, min=1)
    beta1: float = key(0.5, min=0.0)
    beta2: float = key(0.999, min=0.0)
    # data: CelebA-format attribute files; a second one trains jointly through the mask vector
    image_dir: str | None = None
    attr_path: str | None = None
    selected_attrs: tuple[str, ...] = key(CELEBA_DEFAULT_ATTRS, type=tuple)
    image_dir_2: str | None = None
    attr_path_2: str | None = None
    selected_attrs_2: tuple[str, ...] = key((), type=tuple)
    crop_size: int = key(178, min=1)  # center crop before resizing to image_size (upstream celeba_crop_size)
    test_count: int = key(2000, min=0)  # held-out images per attribute file: the last ones after the shuffle
    split_seed: int | None = key(1234, type=int, nullable=True)  # shuffles the lines before the split; null: keep
    flip: bool = True
    num_workers: int = key(1, min=0)
    # logging and snapshots (iterations)
    log_iter: int = key(10, positive=True)
    snapshot_save_iter: int = key(10000, positive=True)

    @property
    def num_datasets(self) -> int:
        return 2 if self.selected_attrs_2 else 1

    @property
    def cls_dim(self) -> int:
        """Outputs of the discriminator's classifier: every attribute of every dataset."""
        return len(self.selected_attrs) + len(self.selected_attrs_2)

    @property
    def c_dim(self) -> int:
        """Length of the generator's label vector (with two datasets: both label sets + a 2-way mask)."""
        return self.cls_dim + (2 if self.num_datasets == 2 else 0)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["selected_attrs"], data["selected_attrs_2"] = list(self.selected_attrs), list(self.selected_attrs_2)
        return {"family": NAME, **data}


def check_config(config: StarGanConfig, source: str) -> None:
    """What single keys cannot say: sizes that fit together, a complete second dataset."""
    if not config.selected_attrs:
        raise ConfigError(f"{source}: key 'selected_attrs' must name at least one attribute")
    if config.image_size % 2**config.d_repeat_num:
        raise ConfigError(f"{source}: key 'image_size' ({config.image_size}) must be a multiple of "
                          f"2**d_repeat_num ({2**config.d_repeat_num})")
    if config.image_size % 4:
        raise ConfigError(f"{source}: key 'image_size' must be a multiple of 4, got {config.image_size}")
    if config.crop_size < config.image_size:
        raise ConfigError(f"{source}: key 'crop_size' ({config.crop_size}) is smaller than 'image_size' "
                          f"({config.image_size})")
    second = {"attr_path_2": config.attr_path_2, "selected_attrs_2": config.selected_attrs_2 or None}
    if any(second.values()) and not all(second.values()):
        missing = next(k for k, v in second.items() if not v)
        raise ConfigError(f"{source}: a second dataset needs attr_path_2 and selected_attrs_2; '{missing}' "
                          "is not set")
