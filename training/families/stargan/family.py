"""StarGAN's registry entry: what shared code (checkpoints, export, info, the training driver) asks of StarGAN.
The methods live in this package's modules and are imported on first use, so listing families needs no torch."""
from __future__ import annotations

from munit_rt.training.family import TrainingFamily, delegate
from munit_rt.training.families.stargan.config import GENERATOR_KEYS, NAME, StarGanConfig

PACKAGE = "munit_rt.training.families.stargan"


class StarGanFamily(TrainingFamily):
    name = NAME
    title = "StarGAN"
    config_class = StarGanConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = NAME
    tiny_config = {"g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 3, "image_size": 32,
                   "crop_size": 40, "selected_attrs": ["Black_Hair", "Blond_Hair", "Male"], "num_workers": 0}
    checkpoint_names = "munit-rt stargan_XXXXXXXX.pt, upstream NNNNNN-G.ckpt"
    upstream_defaults = True

    check_config = delegate(f"{PACKAGE}.config:check_config")
    build_generator = delegate(f"{PACKAGE}.model:build_generator")
    remap = delegate(f"{PACKAGE}.upstream:remap_stargan")
    detect = delegate(f"{PACKAGE}.upstream:detect_stargan")
    upstream_iteration = delegate(f"{PACKAGE}.upstream:upstream_iteration")
    graphs = delegate(f"{PACKAGE}.graphs:describe_graphs")
    preprocess = delegate(f"{PACKAGE}.data:preprocess")
    manifest_model = delegate(f"{PACKAGE}.graphs:manifest_model")
    source_details = delegate("munit_rt.training.checkpoint:source_files")
    describe_checkpoint = delegate(f"{PACKAGE}.upstream:describe_checkpoint")
    open_training_data = delegate(f"{PACKAGE}.data:open_datasets")
    build_job = delegate(f"{PACKAGE}.trainer:build_job")
    schedule = delegate(f"{PACKAGE}.trainer:schedule")  # num_iters

    def model_part(self, config: StarGanConfig) -> tuple:
        return (config.g_conv_dim, config.g_repeat_num, config.selected_attrs, config.selected_attrs_2)
