"""The pix2pix U-Net generator (Isola et al. 2017, ``unet_256`` of the canonical PyTorch repo).

Written as explicit encoder and decoder lists so the paper's figure is visible in the code.
Shapes below are for the defaults (256x256 RGB, ngf=64, 8 downsamplings, batch norm):

    encoder (C = conv 4x4 stride 2; LReLU = LeakyReLU 0.2)        output
    down[0]  C(3->64)                       (no norm)              (N,  64, 128, 128)
    down[1]  LReLU, C(64->128),  norm                              (N, 128,  64,  64)
    down[2]  LReLU, C(128->256), norm                              (N, 256,  32,  32)
    down[3]  LReLU, C(256->512), norm                              (N, 512,  16,  16)
    down[4]  LReLU, C(512->512), norm                              (N, 512,   8,   8)
    down[5]  LReLU, C(512->512), norm                              (N, 512,   4,   4)
    down[6]  LReLU, C(512->512), norm                              (N, 512,   2,   2)
    down[7]  LReLU, C(512->512)             (innermost, no norm)   (N, 512,   1,   1)

    decoder (T = ConvTranspose 4x4 stride 2; input = [skip, previous] concatenated)
    up[0]    ReLU, T(512->512),  norm                   <- down[7]  (N, 512,   2,   2)
    up[1]    ReLU, T(1024->512), norm, Dropout(0.5)     <- down[6]  (N, 512,   4,   4)
    up[2]    ReLU, T(1024->512), norm, Dropout(0.5)     <- down[5]  (N, 512,   8,   8)
    up[3]    ReLU, T(1024->512), norm, Dropout(0.5)     <- down[4]  (N, 512,  16,  16)
    up[4]    ReLU, T(1024->256), norm                   <- down[3]  (N, 256,  32,  32)
    up[5]    ReLU, T(512->128),  norm                   <- down[2]  (N, 128,  64,  64)
    up[6]    ReLU, T(256->64),   norm                   <- down[1]  (N,  64, 128, 128)
    up[7]    ReLU, T(128->3) + bias, Tanh               <- down[0]  (N,   3, 256, 256)

With batch norm no conv has a bias except the last (the norm's shift does that job):
54,413,955 parameters. With instance norm (affine-free) every conv has a bias: 54,409,603.
Smaller sizes drop 8ngf levels (128 px: 7 downsamplings, 64 px: 6, 32 px: 5).
"""

from __future__ import annotations

import torch
from torch import nn

from p2p_deploy.models.config import GeneratorConfig, level_channels
from p2p_deploy.models.norm import make_norm


class UNetGenerator(nn.Module):
    """U-Net generator.

    Input:  (N, in_channels, S, S) float in [-1, 1], S = ``cfg.image_size``.
    Output: (N, out_channels, S, S) float in [-1, 1] (Tanh).
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n_down
        ch = level_channels(cfg)
        bias = cfg.norm == "instance"  # batch norm's shift makes a conv bias redundant

        def conv(cin: int, cout: int, b: bool = bias) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=b)

        def tconv(cin: int, cout: int, b: bool = bias) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=b)

        # Encoder: outermost (no activation before, no norm), middle levels, innermost (no norm).
        down: list[nn.Sequential] = [nn.Sequential(conv(cfg.in_channels, ch[0]))]
        for i in range(1, n - 1):
            down.append(
                nn.Sequential(
                    nn.LeakyReLU(0.2, True), conv(ch[i - 1], ch[i]), make_norm(cfg.norm, ch[i])
                )
            )
        down.append(nn.Sequential(nn.LeakyReLU(0.2, True), conv(ch[n - 2], ch[n - 1])))
        self.down = nn.ModuleList(down)

        # Decoder, in execution order: up[j] mirrors encoder level i = n-1-j.
        up: list[nn.Sequential] = [
            nn.Sequential(
                nn.ReLU(True), tconv(ch[n - 1], ch[n - 2]), make_norm(cfg.norm, ch[n - 2])
            )
        ]
        for i in range(n - 2, 0, -1):
            layers: list[nn.Module] = [
                nn.ReLU(True),
                tconv(ch[i] * 2, ch[i - 1]),
                make_norm(cfg.norm, ch[i - 1]),
            ]
            # Canonical repo: dropout in the 8ngf->8ngf blocks (levels 4 .. n-2).
            if cfg.dropout and 4 <= i <= n - 2:
                layers.append(nn.Dropout(0.5))
            up.append(nn.Sequential(*layers))
        up.append(
            nn.Sequential(nn.ReLU(True), tconv(ch[0] * 2, cfg.out_channels, b=True), nn.Tanh())
        )
        self.up = nn.ModuleList(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = self.up[0](skips[-1])
        n = len(self.down)
        for j in range(1, n):
            # Skip first, then the decoder path: the canonical repo's torch.cat([x, model(x)], 1).
            h = self.up[j](torch.cat([skips[n - 1 - j], h], dim=1))
        return h
