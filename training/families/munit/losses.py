"""MUNIT loss terms (official NVlabs/MUNIT `trainer.py` semantics).

The adversarial terms live on the discriminator (`MsImageDis.calc_dis_loss` / `calc_gen_loss`) as in the
official code; this module holds the rest and the weighting of the generator's total.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from munit_rt.training.families.munit.config import MunitConfig


def recon_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 as the official `recon_criterion`: mean absolute difference."""
    return torch.mean(torch.abs(output - target))


def vgg_perceptual_loss(vgg: torch.nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Domain-invariant perceptual loss: MSE between instance-normalised VGG16 relu5_3 features.

    Instance normalisation (no affine, eps 1e-5) removes the feature statistics that carry the domain
    style, so the loss compares content only (MUNIT paper, appendix).
    """
    features = F.instance_norm(vgg(images), eps=1e-5)
    target_features = F.instance_norm(vgg(target), eps=1e-5)
    return torch.mean((features - target_features) ** 2)


def generator_total(losses: dict[str, torch.Tensor], config: MunitConfig) -> torch.Tensor:
    """Weighted sum of the generator terms present in `losses` (optional ones are absent at weight 0)."""
    weights = {
        "loss_gen_adv": config.gan_w,
        "loss_gen_recon_x": config.recon_x_w,
        "loss_gen_recon_s": config.recon_s_w,
        "loss_gen_recon_c": config.recon_c_w,
        "loss_gen_cycrecon_x": config.recon_x_cyc_w,
        "loss_gen_vgg": config.vgg_w,
    }
    total = None
    for name, value in losses.items():
        term = weights[name[: -len("_a")]] * value  # names end in the domain: loss_gen_recon_x_a
        total = term if total is None else total + term
    return total
