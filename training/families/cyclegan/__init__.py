"""CycleGAN (Zhu, Park, Isola, Efros, ICCV 2017) on the torch side, as junyanz/pytorch-CycleGAN-and-pix2pix
defines it: config.py (upstream option names), model.py (ResnetGenerator; upstream names; the PatchGAN, norm
table and init come from training/networks.py), upstream.py (latest_net_G_A.pth detection and remap), graphs.py
(export), data.py (unaligned folders, preprocessing), trainer.py, family.py (the registry entry)."""
from munit_rt.training.families.cyclegan.family import CycleGanFamily
from munit_rt.training.registry import register

CYCLEGAN = register(CycleGanFamily())
