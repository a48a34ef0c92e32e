"""Arithmetic cost of the U-Net generator, computed from its architecture (no tracing).

Counted as 2 FLOPs per multiply-add of the convolutions and transposed convolutions, which are
all but a fraction of a percent of the work; norms, activations and concatenations are left out.
At the defaults (256 px, ngf 64) one image costs 12.1 GFLOP; the cost grows with the pixel
count, so a 720p frame (run at 768x1280, the next multiples of the stride 256) costs 15 times
that, 181 GFLOP.
"""

from __future__ import annotations

from p2p_deploy.models.config import GeneratorConfig, level_channels


def generator_flops(cfg: GeneratorConfig, size: tuple[int, int] | None = None) -> int:
    """FLOPs of one forward pass for one image (batch 1) of the generator ``cfg`` describes,
    at ``size`` (height, width; multiples of ``cfg.stride``), default its ``image_size``
    square."""
    ch = level_channels(cfg)
    n, k = cfg.n_down, 4 * 4
    h, w = size if size is not None else (cfg.image_size, cfg.image_size)
    total = 0
    cin = cfg.in_channels
    for i in range(n):  # encoder: conv 4x4 stride 2, output (ch[i], h/2^(i+1), w/2^(i+1))
        out_hw = (h >> (i + 1)) * (w >> (i + 1))
        total += 2 * out_hw * ch[i] * cin * k
        cin = ch[i]
    for i in range(n - 1, -1, -1):  # decoder mirror of level i: input (in, h/2^(i+1), ...)
        in_hw = (h >> (i + 1)) * (w >> (i + 1))
        c_in = ch[i] if i == n - 1 else 2 * ch[i]  # skip concatenation doubles the input
        c_out = cfg.out_channels if i == 0 else ch[i - 1]
        total += 2 * in_hw * c_in * c_out * k
    return total


def activation_elements(cfg: GeneratorConfig, size: tuple[int, int]) -> int:
    """Elements of every convolution's input and output tensor for one image at ``size``:
    what a calibrator that records each of them (INT8) holds per image."""
    ch = level_channels(cfg)
    h, w = size
    total = cfg.in_channels * h * w
    for i in range(cfg.n_down):
        hw = (h >> (i + 1)) * (w >> (i + 1))
        total += 2 * ch[i] * hw  # encoder output, and its activated copy feeding the next conv
        total += 3 * ch[i] * hw  # decoder: the concatenated input (2x) and the output
    return total
