"""pix2pix's registry entry: what shared code (checkpoints, export, info, the training driver) asks of pix2pix.
The methods live in this package's modules and are imported on first use, so listing families needs no torch."""
from __future__ import annotations

from munit_rt.training.families.pix2pix.config import GENERATOR_KEYS, NAME, Pix2PixConfig
from munit_rt.training.family import TrainingFamily, delegate

PACKAGE = "munit_rt.training.families.pix2pix"


class Pix2PixFamily(TrainingFamily):
    name = NAME
    title = "pix2pix"
    config_class = Pix2PixConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = NAME
    tiny_config = {"netG": "unet_128", "ngf": 4, "ndf": 4, "load_size": 136, "crop_size": 128, "num_workers": 0,
                   "display_size": 2}
    checkpoint_names = "munit-rt pix2pix_XXXXXXXX.pt, upstream latest_net_G.pth / <epoch>_net_G.pth (U-Net)"

    check_config = delegate(f"{PACKAGE}.config:check_config")
    build_generator = delegate(f"{PACKAGE}.model:build_generator")
    remap = delegate(f"{PACKAGE}.upstream:remap_pix2pix")
    detect = delegate(f"{PACKAGE}.upstream:detect_pix2pix")
    upstream_config = delegate(f"{PACKAGE}.upstream:upstream_config")
    graphs = delegate(f"{PACKAGE}.graphs:describe_graphs")
    preprocess = delegate(f"{PACKAGE}.data:preprocess")
    manifest_model = delegate(f"{PACKAGE}.graphs:manifest_model")
    source_details = delegate("munit_rt.training.checkpoint:source_files")
    describe_checkpoint = delegate(f"{PACKAGE}.upstream:describe_checkpoint")
    open_training_data = delegate(f"{PACKAGE}.data:open_aligned_data")
    build_job = delegate(f"{PACKAGE}.trainer:build_job")
    schedule = delegate(f"{PACKAGE}.trainer:schedule")  # n_epochs + n_epochs_decay epochs

    def model_part(self, config: Pix2PixConfig) -> tuple:
        """What the weights fix: the U-Net's shapes, and the direction it was trained to translate (a config may
        change the test mode `eval`, not what the generator does)."""
        return (config.netG, config.input_nc, config.output_nc, config.ngf, config.norm, config.direction)
