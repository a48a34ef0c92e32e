"""The 70x70 PatchGAN discriminator (at n_layers=3) of pix2pix."""

from __future__ import annotations

import torch
from torch import nn

from p2p_deploy.models.config import DiscriminatorConfig
from p2p_deploy.models.norm import make_norm


class PatchDiscriminator(nn.Module):
    """PatchGAN: classifies overlapping 70x70 patches of the (condition, image) pair.

    Input:  (N, in_channels, S, S), the condition and the real or generated image concatenated
            on channels, float in [-1, 1].
    Output: (N, 1, S/8 - 2, S/8 - 2) raw logits (30x30 for S=256 at n_layers=3).

    Layers at the defaults: C64 (no norm) - C128 - C256 (stride 2) - C512 (stride 1) - C1.
    Biases only on the first and last conv with batch norm: 2,768,705 parameters.
    """

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        bias = cfg.norm == "instance"
        ndf = cfg.ndf
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, cfg.n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias),
                make_norm(cfg.norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**cfg.n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias),
            make_norm(cfg.norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.model(pair)
