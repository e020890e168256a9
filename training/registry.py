"""The model families, in one table: config class, generator builder, official-weights remap, trainer,
and the generator names a checkpoint stores. Everything that handles "any family" looks it up here.

    family     config            generators (checkpoint keys)        upstream weights
    munit      MunitConfig       a, b        (AdaINGen per domain)   NVlabs/MUNIT gen_*.pt
    cyclegan   CycleGanConfig    G_A (A->B), G_B (B->A)              junyanz latest_net_G_A.pth / _G_B.pth
    stargan    StarGanConfig     G           (image + label vector)  yunjey NNNNNN-G.ckpt
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from munit_rt.training import cyclegan, cyclegan_trainer, munit, stargan, stargan_trainer, trainer
from munit_rt.training.checkpoint import Checkpoint, load_generators as load_munit_generators
from munit_rt.training.config import CycleGanConfig, MunitConfig, StarGanConfig
from munit_rt.training.errors import CheckpointError, ConfigError
from munit_rt.training.official import load_state_dict_strict, remap_cyclegan, remap_munit, remap_stargan


@dataclass(frozen=True)
class Family:
    name: str
    config_class: type
    build_generator: Callable[[Any, str], nn.Module]  # (config, checkpoint key) -> module
    remap: Callable[[dict, nn.Module], dict]           # official state dict -> ours (pure)
    trainer: type                                      # the nn.Module holding networks and optimizers
    train: Callable[..., Any]                          # train(config_path, data_dir, out_dir, **options)
    weight_keys: tuple[str, ...]                       # generator names in a checkpoint
    model_part: Callable[[Any], tuple]                 # the config values the generator weights depend on


def _munit_generator(config: MunitConfig, key: str) -> nn.Module:
    return munit.AdaINGen(config.input_dim(key), config.gen)


FAMILIES: dict[str, Family] = {
    "munit": Family("munit", MunitConfig, _munit_generator, remap_munit, trainer.MunitTrainer, trainer.train,
                    ("a", "b"), lambda c: (c.gen, c.input_dim_a, c.input_dim_b)),
    "cyclegan": Family("cyclegan", CycleGanConfig, cyclegan.build_generator, remap_cyclegan,
                       cyclegan_trainer.CycleGanTrainer, cyclegan_trainer.train, cyclegan.GENERATOR_KEYS,
                       lambda c: (c.input_nc, c.output_nc, c.ngf, c.n_blocks, c.norm, c.use_dropout)),
    "stargan": Family("stargan", StarGanConfig, stargan.build_generator, remap_stargan,
                      stargan_trainer.StarGanTrainer, stargan_trainer.train, stargan.GENERATOR_KEYS,
                      lambda c: (c.g_conv_dim, c.g_repeat_num, c.selected_attrs, c.selected_attrs_2)),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def load_generators(ckpt: Checkpoint) -> dict[str, nn.Module]:
    """Build the checkpoint's generators from its config and load the weights strictly (eval mode).

    Keys are the checkpoint's: {'a', 'b'} (MUNIT), {'G_A'[, 'G_B']} (CycleGAN), {'G'} (StarGAN).
    """
    if ckpt.family == "munit":
        return load_munit_generators(ckpt)
    family = get_family(ckpt.family)
    if ckpt.config is None:
        raise CheckpointError(f"{ckpt.path}: no config to build the {ckpt.family} generators from")
    generators = {}
    for key, state in ckpt.state_dicts.items():
        generator = family.build_generator(ckpt.config, key)
        source = ckpt.meta.get("files", {}).get(key, str(ckpt.path))
        try:
            load_state_dict_strict(generator, family.remap(state, generator), f"{source} [{key}]")
        except CheckpointError as exc:
            if ckpt.meta.get("config_source") != "defaults":
                raise
            raise CheckpointError(f"{exc} (the file stores no config and the upstream defaults do not fit; "
                                  "pass the config it was trained with)") from None
        generators[key] = generator.eval()
    return generators
