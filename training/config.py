"""MUNIT configuration: frozen dataclasses read from the official YAML keys.

Unknown keys and bad values are refused with a `ConfigError` naming the file and the key, because a typo
in a training config otherwise silently trains the wrong model for a day.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from munit_rt.training.errors import ConfigError

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
    if value is None and (default is None or f.metadata.get("nullable")):
        return None
    # field metadata (CycleGAN/StarGAN configs): "type" for optional ints and string tuples, "choices", "min"
    expected = f.metadata.get("type") or (type(default) if default is not None else str)
    if expected in (bool, tuple):
        return _check_bool_or_names(expected, value, path, source)
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
    if "choices" in f.metadata and value not in f.metadata["choices"]:
        choices = ", ".join(map(str, f.metadata["choices"]))
        raise ConfigError(f"{source}: key '{path}' is {value!r}; expected one of {choices}")
    if "min" in f.metadata and value < f.metadata["min"]:
        raise ConfigError(f"{source}: key '{path}' must be >= {f.metadata['min']}, got {value!r}")
    return value


def _check_bool_or_names(expected: type, value: Any, path: str, source: str) -> Any:
    """Booleans, and lists of names (YAML lists, stored as tuples so configs stay frozen)."""
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: key '{path}' must be true or false, got {value!r}")
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: key '{path}' must be a list of names, got {value!r}")
    duplicates = sorted({item for item in value if list(value).count(item) > 1})
    if duplicates:
        raise ConfigError(f"{source}: key '{path}' names {', '.join(duplicates)} more than once")
    return tuple(value)


def config_from_dict(data: dict[str, Any], source: str = "config") -> MunitConfig:
    if isinstance(data, dict) and "family" in data:  # `family: munit` is allowed, any other is refused
        data = dict(data)
        family = data.pop("family")
        if family != "munit":
            raise ConfigError(f"{source}: a '{family}' config, not a MUNIT one")
    config = _build(MunitConfig, data, source)
    if config.gen.n_downsample < 0 or config.dis.n_layer < 1:
        raise ConfigError(f"{source}: key 'gen.n_downsample' must be >= 0")
    return config


def load_config(path: str | Path) -> MunitConfig:
    """Read an official-style YAML config; any problem is a one-line `ConfigError`."""
    return config_from_dict(_read_yaml(path), source=str(path))


def _read_yaml(path: str | Path) -> Any:
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
    return data


# ------------------------------------------------------------------------------ CycleGAN and StarGAN
# Model, loss and optimiser keys keep the upstream option names (junyanz/pytorch-CycleGAN-and-pix2pix
# `options/*.py`, yunjey/stargan `main.py`); logging and snapshot keys are munit-rt's, as for MUNIT.

def _key(default: Any, **checks: Any) -> Any:
    """A config field with its checks as metadata: type (optional ints, name lists), choices, min."""
    return field(default=default, metadata=checks)


@dataclass(frozen=True)
class CycleGanConfig:
    # model: ResnetGenerator (n_blocks 9 = upstream resnet_9blocks, 6 = resnet_6blocks), 70x70 PatchGAN
    input_nc: int = _key(3, choices=(1, 3))
    output_nc: int = _key(3, choices=(1, 3))
    ngf: int = _key(64, min=1)
    ndf: int = _key(64, min=1)
    n_blocks: int = _key(9, min=0)
    n_layers_D: int = _key(3, min=1)
    norm: str = _key("instance", choices=("instance", "batch", "none"))
    use_dropout: bool = False  # upstream CycleGAN sets --no_dropout by default
    init_type: str = _key("normal", choices=("normal", "xavier", "kaiming", "orthogonal"))
    init_gain: float = _key(0.02, min=0.0)
    # losses
    gan_mode: str = _key("lsgan", choices=("lsgan", "vanilla"))
    lambda_A: float = _key(10.0, min=0.0)
    lambda_B: float = _key(10.0, min=0.0)
    lambda_identity: float = _key(0.5, min=0.0)  # identity weight, relative to lambda_A / lambda_B
    pool_size: int = _key(50, min=0)
    # optimisation: constant LR for n_epochs, then linearly to 0 over n_epochs_decay
    lr: float = 0.0002
    beta1: float = _key(0.5, min=0.0)
    beta2: float = _key(0.999, min=0.0)
    batch_size: int = 1
    n_epochs: int = _key(100, min=0)
    n_epochs_decay: int = _key(100, min=0)
    max_iter: int | None = _key(None, type=int)  # munit-rt: stop after this many iterations (schedule unchanged)
    # data: DATA/trainA, trainB (testA, testB optional); resize to load_size^2, random crop_size^2, flip
    data_root: str | None = None
    load_size: int = _key(286, min=1)
    crop_size: int = _key(256, min=1)
    flip: bool = True
    num_workers: int = _key(4, min=0)
    # logging and snapshots (iterations)
    log_iter: int = 100
    image_save_iter: int = 1000
    snapshot_save_iter: int = 5000
    display_size: int = 4
    seed: int = 0

    @property
    def family(self) -> str:
        return "cyclegan"

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dataclasses.asdict(self)}


CELEBA_DEFAULT_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


@dataclass(frozen=True)
class StarGanConfig:
    # model (upstream defaults: 128x128, 64 filters, 6 residual blocks in G, 6 stride-2 convs in D)
    image_size: int = _key(128, min=1)
    g_conv_dim: int = _key(64, min=1)
    d_conv_dim: int = _key(64, min=1)
    g_repeat_num: int = _key(6, min=0)
    d_repeat_num: int = _key(6, min=1)
    # losses
    lambda_cls: float = _key(1.0, min=0.0)
    lambda_rec: float = _key(10.0, min=0.0)
    lambda_gp: float = _key(10.0, min=0.0)
    # optimisation: n_critic D steps per G step; LR linearly to 0 over the last num_iters_decay iterations
    batch_size: int = 16
    num_iters: int = _key(200000, min=1)
    num_iters_decay: int = _key(100000, min=0)
    lr_update_step: int = _key(1000, min=1)
    g_lr: float = _key(0.0001, min=0.0)
    d_lr: float = _key(0.0001, min=0.0)
    n_critic: int = _key(5, min=1)
    max_iter: int | None = _key(None, type=int)  # munit-rt: stop after this many iterations (schedule unchanged)
    beta1: float = _key(0.5, min=0.0)
    beta2: float = _key(0.999, min=0.0)
    # data: CelebA-format attribute files; a second one trains jointly through the mask vector
    image_dir: str | None = None
    attr_path: str | None = None
    selected_attrs: tuple[str, ...] = _key(CELEBA_DEFAULT_ATTRS, type=tuple)
    image_dir_2: str | None = None
    attr_path_2: str | None = None
    selected_attrs_2: tuple[str, ...] = _key((), type=tuple)
    crop_size: int = _key(178, min=1)  # center crop before resizing to image_size (upstream celeba_crop_size)
    test_count: int = _key(2000, min=0)  # held-out images per attribute file: the last ones after the shuffle
    split_seed: int | None = _key(1234, type=int, nullable=True)  # shuffles the lines before the split; null: keep
    flip: bool = True
    num_workers: int = _key(1, min=0)
    # logging and snapshots (iterations)
    log_iter: int = 10
    image_save_iter: int = 1000
    snapshot_save_iter: int = 10000
    display_size: int = 4
    seed: int = 0

    @property
    def family(self) -> str:
        return "stargan"

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
        return {"family": self.family, **data}


def _check_cyclegan(config: CycleGanConfig, source: str) -> None:
    if config.n_epochs + config.n_epochs_decay == 0:
        raise ConfigError(f"{source}: keys 'n_epochs' and 'n_epochs_decay' are both 0; nothing to train")
    if config.crop_size > config.load_size:
        raise ConfigError(f"{source}: key 'crop_size' ({config.crop_size}) is larger than 'load_size' "
                          f"({config.load_size})")
    if config.crop_size % 4:
        raise ConfigError(f"{source}: key 'crop_size' must be a multiple of 4 (the generator halves the size "
                          f"twice), got {config.crop_size}")
    if config.lambda_identity > 0 and config.input_nc != config.output_nc:
        raise ConfigError(f"{source}: the identity loss (lambda_identity {config.lambda_identity}) needs "
                          "input_nc == output_nc; set lambda_identity: 0")
    smallest = 3 * 2**config.n_layers_D
    if config.crop_size < smallest:
        raise ConfigError(f"{source}: key 'crop_size' must be >= {smallest} for n_layers_D "
                          f"{config.n_layers_D}, got {config.crop_size}")


def _check_stargan(config: StarGanConfig, source: str) -> None:
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


FAMILY_CONFIGS = {"munit": MunitConfig, "cyclegan": CycleGanConfig, "stargan": StarGanConfig}
_FAMILY_CHECKS = {"cyclegan": _check_cyclegan, "stargan": _check_stargan}


def family_config_from_dict(data: dict[str, Any], source: str = "config",
                            family: str | None = None) -> MunitConfig | CycleGanConfig | StarGanConfig:
    """Build the config of the family named by `family` or by the mapping's `family` key (default munit)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: config must be a mapping")
    data = dict(data)
    named = data.pop("family", None)
    if family is not None and named is not None and named != family:
        raise ConfigError(f"{source}: a '{named}' config where a '{family}' one is needed")
    family = family or named or "munit"
    if family not in FAMILY_CONFIGS:
        raise ConfigError(f"{source}: key 'family' is {family!r}; expected one of {', '.join(FAMILY_CONFIGS)}")
    if family == "munit":
        return config_from_dict(data, source)
    config = _build(FAMILY_CONFIGS[family], data, source)
    _FAMILY_CHECKS[family](config, source)
    return config


def config_family(path: str | Path) -> str:
    """The `family` key of a YAML config (munit when absent), without building the config."""
    data = _read_yaml(path)
    family = data.get("family", "munit") if isinstance(data, dict) else "munit"
    if family not in FAMILY_CONFIGS:
        raise ConfigError(f"{path}: key 'family' is {family!r}; expected one of {', '.join(FAMILY_CONFIGS)}")
    return family


def load_any_config(path: str | Path, family: str | None = None):
    """Read a YAML config of any family; `family: cyclegan|stargan` selects the family, default munit."""
    return family_config_from_dict(_read_yaml(path), source=str(path), family=family)
