"""A random-weight CycleGAN or StarGAN bundle at the upstream default size, for `bench/throughput.py --bundle`.

Weights do not change the speed, so no training is needed: the generator is built from the training modules at
upstream's defaults (CycleGAN resnet_9blocks, ngf 64, 256x256; StarGAN conv_dim 64, 6 blocks, 128x128, CelebA's
five attributes), saved as a munit-rt checkpoint and exported (FP32) into OUT/<family>_default.bundle.

    .venv/bin/python bench/random_family_bundle.py --family cyclegan --out WORK
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULTS = {
    "cyclegan": {"family": "cyclegan", "ngf": 64, "ndf": 64, "n_blocks": 9, "load_size": 286, "crop_size": 256},
    "stargan": {"family": "stargan", "g_conv_dim": 64, "d_conv_dim": 64, "g_repeat_num": 6, "d_repeat_num": 6,
                "image_size": 128, "crop_size": 178,
                "selected_attrs": ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]},
}


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(DEFAULTS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the checkpoint and the bundle")
    args = parser.parse_args(argv)

    import torch

    from munit_rt import export
    from munit_rt.training.checkpoint import save_checkpoint
    from munit_rt.training.config import config_from_dict

    config = config_from_dict(DEFAULTS[args.family], source="bench defaults")
    torch.manual_seed(0)
    if args.family == "cyclegan":
        from munit_rt.training.families.cyclegan.model import build_generator

        generators = {key: build_generator(config, key).eval() for key in ("G_A", "G_B")}
    else:
        from munit_rt.training.families.stargan.model import build_generator

        generators = {"G": build_generator(config).eval()}
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / f"{args.family}_default.pt"
    save_checkpoint(checkpoint, args.family, generators, config, iteration=0)
    bundle = Path(export.export_bundle(checkpoint, args.out / f"{args.family}_default.bundle", precision="fp32"))
    print(bundle)
    return bundle


if __name__ == "__main__":
    main()
