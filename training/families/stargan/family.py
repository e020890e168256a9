"""StarGAN's registry entry: what shared code (checkpoints, export, info, the training driver) asks of StarGAN.
The methods are this package's functions, found by name (training.family.CONVENTIONS) and imported on first use."""
from __future__ import annotations

from munit_rt.training.family import TrainingFamily, delegate
from munit_rt.training.families.stargan.config import GENERATOR_KEYS, NAME, StarGanConfig


class StarGanFamily(TrainingFamily):
    name = NAME
    package = "munit_rt.training.families.stargan"
    title = "StarGAN"
    config_class = StarGanConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = NAME
    tiny_config = {"g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 3, "image_size": 32,
                   "crop_size": 40, "selected_attrs": ["Black_Hair", "Blond_Hair", "Male"], "num_workers": 0}
    checkpoint_names = "munit-rt stargan_XXXXXXXX.pt, upstream NNNNNN-G.ckpt"
    upstream_defaults = True

    source_details = delegate("munit_rt.training.checkpoint:source_files")

    def model_part(self, config: StarGanConfig) -> tuple:
        return (config.g_conv_dim, config.g_repeat_num, config.selected_attrs, config.selected_attrs_2)
