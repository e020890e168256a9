"""MUNIT (Huang, Liu, Belongie, Kautz, ECCV 2018) on the torch side, as the official NVlabs/MUNIT code defines it.

    config.py    MunitConfig (official YAML keys)        model.py, layers.py   AdaINGen, MsImageDis (official names)
    upstream.py  official gen_*.pt detection and remap   graphs.py, subpixel.py   the export graph split
    data.py      unpaired folders, preprocessing         trainer.py, init.py, losses.py, vgg.py   training
    info.py      `munit-rt info`                         family.py   the registry entry
"""
from munit_rt.training.families.munit.family import MunitFamily
from munit_rt.training.registry import register

MUNIT = register(MunitFamily())
