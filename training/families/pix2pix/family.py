"""pix2pix's registry entry: what shared code (checkpoints, export, info, the training driver) asks of pix2pix.
The methods are this package's functions, found by name (training.family.CONVENTIONS) and imported on first use."""
from __future__ import annotations

from munit_rt.training.families.pix2pix.config import GENERATOR_KEYS, NAME, Pix2PixConfig
from munit_rt.training.family import TrainingFamily, delegate


class Pix2PixFamily(TrainingFamily):
    name = NAME
    package = "munit_rt.training.families.pix2pix"
    title = "pix2pix"
    config_class = Pix2PixConfig
    generator_keys = GENERATOR_KEYS
    snapshot_prefix = NAME
    tiny_config = {"netG": "unet_128", "ngf": 4, "ndf": 4, "load_size": 136, "crop_size": 128, "num_workers": 0,
                   "display_size": 2}
    checkpoint_names = "munit-rt pix2pix_XXXXXXXX.pt, upstream latest_net_G.pth / <epoch>_net_G.pth (U-Net)"

    source_details = delegate("munit_rt.training.checkpoint:source_files")

    def model_part(self, config: Pix2PixConfig) -> tuple:
        """What the weights fix: the U-Net's shapes, and the direction it was trained to translate (a config may
        change the test mode `eval`, not what the generator does)."""
        return (config.netG, config.input_nc, config.output_nc, config.ngf, config.norm, config.direction)
