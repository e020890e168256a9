"""pix2pix (Isola, Zhu, Zhou, Efros, CVPR 2017) on the torch side, as junyanz/pytorch-CycleGAN-and-pix2pix
defines it: config.py (upstream option names, with `direction` and the test mode `eval`), model.py (UnetGenerator,
PatchGAN on (A, B) pairs; upstream names; test-time forms), upstream.py (latest_net_G.pth detection, the config
its shapes fix, remap), graphs.py (export: one generator graph, parity against upstream's training-mode
BatchNorm per image), data.py (aligned A|B pairs, preprocessing), trainer.py, family.py (the registry entry)."""
from munit_rt.training.families.pix2pix.family import Pix2PixFamily
from munit_rt.training.registry import register

PIX2PIX = register(Pix2PixFamily())
