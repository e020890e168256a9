"""The model families, looked up by name: each package under training/families/ registers its `TrainingFamily`
when imported, and this module imports every one of them (pkgutil) the first time anything is looked up, the way
timm's `register_model` fills its registry. Adding a family is one new package there; nothing here changes.

    register(family)       add a family (a test module may register a toy one); a second one of a name is refused
    unregister(name)       remove it again
    get_family(name)       the family of a checkpoint's or manifest's "family" (ConfigError naming the known ones)
    families()             {name: family}, sorted by name
    family_for(data)       the family a config mapping names with its `family` key, else the default family (the
                           one with default_for_configs: official MUNIT YAMLs carry no such key)
    family_of(config)      the family of a built config object
    load_generators(ckpt)  a checkpoint's generators, built from its config and loaded strictly, in eval mode

Nothing here imports torch or a family at module level, so listing families stays cheap.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from munit_rt.training.errors import CheckpointError, ConfigError
from munit_rt.training.family import TRAINING_KEYS, Checkpoint, TrainingFamily

if TYPE_CHECKING:
    from torch import nn

FAMILIES_PACKAGE = "munit_rt.training.families"

_families: dict[str, TrainingFamily] = {}
_discovered = False


def _discover() -> None:
    """Import every family package once; each registers itself (so `register` during discovery is expected)."""
    global _discovered
    if _discovered:
        return
    _discovered = True  # first: the packages call register(), which calls back here
    package = importlib.import_module(FAMILIES_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__, f"{FAMILIES_PACKAGE}."):
        importlib.import_module(module.name)


def register(family: TrainingFamily) -> TrainingFamily:
    """Add `family` under its name; returns it. A name can be registered once, and its config class must have
    what the training driver reads (TRAINING_KEYS and to_dict): ValueError otherwise, naming what is missing."""
    _discover()
    fields = {f.name for f in dataclasses.fields(family.config_class)} \
        if dataclasses.is_dataclass(family.config_class) else set()
    missing = [key for key in TRAINING_KEYS if key not in fields] + \
        ([] if callable(getattr(family.config_class, "to_dict", None)) else ["to_dict()"])
    if missing:
        raise ValueError(f"model family {family.name!r}: its config class {family.config_class.__name__} lacks "
                         f"{', '.join(missing)} (the training driver reads them)")
    if family.name in _families:
        raise ValueError(f"a model family named {family.name!r} is registered already "
                         f"({type(_families[family.name]).__qualname__})")
    _families[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family (a test that registers a toy family cleans up with this); an unknown name is ignored."""
    _families.pop(name, None)


def families() -> dict[str, TrainingFamily]:
    """By name: the order packages happen to be imported in must not reorder messages or choices."""
    _discover()
    return dict(sorted(_families.items()))


def get_family(name: Any) -> TrainingFamily:
    _discover()
    if not isinstance(name, str) or name not in _families:
        raise ConfigError(f"unknown model family {name!r}; expected one of {', '.join(families())}")
    return _families[name]


def default_family() -> TrainingFamily:
    """The family of a config without a `family` key."""
    for family in families().values():
        if family.default_for_configs:
            return family
    raise ConfigError("a config without a 'family' key, and no family is the default; add 'family: NAME'")


def family_for(data: dict[str, Any], source: str = "config") -> TrainingFamily:
    """The family a config mapping names (`family` key), else the default family."""
    if "family" not in data:
        return default_family()
    try:
        return get_family(data["family"])
    except ConfigError:
        raise ConfigError(f"{source}: key 'family' is {data['family']!r}; expected one of "
                          f"{', '.join(families())}") from None


def family_of(config: Any) -> TrainingFamily:
    """The family whose config class built `config`."""
    for family in families().values():
        if isinstance(config, family.config_class):
            return family
    raise ConfigError(f"a {type(config).__name__} is no model family's config")


def load_generators(ckpt: Checkpoint) -> dict[str, nn.Module]:
    """Build the checkpoint's generators from its config and load the weights strictly (eval mode), keyed as
    the checkpoint's state dicts: {'a', 'b'} (MUNIT), {'G_A'[, 'G_B']} (CycleGAN), {'G'} (StarGAN)."""
    from munit_rt.training.weights import load_state_dict_strict

    family = get_family(ckpt.family)
    if ckpt.config is None:
        raise CheckpointError(f"{ckpt.path}: {ckpt.source_format} checkpoint without a config; pass the YAML it "
                              "was trained with (--config CFG.yaml)")
    generators = {}
    for key, state in ckpt.state_dicts.items():
        generator = family.build_generator(ckpt.config, key)
        source = ckpt.meta.get("files", {}).get(key, str(ckpt.path))
        try:
            load_state_dict_strict(generator, family.remap(state, generator), f"{source} [{family.weight_label(key)}]")
        except CheckpointError as exc:
            if ckpt.meta.get("config_source") != "defaults":
                raise
            raise CheckpointError(f"{exc} (the file stores no config and the upstream defaults do not fit; "
                                  "pass the config it was trained with)") from None
        generators[key] = generator.eval()
    return generators
