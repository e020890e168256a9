"""The field machinery every family's config is built with: frozen dataclasses with the upstream key names,
each key checked on its own (munit_rt.training.config picks the family and reads YAML).

Unknown keys and bad values are refused with a `ConfigError` naming the file and the key, because a typo in a
training config otherwise silently trains the wrong model for a day.

    key(default, **checks)            a field and its checks: type (optional ints, name lists), choices (expect:
                                      how to say them), min, positive, nullable
    RunConfig                         the run keys every family's config extends (batch size, logging, seed)
    build_config(cls, data, source)   the dataclass, every key checked; nested dataclasses by prefix (gen.dim)
    check_value(field, value, ...)    one key's value checked (also for command-line overrides of a key)
    check_epoch_sizes(config, ...)    the sizes of junyanz/pytorch-CycleGAN-and-pix2pix's options that must fit
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from munit_rt.training.errors import ConfigError


def key(default: Any, **checks: Any) -> Any:
    """A config field with its checks as metadata (see the module docstring)."""
    return field(default=default, metadata=checks)


@dataclass(frozen=True)
class RunConfig:
    """The keys of a training run, munit-rt's own and the same in every family (the driver reads them:
    training.family.TRAINING_KEYS). A family's config extends this class and redeclares a key only where its
    default differs; these keys come first in its to_dict()."""

    batch_size: int = key(1, positive=True)
    max_iter: int | None = key(None, type=int)  # stop after this many iterations (the LR schedule unchanged)
    num_workers: int = key(4, min=0)
    # logging and snapshots (iterations)
    log_iter: int = key(100, positive=True)
    image_save_iter: int = key(1000, positive=True)
    snapshot_save_iter: int = key(5000, positive=True)
    display_size: int = key(4, positive=True)
    seed: int = 0


def build_config(cls: type, data: Any, source: str, prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for name, value in data.items():
        path = f"{prefix}{name}"
        if name not in known:
            raise ConfigError(f"{source}: unknown key '{path}' (known: {', '.join(sorted(known))})")
        kwargs[name] = check_value(known[name], value, path, source)
    return cls(**kwargs)


def check_value(f: dataclasses.Field, value: Any, path: str, source: str) -> Any:
    nested = f.default_factory
    if isinstance(nested, type) and dataclasses.is_dataclass(nested):  # MUNIT's gen: and dis: sections
        return build_config(nested, value, source, prefix=f"{path}.")
    default = f.default if f.default is not dataclasses.MISSING else None
    if value is None and (default is None or f.metadata.get("nullable")):
        return None
    expected = f.metadata.get("type") or (type(default) if default is not None else str)
    if expected in (bool, tuple):
        return _check_bool_or_names(expected, value, path, source)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{source}: key '{path}' must be {expected.__name__}, got {value!r}")
    if "choices" in f.metadata and value not in f.metadata["choices"]:
        if "expect" in f.metadata:
            raise ConfigError(f"{source}: key '{path}' must be {f.metadata['expect']}, got {value!r}")
        choices = ", ".join(map(str, f.metadata["choices"]))
        raise ConfigError(f"{source}: key '{path}' is {value!r}; expected one of {choices}")
    if f.metadata.get("positive") and value <= 0:
        raise ConfigError(f"{source}: key '{path}' must be > 0, got {value!r}")
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


def check_epoch_sizes(config: Any, source: str, multiple: int, halves: str, d_layers: int, d_set_by: str) -> None:
    """What single keys of junyanz/pytorch-CycleGAN-and-pix2pix's options cannot say: n_epochs + n_epochs_decay
    above 0; crop_size within load_size, a multiple of `multiple` (`halves`: why), and at least what a
    discriminator of `d_layers` stride-2 layers (`d_set_by`: the keys that set them) sees. A ConfigError naming
    `source` and the key."""
    if config.n_epochs + config.n_epochs_decay == 0:
        raise ConfigError(f"{source}: keys 'n_epochs' and 'n_epochs_decay' are both 0; nothing to train")
    crop = config.crop_size
    if crop > config.load_size:
        raise ConfigError(f"{source}: key 'crop_size' ({crop}) is larger than 'load_size' ({config.load_size})")
    if crop % multiple:
        raise ConfigError(f"{source}: key 'crop_size' must be a multiple of {multiple} {halves}, got {crop}")
    if crop < 3 * 2**d_layers:
        raise ConfigError(f"{source}: key 'crop_size' must be >= {3 * 2**d_layers} for {d_set_by}, got {crop}")
