"""MUNIT's registry entry: what shared code (checkpoints, export, info, the training driver) asks of MUNIT. The
methods are this package's functions, found by name (training.family.CONVENTIONS) and imported on first use."""
from __future__ import annotations

from munit_rt.training.family import TrainingFamily, delegate
from munit_rt.training.families.munit.config import GENERATOR_KEYS, NAME, MunitConfig


class MunitFamily(TrainingFamily):
    name = NAME
    package = "munit_rt.training.families.munit"
    title = "MUNIT"
    config_class = MunitConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = "gen"  # official names: gen_%08d.pt, dis_%08d.pt
    default_for_configs = True  # official YAMLs have no `family` key
    tiny_config = {"gen": {"dim": 8, "mlp_dim": 16, "style_dim": 4, "n_downsample": 2, "n_res": 1},
                   "dis": {"dim": 8, "n_layer": 2, "num_scales": 2}, "new_size": 32, "crop_image_height": 32,
                   "crop_image_width": 32, "batch_size": 2, "num_workers": 0, "display_size": 2}
    checkpoint_names = "gen_XXXXXXXX.pt, munit-rt or official NVlabs"

    describe_checkpoint = delegate(f"{package}.info:describe_checkpoint")
    # schedule: none (the base's). max_iter is MUNIT's schedule itself, as in the official code: the step LR
    # policy halves every step_size iterations without an end, so --max-iter may set any length
    to_half = delegate(f"{package}.layers:half_with_fp32_layernorms")  # the PyTorch backend's FP16

    def model_part(self, config: MunitConfig) -> tuple:
        return (config.gen, config.input_dim_a, config.input_dim_b)

    def weight_label(self, key: str) -> str:
        return f"domain {key}"
