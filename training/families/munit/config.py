"""MUNIT configuration: frozen dataclasses read from the official NVlabs/MUNIT YAML keys (which carry no
`family` key: MUNIT is the registry's default family for configs)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from munit_rt.training.config_fields import RunConfig, key

NAME = "munit"
GENERATOR_KEYS = ("a", "b")  # one AdaINGen per domain
ACTIVS = ("relu", "lrelu", "prelu", "selu", "tanh")
PAD_TYPES = ("reflect", "replicate", "zero")
DIS_NORMS = ("none", "bn", "in", "ln")
GAN_TYPES = ("lsgan", "nsgan")
INITS = ("gaussian", "kaiming", "xavier", "orthogonal", "default")
LR_POLICIES = ("step", "constant")
CHANNELS = dict(choices=(1, 3), expect="1 or 3 channels")


@dataclass(frozen=True)
class GenConfig:
    dim: int = key(64, positive=True)
    mlp_dim: int = key(256, positive=True)
    style_dim: int = key(8, positive=True)
    activ: str = key("relu", choices=ACTIVS)
    n_downsample: int = key(2, min=0)
    n_res: int = key(4, min=0)
    pad_type: str = key("reflect", choices=PAD_TYPES)


@dataclass(frozen=True)
class DisConfig:
    dim: int = key(64, positive=True)
    norm: str = key("none", choices=DIS_NORMS)
    activ: str = key("lrelu", choices=ACTIVS)
    n_layer: int = key(4, positive=True)
    gan_type: str = key("lsgan", choices=GAN_TYPES)
    num_scales: int = key(3, positive=True)
    pad_type: str = key("reflect", choices=PAD_TYPES)


@dataclass(frozen=True)
class MunitConfig(RunConfig):  # batch_size and seed: RunConfig's
    # logger options
    image_save_iter: int = key(10000, positive=True)
    image_display_iter: int = key(500, positive=True)
    display_size: int = key(16, positive=True)
    snapshot_save_iter: int = key(10000, positive=True)
    log_iter: int = key(10, positive=True)
    # optimisation options
    max_iter: int = key(1000000, positive=True)
    weight_decay: float = key(0.0001, min=0)
    beta1: float = 0.5
    beta2: float = 0.999
    init: str = key("kaiming", choices=INITS)
    lr: float = key(0.0001, min=0)
    lr_policy: str = key("step", choices=LR_POLICIES)
    step_size: int = key(100000, positive=True)
    gamma: float = 0.5
    gan_w: float = key(1.0, min=0)
    recon_x_w: float = key(10.0, min=0)
    recon_s_w: float = key(1.0, min=0)
    recon_c_w: float = key(1.0, min=0)
    recon_x_cyc_w: float = key(0.0, min=0)
    vgg_w: float = key(0.0, min=0)
    vgg_model_path: str | None = None  # local VGG16 state dict; never downloaded
    # model options
    gen: GenConfig = field(default_factory=GenConfig)
    dis: DisConfig = field(default_factory=DisConfig)
    # data options
    input_dim_a: int = key(3, **CHANNELS)
    input_dim_b: int = key(3, **CHANNELS)
    num_workers: int = key(8, min=0)
    new_size: int = key(256, positive=True)
    crop_image_height: int = key(256, positive=True)
    crop_image_width: int = key(256, positive=True)
    data_root: str | None = None
    # official list-file variant
    data_folder_train_a: str | None = None
    data_list_train_a: str | None = None
    data_folder_test_a: str | None = None
    data_list_test_a: str | None = None
    data_folder_train_b: str | None = None
    data_list_train_b: str | None = None
    data_folder_test_b: str | None = None
    data_list_test_b: str | None = None

    def input_dim(self, domain: str) -> int:
        return self.input_dim_a if domain == "a" else self.input_dim_b

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
