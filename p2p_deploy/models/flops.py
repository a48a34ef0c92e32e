"""Arithmetic cost of the U-Net generator, computed from its architecture (no tracing).

Counted as 2 FLOPs per multiply-add of the convolutions and transposed convolutions, which are
all but a fraction of a percent of the work; norms, activations and concatenations are left out.
At the defaults (256 px, ngf 64) one image costs 12.1 GFLOP.
"""

from __future__ import annotations

from p2p_deploy.models.config import GeneratorConfig, level_channels


def generator_flops(cfg: GeneratorConfig) -> int:
    """FLOPs of one forward pass for one image (batch 1) of the generator ``cfg`` describes."""
    ch = level_channels(cfg)
    n, s, k = cfg.n_down, cfg.image_size, 4 * 4
    total = 0
    cin = cfg.in_channels
    for i in range(n):  # encoder: conv 4x4 stride 2, output (ch[i], s/2^(i+1))
        out_hw = (s >> (i + 1)) ** 2
        total += 2 * out_hw * ch[i] * cin * k
        cin = ch[i]
    for i in range(n - 1, -1, -1):  # decoder mirror of level i: input (in, s/2^(i+1))
        in_hw = (s >> (i + 1)) ** 2
        c_in = ch[i] if i == n - 1 else 2 * ch[i]  # skip concatenation doubles the input
        c_out = cfg.out_channels if i == 0 else ch[i - 1]
        total += 2 * in_hw * c_in * c_out * k
    return total
