"""CycleGAN's registry entry: what shared code (checkpoints, export, info, the training driver) asks of CycleGAN.
The methods live in this package's modules and are imported on first use, so listing families needs no torch."""
from __future__ import annotations

from munit_rt.training.family import TrainingFamily, delegate
from munit_rt.training.families.cyclegan.config import GENERATOR_KEYS, NAME, CycleGanConfig

PACKAGE = "munit_rt.training.families.cyclegan"


class CycleGanFamily(TrainingFamily):
    name = NAME
    title = "CycleGAN"
    config_class = CycleGanConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = NAME
    tiny_config = {"ngf": 8, "ndf": 8, "n_blocks": 1, "load_size": 36, "crop_size": 32, "num_workers": 0}
    checkpoint_names = "munit-rt cyclegan_XXXXXXXX.pt, upstream latest_net_G_A.pth / latest_net_G_B.pth"
    pair_files = "latest_net_G_A.pth with latest_net_G_B.pth"
    upstream_defaults = True

    check_config = delegate(f"{PACKAGE}.config:check_config")
    build_generator = delegate(f"{PACKAGE}.model:build_generator")
    remap = delegate(f"{PACKAGE}.upstream:remap_cyclegan")
    detect = delegate(f"{PACKAGE}.upstream:detect_cyclegan")
    graphs = delegate(f"{PACKAGE}.graphs:describe_graphs")
    preprocess = delegate(f"{PACKAGE}.data:preprocess")
    manifest_model = delegate(f"{PACKAGE}.graphs:manifest_model")
    source_details = delegate("munit_rt.training.checkpoint:source_files")
    describe_checkpoint = delegate(f"{PACKAGE}.upstream:describe_checkpoint")
    open_training_data = delegate(f"{PACKAGE}.data:open_unaligned_data")
    build_job = delegate(f"{PACKAGE}.trainer:build_job")
    schedule = delegate(f"{PACKAGE}.trainer:schedule")  # n_epochs + n_epochs_decay epochs

    def model_part(self, config: CycleGanConfig) -> tuple:
        return (config.input_nc, config.output_nc, config.ngf, config.n_blocks, config.norm, config.use_dropout)
