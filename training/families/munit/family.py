"""MUNIT's registry entry: what shared code (checkpoints, export, info, the training driver) asks of MUNIT. The
methods live in this package's modules and are imported on first use, so listing families needs no torch."""
from __future__ import annotations

from munit_rt.training.family import TrainingFamily, delegate
from munit_rt.training.families.munit.config import GENERATOR_KEYS, NAME, MunitConfig

PACKAGE = "munit_rt.training.families.munit"


class MunitFamily(TrainingFamily):
    name = NAME
    title = "MUNIT"
    config_class = MunitConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = "gen"  # official names: gen_%08d.pt, dis_%08d.pt
    default_for_configs = True  # official YAMLs have no `family` key
    checkpoint_names = "gen_XXXXXXXX.pt, munit-rt or official NVlabs"

    build_generator = delegate(f"{PACKAGE}.model:build_generator")
    remap = delegate(f"{PACKAGE}.upstream:remap_munit")
    detect = delegate(f"{PACKAGE}.upstream:detect_munit")
    upstream_iteration = delegate(f"{PACKAGE}.upstream:upstream_iteration")
    graphs = delegate(f"{PACKAGE}.graphs:describe_graphs")  # options: upsample ("subpixel", "nearest")
    preprocess = delegate(f"{PACKAGE}.data:preprocess")
    manifest_model = delegate(f"{PACKAGE}.graphs:manifest_model")
    describe_checkpoint = delegate(f"{PACKAGE}.info:describe_checkpoint")
    open_training_data = delegate(f"{PACKAGE}.data:open_training_data")
    build_job = delegate(f"{PACKAGE}.trainer:build_job")

    def model_part(self, config: MunitConfig) -> tuple:
        return (config.gen, config.input_dim_a, config.input_dim_b)

    def weight_label(self, key: str) -> str:
        return f"domain {key}"
