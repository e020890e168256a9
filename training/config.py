"""MUNIT configuration: frozen dataclasses read from the official YAML keys.

Unknown keys and bad values are refused with a `ConfigError` naming the file and the key, because a typo
in a training config otherwise silently trains the wrong model for a day.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from training.errors import ConfigError

ACTIVS = ("relu", "lrelu", "prelu", "selu", "tanh")
PAD_TYPES = ("reflect", "replicate", "zero")
DIS_NORMS = ("none", "bn", "in", "ln")
GAN_TYPES = ("lsgan", "nsgan")
INITS = ("gaussian", "kaiming", "xavier", "orthogonal", "default")
LR_POLICIES = ("step", "constant")


@dataclass(frozen=True)
class GenConfig:
    dim: int = 64
    mlp_dim: int = 256
    style_dim: int = 8
    activ: str = "relu"
    n_downsample: int = 2
    n_res: int = 4
    pad_type: str = "reflect"


@dataclass(frozen=True)
class DisConfig:
    dim: int = 64
    norm: str = "none"
    activ: str = "lrelu"
    n_layer: int = 4
    gan_type: str = "lsgan"
    num_scales: int = 3
    pad_type: str = "reflect"


@dataclass(frozen=True)
class MunitConfig:
    # logger options
    image_save_iter: int = 10000
    image_display_iter: int = 500
    display_size: int = 16
    snapshot_save_iter: int = 10000
    log_iter: int = 10
    # optimisation options
    max_iter: int = 1000000
    batch_size: int = 1
    weight_decay: float = 0.0001
    beta1: float = 0.5
    beta2: float = 0.999
    init: str = "kaiming"
    lr: float = 0.0001
    lr_policy: str = "step"
    step_size: int = 100000
    gamma: float = 0.5
    gan_w: float = 1.0
    recon_x_w: float = 10.0
    recon_s_w: float = 1.0
    recon_c_w: float = 1.0
    recon_x_cyc_w: float = 0.0
    vgg_w: float = 0.0
    vgg_model_path: str | None = None  # local VGG16 state dict; never downloaded
    # model options
    gen: GenConfig = field(default_factory=GenConfig)
    dis: DisConfig = field(default_factory=DisConfig)
    # data options
    input_dim_a: int = 3
    input_dim_b: int = 3
    num_workers: int = 8
    new_size: int = 256
    crop_image_height: int = 256
    crop_image_width: int = 256
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
    # munit-rt additions
    seed: int = 0

    @property
    def family(self) -> str:
        return "munit"

    def input_dim(self, domain: str) -> int:
        return self.input_dim_a if domain == "a" else self.input_dim_b

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    "gen.activ": ACTIVS, "gen.pad_type": PAD_TYPES,
    "dis.activ": ACTIVS, "dis.pad_type": PAD_TYPES, "dis.norm": DIS_NORMS, "dis.gan_type": GAN_TYPES,
    "init": INITS, "lr_policy": LR_POLICIES,
}
_POSITIVE = {
    "gen.dim", "gen.mlp_dim", "gen.style_dim", "dis.dim", "dis.n_layer", "dis.num_scales", "batch_size",
    "max_iter", "new_size", "crop_image_height", "crop_image_width", "image_save_iter", "snapshot_save_iter",
    "log_iter", "display_size", "step_size", "image_display_iter",
}
_NON_NEGATIVE = {"gen.n_res", "gen.n_downsample", "num_workers", "weight_decay", "lr", "gan_w", "recon_x_w",
                 "recon_s_w", "recon_c_w", "recon_x_cyc_w", "vgg_w"}


def _build(cls: type, data: dict[str, Any], source: str, prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{path}' (known: {', '.join(sorted(known))})")
        kwargs[key] = _check_value(known[key], value, path, source)
    return cls(**kwargs)


def _check_value(f: dataclasses.Field, value: Any, path: str, source: str) -> Any:
    if f.name in ("gen", "dis"):
        return _build(GenConfig if f.name == "gen" else DisConfig, value, source, prefix=f"{path}.")
    default = f.default if f.default is not dataclasses.MISSING else None
    if value is None and default is None:
        return None
    expected = type(default) if default is not None else str
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{source}: key '{path}' must be {expected.__name__}, got {value!r}")
    if path in _CHOICES and value not in _CHOICES[path]:
        raise ConfigError(f"{source}: key '{path}' is {value!r}; expected one of {', '.join(_CHOICES[path])}")
    if path in _POSITIVE and value <= 0:
        raise ConfigError(f"{source}: key '{path}' must be > 0, got {value!r}")
    if path in _NON_NEGATIVE and value < 0:
        raise ConfigError(f"{source}: key '{path}' must be >= 0, got {value!r}")
    if path in ("input_dim_a", "input_dim_b") and value not in (1, 3):
        raise ConfigError(f"{source}: key '{path}' must be 1 or 3 channels, got {value!r}")
    return value


def config_from_dict(data: dict[str, Any], source: str = "config") -> MunitConfig:
    config = _build(MunitConfig, data, source)
    if config.gen.n_downsample < 0 or config.dis.n_layer < 1:
        raise ConfigError(f"{source}: key 'gen.n_downsample' must be >= 0")
    return config


def load_config(path: str | Path) -> MunitConfig:
    """Read an official-style YAML config; any problem is a one-line `ConfigError`."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        raise ConfigError(f"{path}: config is empty")
    return config_from_dict(data, source=str(path))
