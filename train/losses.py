"""pix2pix objectives: conditional GAN loss (vanilla BCE or LSGAN MSE) plus lambda * L1."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """GAN loss of PatchGAN ``logits`` (N, 1, h, w) against an all-real or all-fake target.

    ``vanilla``: BCE with logits (the paper, the TensorFlow tutorial); ``lsgan``: MSE to 1/0
    (least-squares GAN, the canonical repo's option). Returns a scalar (mean over patches).
    Computed in float32 even under autocast: BCE/MSE of half logits loses precision.
    """
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown gan mode {mode!r}")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str
) -> torch.Tensor:
    """D loss, halved as in the paper (slows D relative to G): 0.5 * (L(real, 1) + L(fake, 0))."""
    return 0.5 * (gan_loss(real_logits, True, mode) + gan_loss(fake_logits, False, mode))


def generator_losses(
    fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, mode: str, lambda_l1: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G objective: ``(total, gan, l1)`` with total = gan + lambda_l1 * l1 (images in [-1, 1])."""
    g_gan = gan_loss(fake_logits, True, mode)
    g_l1 = F.l1_loss(fake.float(), target.float())
    return g_gan + lambda_l1 * g_l1, g_gan, g_l1
