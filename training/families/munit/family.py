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
    tiny_config = {"gen": {"dim": 8, "mlp_dim": 16, "style_dim": 4, "n_downsample": 2, "n_res": 1},
                   "dis": {"dim": 8, "n_layer": 2, "num_scales": 2}, "new_size": 32, "crop_image_height": 32,
                   "crop_image_width": 32, "batch_size": 2, "num_workers": 0, "display_size": 2}
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
    # schedule: none (the base's). max_iter is MUNIT's schedule itself, as in the official code: the step LR
    # policy halves every step_size iterations without an end, so --max-iter may set any length
    to_half = delegate(f"{PACKAGE}.layers:half_with_fp32_layernorms")  # the PyTorch backend's FP16

    def model_part(self, config: MunitConfig) -> tuple:
        return (config.gen, config.input_dim_a, config.input_dim_b)

    def weight_label(self, key: str) -> str:
        return f"domain {key}"
