"""pix2pix (Isola et al., CVPR 2017) on the torch side: the U-Net generator and PatchGAN discriminator
(model.py) and the export graph split (graphs.py)."""
