"""StarGAN (Choi et al., CVPR 2018) on the torch side, as yunjey/stargan defines it: config.py (upstream option
names), model.py (Generator, Discriminator; upstream names), upstream.py (NNNNNN-G.ckpt detection and remap),
graphs.py (export, label layout), data.py (CelebA-format attribute files, preprocessing), trainer.py, family.py
(the registry entry)."""
from munit_rt.training.families.stargan.family import StarGanFamily
from munit_rt.training.registry import register

STARGAN = register(StarGanFamily())
