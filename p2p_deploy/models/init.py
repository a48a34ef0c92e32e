"""Weight initialisation of the paper: N(0, 0.02) for convs, N(1, 0.02) for norm scales."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def init_weights(
    module: nn.Module, gain: float = 0.02, generator: torch.Generator | None = None
) -> nn.Module:
    """Initialise convs with N(0, gain), biases with 0, batch-norm weights with N(1, gain)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.normal_(0.0, gain, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.normal_(1.0, gain, generator=generator)
            m.bias.zero_()
    return module
