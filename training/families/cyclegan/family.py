"""CycleGAN's registry entry: what shared code (checkpoints, export, info, the training driver) asks of CycleGAN.
The methods are this package's functions, found by name (training.family.CONVENTIONS) and imported on first use."""
from __future__ import annotations

from munit_rt.training.family import TrainingFamily, delegate
from munit_rt.training.families.cyclegan.config import GENERATOR_KEYS, NAME, CycleGanConfig


class CycleGanFamily(TrainingFamily):
    name = NAME
    package = "munit_rt.training.families.cyclegan"
    title = "CycleGAN"
    config_class = CycleGanConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = NAME
    tiny_config = {"ngf": 8, "ndf": 8, "n_blocks": 1, "load_size": 36, "crop_size": 32, "num_workers": 0}
    checkpoint_names = "munit-rt cyclegan_XXXXXXXX.pt, upstream latest_net_G_A.pth / latest_net_G_B.pth"
    pair_files = "latest_net_G_A.pth with latest_net_G_B.pth"
    upstream_defaults = True

    source_details = delegate("munit_rt.training.checkpoint:source_files")

    def model_part(self, config: CycleGanConfig) -> tuple:
        return (config.input_nc, config.output_nc, config.ngf, config.n_blocks, config.norm, config.use_dropout)
